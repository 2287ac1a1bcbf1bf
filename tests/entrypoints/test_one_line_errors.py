"""Bad input is one `error: ...` line (exit code 1) before any training, and nothing else fills the terminal.

Each case runs the real entry point in-process (hydra.main and the friendly-error layer) with the argv a user
types; outputs go to a temporary project folder through PROJECT_ROOT only. The config tree (~20 KB) used to be
printed before every failure; it now goes to the run folder's config_tree.log.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from entrypoint_helpers import last_line, run_script, tiny_overrides
from hydra.core.global_hydra import GlobalHydra

import eval as eval_entry
import train as train_entry
from src.utils.errors import run_cli
from tests.framework.framework_fixtures import compose_config, tiny_train_overrides

# More than the log lines of a failing run, far less than the config tree it used to print first.
MAX_TERMINAL_CHARS = 8000


@dataclass(frozen=True)
class Inputs:
    dataset: Path
    checkpoint: Path
    text_file: Path
    no_held_out: Path


@pytest.fixture(scope="module")
def inputs(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("bad_inputs")
    run = root / "run"
    train_entry.train(compose_config("train.yaml", tiny_train_overrides(dataset, run, "test=false")))
    text_file = root / "notes.ckpt"
    text_file.write_text("best epoch: 7\nlr: 2e-4\n")
    no_held_out = root / "no_held_out"
    shutil.copytree(dataset, no_held_out, ignore=shutil.ignore_patterns("eval"))
    return Inputs(dataset, run / "checkpoints" / "last.ckpt", text_file, no_held_out)


CASES: dict[str, tuple[Callable[[Inputs], list[str]], list[str]]] = {
    "text file as resume checkpoint": (
        lambda i: ["train.py", *tiny_overrides(i.dataset), f"ckpt_path={i.text_file}"],
        ["notes.ckpt: not a checkpoint (not a PyTorch file"],
    ),
    "text file as eval checkpoint": (
        lambda i: ["eval.py", f"ckpt={i.text_file}"],
        ["notes.ckpt: not a checkpoint (not a PyTorch file"],
    ),
    "negative batch size": (
        lambda i: ["train.py", *tiny_overrides(i.dataset, "data.batch_size=-1")],
        ["data.batch_size", "-1"],
    ),
    "image size the U-Net cannot take": (
        lambda i: [
            "train.py",
            *tiny_overrides(i.dataset, "model/generator=unet_128", "model.generator.ngf=4"),
            "data.image_size=100",
        ],
        ["error: data.image_size=100 does not fit model.generator=unet_128", "divisible by 128, got (100, 100)"],
    ),
    "misspelt monitor": (
        lambda i: ["train.py", *tiny_overrides(i.dataset, "monitor=val/psnr_rgbx")],
        [
            "error: monitor='val/psnr_rgbx' is not logged by RGBDFaceModule's validation; logged val metrics: ",
            "val/psnr_rgbd",
        ],
    ),
    "no held-out split": (
        lambda i: ["train.py", *tiny_overrides(i.no_held_out)],
        ["no_held_out: the test split is empty"],
    ),
    "init_from of another architecture": (
        lambda i: ["train.py", *tiny_overrides(i.dataset, "model.generator.ngf=16", f"init_from={i.checkpoint}")],
        ["last.ckpt: weights do not fit the model this run builds: ", "with other shapes (generator.model"],
    ),
    "resume that changes the run": (
        lambda i: [
            "train.py",
            "experiment=rgbd_face",
            f"ckpt_path={i.checkpoint}",
            "model.optimizer_g.lr=1e-4",
            "quickstart=cpu",
            "trainer.max_epochs=5",
        ],
        [
            "resumes the run with its own config; these overrides would change it: ",
            "model.optimizer_g.lr=1e-4 (the run used model.optimizer_g.lr=0.0002); quickstart=cpu (the run used "
            "quickstart=null). A resume may change only",
            "start a new run with init_from=",
        ],
    ),
    "resume and init_from together": (
        lambda i: ["train.py", "experiment=rgbd_face", f"ckpt_path={i.checkpoint}", f"init_from={i.checkpoint}"],
        ["ckpt_path (resume the run) and init_from (new run from its weights) exclude each other"],
    ),
}
ENTRY_POINTS = {"train.py": train_entry, "eval.py": eval_entry}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_nothing_else(
    case: str,
    inputs: Inputs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    make_argv, expected = CASES[case]
    argv = make_argv(inputs)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", argv)
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as info:
        run_cli(ENTRY_POINTS[argv[0]].main)
    assert info.value.code == 1
    captured = capsys.readouterr()
    terminal = captured.out + captured.err
    line = last_line(captured.err)
    assert line.startswith("error: ") and all(part in line for part in expected), terminal[-3000:]
    assert "Traceback" not in terminal and "── data" not in terminal, terminal[-3000:]
    assert len(terminal) < MAX_TERMINAL_CHARS, terminal[:3000]
    assert not list(tmp_path.glob("logs/*/runs/*/checkpoints"))  # it failed before training started


@pytest.mark.slow
def test_text_file_as_export_checkpoint_is_one_line(inputs: Inputs, project: Path) -> None:
    """From the shell: export.py's Hydra config path is relative to the script, so it is not run in-process."""
    result = run_script(project, "export.py", f"ckpt={inputs.text_file}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    expected = "not a checkpoint (not a PyTorch file; a .ckpt written by train.py is a zip archive)"
    assert last_line(result.stderr) == f"error: {inputs.text_file}: {expected}"


def test_a_group_override_hydra_rejects_with_a_bare_value_error_is_one_line() -> None:
    """`landmarks@detector=null` makes Hydra raise a plain ValueError while composing: a user error, not a bug."""
    from hydra import compose, initialize_config_dir

    from src.utils.errors import describe_user_error

    GlobalHydra.instance().clear()
    conf = str(Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"), pytest.raises(ValueError) as caught:
        compose(config_name="infer", overrides=["landmarks@detector=null"])
    message = describe_user_error(caught.value)
    assert message is not None and message.startswith("bad command-line override") and "\n" not in message
    # the same error type raised by our own code stays a bug (keeps its traceback)
    try:
        raise ValueError("a bug in our code")
    except ValueError as err:
        assert describe_user_error(err) is None
