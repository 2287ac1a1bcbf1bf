"""What each README command must do when run as written: a table of (pattern -> handler), first match wins.

Each handler runs the README line unaltered through `bash -c` in the session's repository copy, except:
- the quick start line: its install steps are CI's job (.ci/run runs them verbatim in a fresh venv with an
  empty pip cache); here its training step runs as written, in the copy whose .venv is the project's venv;
- placeholders (`<date>`, `<run>`, `<ckpt>`, `<layout>`, `DIR`) are replaced by the path of a run this session
  made earlier (or a layout name / scratch folder): the only change ever made to a command line;
- the README's own test commands are what CI runs (checked here against .ci/run's source, not re-run inside
  the test suite).
Long runs stop at a marker (the first epoch's checkpoint, the first multirun job's checkpoint). Commands that
need hardware this machine lacks (a live Azure Kinect, a GPU) must end with one `error:` line naming it.
A README command no pattern matches fails test_every_readme_command_has_a_handler.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.readme.harness import REPO, Outcome, complete_file, newest, run_command
from tests.readme.readme_commands import quick_start_line, split_after_install

QUICK_START_TIMEOUT_S = 600
FULL_SIZE_GRACE_S = 60


@dataclass
class Session:
    """The repository copy of one test session and what earlier commands left in it."""

    repo: Path
    scratch: Path
    runs: list[Path] = field(default_factory=list)  # train run folders with a checkpoint, oldest first
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def run(self, command: str, timeout_s: float, marker: Callable[[], bool] | None = None) -> Outcome:
        """Run a command as written in the copy (see harness.run_command) and keep its outcome for the log."""
        outcome = run_command(self.repo, command, timeout_s, marker=marker)
        self.outcomes[command] = outcome
        return outcome

    def earlier_run(self) -> Path:
        """A quick-start run folder with checkpoints/last.ckpt: the newest one, made now if none exists yet."""
        if not self.runs:
            train_quick_start_first_epoch(self, quick_start_train_step(_quick_start_line()))
        return self.runs[-1]


@dataclass(frozen=True)
class Handler:
    pattern: str
    name: str
    check: Callable[[Session, str, re.Match], None]
    slow: bool | Callable[[str], bool] = False

    def match(self, code: str) -> re.Match | None:
        return re.search(self.pattern, code)

    def is_slow(self, code: str) -> bool:
        return self.slow(code) if callable(self.slow) else self.slow


def _quick_start_line() -> str:
    return quick_start_line((REPO / "README.md").read_text(encoding="utf-8"))


def quick_start_train_step(line: str) -> str:
    """The quick start line's steps after its last `pip install` step (the training command)."""
    return split_after_install(line)[1]


def _expect_success(outcome: Outcome) -> None:
    assert outcome.stopped_at_marker or outcome.returncode == 0, (
        f"`{outcome.command}` ended with exit code {outcome.returncode} after {outcome.seconds:.0f} s:\n"
        f"{outcome.tail()}"
    )


def _expect_one_error_line(outcome: Outcome, mentions: str) -> None:
    errors = outcome.error_lines()
    assert outcome.returncode == 1 and len(errors) == 1, (
        f"`{outcome.command}` should end with exit code 1 and one `error:` line, got exit code "
        f"{outcome.returncode} and {len(errors)} error lines:\n{outcome.tail()}"
    )
    assert re.search(mentions, errors[0], re.IGNORECASE), f"the error should mention {mentions!r}: {errors[0]}"
    assert "Traceback" not in outcome.output, outcome.tail()


def _train_until_first_epoch(session: Session, command: str, timeout_s: float = QUICK_START_TIMEOUT_S) -> Path:
    """Run a training command until a run folder created by it holds a complete checkpoints/last.ckpt."""
    started = time.time()
    outcome = session.run(
        command,
        timeout_s,
        marker=complete_file("logs/train/runs/*/checkpoints/last.ckpt", session.repo, started),
    )
    _expect_success(outcome)
    last = newest("logs/train/runs/*/checkpoints/last.ckpt", session.repo, started)
    assert last is not None, f"`{command}` wrote no checkpoints/last.ckpt:\n{outcome.tail()}"
    return last.parent.parent


def train_quick_start_first_epoch(session: Session, command: str) -> None:
    run = _train_until_first_epoch(session, command)
    session.runs.append(run)


# ------------------------------------------------------------------------------------------------ handlers


def quick_start(session: Session, code: str, match: re.Match) -> None:
    """Install steps: CI. Training step as written, stopped after its first epoch's checkpoint."""
    train_quick_start_first_epoch(session, quick_start_train_step(code))


def readme_test_command(session: Session, code: str, match: re.Match) -> None:
    """The README's test commands are run by CI: .ci/run reads them from README.md with readme_commands.py."""
    from tests.readme.readme_commands import fast_test_command, slow_test_command

    ci = (REPO / ".ci" / "run").read_text()
    assert "readme_commands.py" in ci and "readme_command test" in ci and "readme_command slow" in ci, (
        ".ci/run must take the README's test commands from README.md"
    )
    text = (REPO / "README.md").read_text(encoding="utf-8")
    activated = code.removeprefix(".venv/bin/")  # `python ...` in prose means the venv's python
    assert activated in (
        fast_test_command(text).removeprefix(".venv/bin/"),
        slow_test_command(text),
    ), f"`{code}` is not one of the test commands .ci/run runs"


QUICK = "quickstart=cpu"  # rgbd_face's quick start
SYSTEM_QUICK_START = re.compile(r"\bquickstart=(?!cpu\b)\w+")  # another system's CPU quick start


def is_quick_start(code: str) -> bool:
    return QUICK in code or SYSTEM_QUICK_START.search(code) is not None


def _full_size_until_training(session: Session, code: str) -> Path:
    """The original's 512 px recipe: a CPU cannot finish an epoch, so the check is that it generates the data,
    builds everything, starts fitting and is still training FULL_SIZE_GRACE_S later with no error."""
    started = time.time()
    seen: dict[str, float] = {}

    def training_for_a_while() -> bool:
        log = newest("logs/train/runs/*/train.log", session.repo, started)
        if log is None or "Starting training" not in log.read_text(errors="replace"):
            return False
        seen.setdefault("fit", time.monotonic())
        return time.monotonic() - seen["fit"] > FULL_SIZE_GRACE_S

    outcome = session.run(code, 3600, marker=training_for_a_while)
    assert outcome.stopped_at_marker, (
        f"`{code}` did not keep training for {FULL_SIZE_GRACE_S} s (exit code {outcome.returncode}):\n{outcome.tail()}"
    )
    return newest("logs/train/runs/*/train.log", session.repo, started).parent


def _check_logger_files(run: Path, code: str) -> None:
    """logger=many_loggers: CSV, TensorBoard and offline wandb files in the run folder."""
    if "logger=many_loggers" in code:
        assert (run / "csv").is_dir() and (run / "tensorboard").is_dir(), sorted(p.name for p in run.iterdir())
        assert list((run / "wandb").glob("offline-run-*")), "wandb did not run offline in the run folder"


def train(session: Session, code: str, match: re.Match) -> None:
    """A single training run as written: quick-start sized -> stopped after its first epoch's checkpoint;
    full size -> see _full_size_until_training. logger=visdom runs with a real visdom server on port 8097."""
    if "logger=visdom" in code:
        from src.utils.visdom_logger import VisdomLogger
        from tests.loggers.visdom_server import running_server

        with running_server(_visdom_python_in_copy(session), 8097, session.scratch / "visdom_env"):
            _train_and_check(session, code)
            client = VisdomLogger(server="127.0.0.1", port=8097, env="train").experiment
            assert client.win_exists("hparams"), "the run posted no hyper-parameters window to visdom"
            if QUICK in code:
                assert client.win_exists("samples") or any(
                    client.win_exists(k) for k in ("train/G/l1_step", "train/G/total_step")
                ), "the run drew no curve or sample grid in visdom"
    else:
        _train_and_check(session, code)


def _train_and_check(session: Session, code: str) -> None:
    run = _train_until_first_epoch(session, code) if is_quick_start(code) else _full_size_until_training(session, code)
    _check_logger_files(run, code)


def is_full_size(code: str) -> bool:
    return not is_quick_start(code)


def needs_visdom_or_full_size(code: str) -> bool:
    """Slow: a visdom server, the full-size recipe, or another system's quick start (the every-experiment suite
    covers those systems in the fast suite on their tiny settings)."""
    return "logger=visdom" in code or is_full_size(code) or SYSTEM_QUICK_START.search(code) is not None


def run_to_completion(session: Session, code: str, match: re.Match, timeout_s: float = 900) -> Outcome:
    outcome = session.run(code, timeout_s)
    _expect_success(outcome)
    return outcome


def debug_run(session: Session, code: str, match: re.Match) -> None:
    """debug=... runs end by themselves (fdr: one batch of train / val / test)."""
    run_to_completion(session, code, match, timeout_s=3600)


def tiny_run(session: Session, code: str, match: re.Match) -> None:
    """+tiny=<experiment> shrinks a run to seconds: it must finish, test and write its last checkpoint."""
    started = time.time()
    run_to_completion(session, code, match)
    assert newest("logs/train/runs/*/checkpoints/last.ckpt", session.repo, started) is not None, "no last.ckpt"


def face_count_eval(session: Session, code: str, match: re.Match) -> None:
    """The face-counter evaluation as written: the gate's tiled counter must reject every bystander size."""
    outcome = run_to_completion(session, code, match, timeout_s=1800)
    row = next((line for line in outcome.output.splitlines() if line.startswith("tiled full-range (gate)")), None)
    assert row is not None, outcome.tail()
    shares = re.findall(r"(\d+\.\d)%", row)
    assert shares and all(share == "100.0" for share in shares), row


def multirun(session: Session, code: str, match: re.Match) -> None:
    """A sweep, stopped once its first job has finished an epoch (checkpoints/last.ckpt of job 0)."""
    started = time.time()
    marker = complete_file("logs/train/multiruns/*/0/checkpoints/last.ckpt", session.repo, started)
    outcome = session.run(code, QUICK_START_TIMEOUT_S, marker=marker)
    assert outcome.stopped_at_marker, (
        f"`{code}`: the first job wrote no checkpoint (exit code {outcome.returncode}):\n{outcome.tail()}"
    )


def resume(session: Session, code: str, match: re.Match) -> None:
    """`<date>` -> the quick-start run made earlier; the resumed run must go on past that run's epoch."""
    import torch

    earlier = session.earlier_run()
    before = torch.load(earlier / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]
    command = code.replace("logs/train/runs/<date>", str(earlier.relative_to(session.repo)))
    run = _train_until_first_epoch(session, command)
    after = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]
    assert after > before, f"resumed run stopped at epoch {after}, the checkpoint it resumed was at epoch {before}"


def fine_tune(session: Session, code: str, match: re.Match) -> None:
    """`<date>` -> the quick-start run made earlier; the fine-tune is a NEW run (own folder, epoch 0 first) that
    starts from that run's weights."""
    earlier = session.earlier_run()
    command = code.replace("logs/train/runs/<date>", str(earlier.relative_to(session.repo)))
    run = _train_until_first_epoch(session, command)
    import torch

    assert run != earlier, "init_from must start a new run folder, not continue the checkpoint's run"
    epoch = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]
    assert epoch == 0, f"a fine-tune starts at epoch 0 with fresh optimizers; its first checkpoint says {epoch}"


def evaluate(session: Session, code: str, match: re.Match) -> None:
    """`<run>` / `logs/train/runs/<date>` -> the quick-start run made earlier; eval must score it."""
    earlier = str(session.earlier_run().relative_to(session.repo))
    command = code.replace("logs/train/runs/<date>", earlier).replace("<run>", earlier)
    outcome = run_to_completion(session, command, match)
    assert re.search(r"psnr", outcome.output, re.IGNORECASE), outcome.tail()


def export(session: Session, code: str, match: re.Match) -> None:
    """`<ckpt>` -> the quick-start run's last.ckpt; the TorchScript and ONNX files must be written."""
    ckpt = session.earlier_run() / "checkpoints" / "last.ckpt"
    started = time.time()
    outcome = run_to_completion(session, code.replace("<ckpt>", str(ckpt.relative_to(session.repo))), match)
    written = [p for p in session.repo.rglob("generator.*") if p.stat().st_mtime >= started]
    suffixes = sorted(p.suffix for p in written)
    assert ".onnx" in suffixes and ".pt" in suffixes, f"export wrote {written}:\n{outcome.tail()}"


def kinect_capture(session: Session, code: str, match: re.Match) -> None:
    """No Azure Kinect SDK / pyk4a / device here: one error line that says what to install."""
    _expect_one_error_line(session.run(code, 120), r"pyk4a|Azure Kinect")


def gpu_train(session: Session, code: str, match: re.Match) -> None:
    """No GPU here: one error line about the missing GPU (the dataset it names was converted earlier)."""
    _expect_one_error_line(session.run(code, 600), r"trainer\.accelerator=gpu but torch sees no CUDA GPU")


def mkv_capture(session: Session, code: str, match: re.Match) -> None:
    """`rec.mkv` must exist: a 24-frame FaceWorld recording (Azure Kinect track layout) is written first. The
    default split wants 1500 + 250 frames, so the command as written keeps the 24 frames and says, in one line,
    that the eval split is empty."""
    from src.capture.faceworld_source import write_faceworld_recording

    recording = session.repo / re.search(r"source\.path=(\S+)", code).group(1)
    if not recording.exists():
        write_faceworld_recording(
            recording, num_frames=24, color_size=(320, 240), depth_size=(160, 144), pose_amplitude_deg=3.0, seed=1
        )
    outcome = session.run(code, 600)
    _expect_one_error_line(outcome, r"eval split .* is empty.*frames written stay on disk")
    output_dir = session.repo / re.search(r"output_dir=(\S+)", code).group(1)
    assert len(list((output_dir / "train" / "Color").glob("*.png"))) == 24


def convert(session: Session, code: str, match: re.Match) -> None:
    """Converts what the mkv capture command wrote (run first if this session has not yet)."""
    source = session.repo / re.search(r"input=(\S+)", code).group(1)
    if not source.exists():
        mkv = next(h for h in HANDLERS if h.check is mkv_capture)
        mkv_line = "python -m src.capture capture/source=mkv source.path=rec.mkv output_dir=" + str(
            source.relative_to(session.repo)
        )
        mkv_capture(session, mkv_line, mkv.match(mkv_line))
    run_to_completion(session, code, match)
    output = session.repo / re.search(r"output=(\S+)", code).group(1)
    converted = list((output / "train" / "Color").glob("*.png"))
    assert converted, f"convert wrote no train/Color frames under {output}"


def faceworld_write(session: Session, code: str, match: re.Match) -> None:
    run_to_completion(session, code, match)
    out = session.repo / re.search(r"--out (\S+)", code).group(1)
    # dg writes .jpg as its original layout does; the others .png
    assert any(p.suffix.lower() in {".png", ".jpg", ".jpeg"} for p in out.rglob("*")), f"no images under {out}"


def faceworld_write_any_layout(session: Session, code: str, match: re.Match) -> None:
    """`<layout>` -> each layout the writer offers, `DIR` -> a scratch folder per layout."""
    import argparse

    from src.faceworld.write import build_parser

    layouts = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for layout in layouts:
        out = session.scratch / f"layout_{layout}"
        shutil.rmtree(out, ignore_errors=True)
        faceworld_write(session, code.replace("<layout>", layout).replace("DIR", str(out)), match)


def contact_sheet(session: Session, code: str, match: re.Match) -> None:
    """Regenerating the sheet reproduces the committed image (same pixels)."""
    import cv2
    import numpy as np

    target = re.search(r"--out (\S+)", code).group(1)
    committed = cv2.imread(str(REPO / target), cv2.IMREAD_UNCHANGED)
    run_to_completion(session, code, match)
    regenerated = cv2.imread(str(session.repo / target), cv2.IMREAD_UNCHANGED)
    assert regenerated is not None and regenerated.shape == committed.shape
    assert np.abs(regenerated.astype(int) - committed.astype(int)).max() <= 1


def landmarks_evaluate(session: Session, code: str, match: re.Match) -> None:
    outcome = run_to_completion(session, code, match)
    assert re.search(r"NME", outcome.output), outcome.tail()


def _placeholders_to_earlier_run(session: Session, code: str) -> tuple[str, str]:
    """Replace `logs/train/runs/<date>`, `<run>` and `<ckpt>` with the quick-start run made earlier."""
    run = str(session.earlier_run().relative_to(session.repo))
    command = code.replace("logs/train/runs/<date>", run).replace("<run>", run)
    return command.replace("<ckpt>", f"{run}/checkpoints/last.ckpt"), run


def _faceworld_photos(session: Session, target: Path) -> None:
    """Stand-ins for the user's photos: FaceWorld colour frames (a .jpg file, or a folder of 3 .png)."""
    import cv2

    frames = session.scratch / "photo_source"
    if not frames.exists():
        writer = f"python -m src.faceworld.write rgbd-processed --out {frames} --num-identities 1 --eval-identities 0"
        made = session.run(f"{writer} --frames-per-identity 3 --no-progress", 600)
        assert made.returncode == 0, made.tail()
    colour = sorted(frames.rglob("Color/*.png"))[:3]
    assert colour, f"no FaceWorld colour frames under {frames}"
    if target.suffix:
        target.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(target), cv2.imread(str(colour[0])))
    else:
        target.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(colour):
            shutil.copy(frame, target / f"photo_{index}.png")


def infer(session: Session, code: str, match: re.Match) -> None:
    """Placeholders -> the earlier quick-start run; a missing `input=` is made of FaceWorld frames (photos) and
    a missing `<run>/export` by the README's export command. The command must succeed and write outputs."""
    command, run = _placeholders_to_earlier_run(session, code)
    source = session.repo / re.search(r"input=(\S+)", command).group(1)
    if not source.exists() and "Landmark" not in source.parts:
        _faceworld_photos(session, source)
    if "exported=" in command and not (session.repo / run / "export").exists():
        exported = session.run(f"python export.py ckpt={run}/checkpoints/last.ckpt", 900)
        assert exported.returncode == 0, exported.tail()
    started = time.time()
    outcome = run_to_completion(session, command, match)
    written = [p for p in session.repo.rglob("*") if p.is_file() and p.stat().st_mtime >= started]
    assert [p for p in written if p.suffix in (".png", ".npy", ".ply", ".exr", ".json")], outcome.tail()


def visdom_venv(session: Session, code: str, match: re.Match) -> None:
    """The README's visdom venv line, as written, in the repository copy (creates .visdom there)."""
    run_to_completion(session, code, match, timeout_s=900)
    check = session.run('.visdom/bin/python -c "import visdom.server"', 120)
    assert check.returncode == 0, check.tail()


def _visdom_python_in_copy(session: Session) -> Path:
    """The copy's .visdom venv (made with the README's line, or the same line from tests/loggers if absent)."""
    import pytest

    from tests.loggers.visdom_server import VisdomVenvUnavailableError, make_visdom_venv

    try:
        return make_visdom_venv(session.repo)
    except VisdomVenvUnavailableError as err:
        pytest.skip(f"no visdom venv, so no visdom server: {err}")


def visdom_server(session: Session, code: str, match: re.Match) -> None:
    """A visdom server line as written; once it listens, the logger must draw a curve in it. On a machine
    without internet `python -m visdom.server` stops in its web-asset download: skipped, saying so."""
    import pytest

    from src.utils.visdom_logger import VisdomLogger
    from tests.readme.harness import ServerExitedError, serving

    _visdom_python_in_copy(session)
    port = int(match.group("port"))
    try:
        with serving(session.repo, code, port):
            logger = VisdomLogger(server="127.0.0.1", port=port, env="readme_check", timeout_seconds=10)
            logger.log_metrics({"train/loss": 1.0}, step=1)
            logger.log_metrics({"train/loss": 0.5}, step=2)
            assert logger.experiment.window("train/loss")["content"]["data"][0]["y"] == [1.0, 0.5]
    except ServerExitedError as err:
        if "visdom.server" in code and re.search(r"Failed to resolve|Name or service not known", err.output):
            pytest.skip("no internet here: `python -m visdom.server` first downloads its web page's scripts")
        raise


HANDLERS: list[Handler] = [
    Handler(
        r"^python3 -m venv \.venv && .*pip install -r requirements\.txt && .*train\.py", "quick start", quick_start
    ),
    Handler(r"^(\.venv/bin/)?python -m pytest -q( -m slow)?$", "README test command (CI)", readme_test_command),
    Handler(r"capture/source=kinect", "live Kinect capture: one error line", kinect_capture),
    Handler(r"^python -m src\.capture capture/source=mkv source\.path=\S+ output_dir=\S+$", "mkv capture", mkv_capture),
    Handler(r"^python -m src\.convert input=\S+ output=\S+", "convert", convert),
    Handler(r"^python train\.py .*trainer=gpu", "GPU training: one error line", gpu_train),
    Handler(r"^python train\.py -m (?=.*quickstart=cpu)", "multirun: first job's first epoch", multirun, slow=True),
    Handler(r"^python train\.py (?!-m).*ckpt_path=logs/train/runs/<date>/", "resume", resume),
    Handler(r"^python train\.py (?!-m).*init_from=logs/train/runs/<date>/", "fine-tune", fine_tune),
    Handler(r"^python eval\.py ckpt=(<run>|logs/train/runs/<date>)/checkpoints/last\.ckpt$", "eval", evaluate),
    Handler(r"^python export\.py ckpt=<ckpt>$", "export", export),
    Handler(r"^python infer\.py ", "inference", infer),
    Handler(r"^python train\.py (?!-m).*\+tiny=\w+", "tiny run", tiny_run),
    Handler(r"^python train\.py (?!-m).*debug=\w+", "debug run", debug_run, slow=is_full_size),
    Handler(r"^python train\.py (?!-m)", "training run", train, slow=needs_visdom_or_full_size),
    Handler(
        r"^python -m src\.faceworld\.write <layout> --out DIR$",
        "every FaceWorld layout",
        faceworld_write_any_layout,
        slow=True,
    ),
    Handler(r"^python -m src\.faceworld\.write [\w-]+ --out \S+$", "FaceWorld writer", faceworld_write),
    Handler(r"^python -m src\.faceworld\.contact_sheet --out \S+$", "contact sheet", contact_sheet),
    Handler(r"^python -m src\.landmarks\.detectors\.evaluate$", "landmark evaluation", landmarks_evaluate),
    Handler(r"^python -m src\.capture\.face_count_eval$", "face counter evaluation", face_count_eval, slow=True),
    Handler(r"^python3 -m venv \.visdom && .*pip install .*visdom==", "visdom venv", visdom_venv, slow=True),
    Handler(r"^\.visdom/bin/python .*visdom\.server.* -port (?P<port>\d+)$", "visdom server", visdom_server, slow=True),
]


def handler_for(code: str) -> tuple[Handler, re.Match] | None:
    for handler in HANDLERS:
        match = handler.match(code)
        if match:
            return handler, match
    return None


def describe(session: Session) -> list[str]:
    """One line per command this session ran: wall and CPU seconds, and how it ended (for the test log)."""
    lines = []
    for command, outcome in session.outcomes.items():
        ending = "stopped at marker" if outcome.stopped_at_marker else f"exit {outcome.returncode}"
        lines.append(f"{outcome.seconds:7.1f} s wall {outcome.cpu_seconds:7.1f} s CPU  {ending:17s} {command}")
    return lines
