"""The capture app on recordings written by the tests: layout, splits, resume, errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from capture_fixtures import gate_sequence, write_test_recording
from hydra import compose, initialize_config_dir

from src.capture.app import EmptySplitError, run_capture
from src.capture.faceworld_source import scaled_original_crop, write_faceworld_recording
from src.capture.sources import MkvSource
from src.capture.writer import SplitPlan
from src.io.images import read_image
from src.io.rgbd_layout import SPLITS, read_config

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _cfg(recording: Path, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(
            "capture", overrides=[f"source.path={recording}", f"output_dir={out}", "progress=false", *overrides]
        )


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def faceworld_recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "faceworld.mkv"
    write_faceworld_recording(
        path,
        num_frames=8,
        color_size=(512, 384),
        depth_size=(256, 224),
        identity_seed=2,
        seed=1,
        pose_amplitude_deg=5.0,
    )
    return path


@pytest.fixture(scope="module")
def gate_recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "astronaut.mkv"
    write_test_recording(path, gate_sequence()[0])
    return path


def test_capture_writes_the_unprocessed_layout(faceworld_recording, tmp_path):
    out = tmp_path / "unprocessed"
    x, y, w, h = scaled_original_crop(512, 384)  # what the original crops at 3072P, at this size
    crop = f"source.crop=[{x},{y},{w},{h}]"
    summary = run_capture(_cfg(faceworld_recording, out, "split.train_frames=4", "split.eval_frames=2", crop))
    assert summary.complete and summary.counts == {"train": 4, "eval": 2}
    assert sorted(p.name for p in (out / "train" / "Color").iterdir()) == [f"s0_{i:06d}.png" for i in range(4)]
    colour = read_image(out / "train" / "Color" / "s0_000000.png")
    depth = read_image(out / "train" / "Depth" / "s0_000000.png")
    ir = read_image(out / "eval" / "Infrared" / "s0_000001.png")
    # the scaled original crop of a 512x384 colour image
    assert colour.shape == (284, 238, 3) and colour.dtype == np.uint8
    assert depth.shape == (284, 238) and depth.dtype == np.uint16 and ir.dtype == np.uint16
    face = depth[depth > 0]
    assert face.size > 2000 and 450 < np.median(face) < 650  # registered head at ~550 mm
    config = read_config(out / "config.txt")
    assert config["split_mode"] == "block" and config["s0_source"] == "mkv" and float(config["fx"]) > 0
    assert config["s0_train_frames"] == "4"


def test_gate_outcomes_are_counted_by_reason(gate_recording, tmp_path):
    summary = run_capture(
        _cfg(gate_recording, tmp_path / "out", "split.train_frames=5", "split.eval_frames=5", "gate.max_angle_deg=20")
    )
    assert not summary.complete  # the recording ends first
    assert summary.reasons["no_face"] == 2 and summary.reasons["pose"] == 1 and summary.reasons["accepted"] == 7
    assert summary.counts == {"train": 5, "eval": 2}


def test_a_split_the_source_leaves_empty_is_an_error_and_keeps_the_frames(gate_recording, tmp_path):
    """7 of the recording's 10 frames pass the gate: with 20 wanted for train, eval gets none."""
    out = tmp_path / "out"
    args = ["split.train_frames=20", "split.eval_frames=5", "gate.max_angle_deg=20"]
    with pytest.raises(EmptySplitError, match=r"the eval split .* is empty: the source ended after 7 accepted frames"):
        run_capture(_cfg(gate_recording, out, *args))
    assert len(list((out / "train" / "Color").iterdir())) == 7  # nothing written is lost
    # every frame rejected: the train split is empty too, and the message says why
    with pytest.raises(EmptySplitError, match=r"train and eval split .* no_face 2, pose 8"):
        run_capture(_cfg(gate_recording, tmp_path / "none", *args[:2], "gate.max_angle_deg=0.01"))
    # a held-out session (split.mode=sessions) wants no train frames: an empty train split is right there
    summary = run_capture(
        _cfg(gate_recording, tmp_path / "held", *args, "split.mode=sessions", "split.session_split=eval")
    )
    assert summary.counts == {"train": 0, "eval": 5}


def test_a_source_too_short_for_a_split_fails_before_any_work(tmp_path, monkeypatch):
    """FaceWorld knows its length: 60 frames can never reach the eval block after 1500 train frames."""
    from src.capture import app

    def no_detector(*args, **kwargs):
        raise AssertionError("the gate was built although the split check must fail first")

    monkeypatch.setattr(app, "build_gate", no_detector)
    cfg = app.capture_config(
        ["capture/source=faceworld", "source.num_frames=60", f"output_dir={tmp_path / 'out'}", "progress=false"]
    )
    with pytest.raises(EmptySplitError, match=r"eval split would stay empty: the faceworld source gives at most 60"):
        run_capture(cfg)
    assert not (tmp_path / "out").exists()
    plan = SplitPlan("interleaved", 12, 2, interleave_every=7)
    assert plan.empty_splits(6) == ["eval"] and plan.empty_splits(7) == [] and plan.empty_splits(0) == list(SPLITS)
    assert SplitPlan("block", 3, 2).empty_splits(3) == ["eval"] and SplitPlan("block", 0, 2).empty_splits(1) == []


def test_command_line_empty_split_is_one_error_line_and_exit_1(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "src.capture", "capture/source=faceworld", "source.num_frames=60",
         f"output_dir={tmp_path / 'out'}", "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=Path(CONF).parent, env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: capture: the eval split would stay empty") and "split.train_frames=1500" in last
    assert "Traceback" not in result.stderr


class _InterruptedError(Exception):
    pass


class _KilledAfter:
    """Wraps a source and 'kills' the run after `limit` frames (as a Ctrl-C or power loss would)."""

    def __init__(self, source, limit: int) -> None:
        self.source, self.limit = source, limit
        self.deterministic, self.has_depth, self.name = source.deterministic, source.has_depth, source.name

    def frames(self, start):
        for k, frame in enumerate(self.source.frames(start)):
            if k == self.limit:
                raise _InterruptedError
            yield frame

    def describe(self):
        return self.source.describe()


def _run_killed(cfg, recording: Path, after: int) -> None:
    with MkvSource(recording) as source, pytest.raises(_InterruptedError):
        run_capture(cfg, source=_KilledAfter(source, after))  # type: ignore[arg-type]


def test_resume_after_interruption_gives_identical_output(faceworld_recording, tmp_path):
    split = ["split.train_frames=4", "split.eval_frames=2"]
    clean = tmp_path / "clean"
    run_capture(_cfg(faceworld_recording, clean, *split))
    resumed = tmp_path / "resumed"
    cfg = _cfg(faceworld_recording, resumed, *split)
    _run_killed(cfg, faceworld_recording, after=3)
    # a second kill in the middle of writing a frame: one file of the last frame missing, a stale temporary left
    _run_killed(cfg, faceworld_recording, after=2)
    last = sorted((resumed / "train" / "Color").glob("s0_*.png"))[-1]
    (resumed / "train" / "Infrared" / last.name).unlink()
    (resumed / "train" / "Depth" / f".{last.name}.abc.tmp.png").write_bytes(b"half a png")
    summary = run_capture(cfg)
    assert summary.complete and summary.resumed_from > 0
    assert _tree_hashes(resumed) == _tree_hashes(clean)
    assert not list(resumed.rglob("*.tmp*"))


def test_resume_without_state_file_regates_and_skips(gate_recording, tmp_path):
    out = tmp_path / "out"
    args = ["split.train_frames=3", "split.eval_frames=2", "gate.max_angle_deg=20"]
    run_capture(_cfg(gate_recording, out, *args))
    reference = _tree_hashes(out)
    cfg = _cfg(gate_recording, tmp_path / "again", *args)
    _run_killed(cfg, gate_recording, after=4)
    next((tmp_path / "again").glob(".s0.*")).unlink()  # the state file is lost
    run_capture(cfg)
    assert _tree_hashes(tmp_path / "again") == reference


def test_existing_session_without_resume_is_one_clear_error(gate_recording, tmp_path):
    args = ["split.train_frames=2", "split.eval_frames=1", "gate.max_angle_deg=20"]
    run_capture(_cfg(gate_recording, tmp_path, *args))
    with pytest.raises(FileExistsError, match="resume=true"):
        run_capture(_cfg(gate_recording, tmp_path, *args, "resume=false"))
    summary = run_capture(_cfg(gate_recording, tmp_path, *args, "overwrite=true"))
    assert summary.resumed_from == 0 and summary.complete


def test_split_modes():
    block = SplitPlan("block", 3, 2)
    assert [block.split_of(k) for k in range(5)] == ["train"] * 3 + ["eval"] * 2
    interleaved = SplitPlan("interleaved", 12, 2)
    splits = [interleaved.split_of(k) for k in range(14)]
    assert [k for k, s in enumerate(splits) if s == "eval"] == [6, 13]  # every 7th accepted frame, like the original
    assert SplitPlan("sessions", 5, 5, session_split="eval").split_of(3) == "eval"
    assert SplitPlan("sessions", 5, 4, session_split="eval").total == 4
    with pytest.raises(ValueError, match=r"split\.mode"):
        SplitPlan("random")


def test_sessions_mode_holds_out_a_whole_session(gate_recording, tmp_path):
    common = ["split.mode=sessions", "split.train_frames=3", "split.eval_frames=2", "gate.max_angle_deg=20"]
    run_capture(_cfg(gate_recording, tmp_path, *common, "session=monday", "split.session_split=train"))
    run_capture(_cfg(gate_recording, tmp_path, *common, "session=tuesday", "split.session_split=eval"))
    train = {p.name.split("_")[0] for p in (tmp_path / "train" / "Color").iterdir()}
    evaluation = {p.name.split("_")[0] for p in (tmp_path / "eval" / "Color").iterdir()}
    assert train == {"monday"} and evaluation == {"tuesday"}
    assert len(list((tmp_path / "eval" / "Depth").iterdir())) == 2


def test_preview_without_display_is_turned_off_with_a_message(gate_recording, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    summary = run_capture(
        _cfg(
            gate_recording,
            tmp_path,
            "split.train_frames=1",
            "split.eval_frames=1",
            "gate.max_angle_deg=20",
            "preview=true",
        )
    )
    assert summary.complete
    assert "no display" in caplog.text


def test_missing_pyk4a_gives_install_instructions():
    try:
        import pyk4a  # noqa: F401

        pytest.skip("pyk4a is installed here")
    except (ImportError, OSError):
        pass
    from src.capture.sources import KinectSource

    with pytest.raises(ImportError, match=r"Azure Kinect Sensor SDK.*pip install pyk4a"):
        KinectSource()


def test_missing_recording_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"source.path: recording .*nope.mkv not found"):
        MkvSource(tmp_path / "nope.mkv")


def test_command_line_app(gate_recording, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(CONF).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "src.capture", f"source.path={gate_recording}", f"output_dir={tmp_path / 'cli'}",
         "split.train_frames=2", "split.eval_frames=1", "gate.max_angle_deg=20", "progress=false",
         f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=Path(CONF).parent, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 train + 1 eval frames" in result.stdout
    assert len(list((tmp_path / "cli" / "eval" / "Color").iterdir())) == 1


def test_video_source_captures_colour_only(tmp_path):
    import cv2

    video = tmp_path / "talk.avi"
    frames, _ = gate_sequence()
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (256, 192))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        overrides = ["capture/source=video", f"source.path={video}", f"output_dir={tmp_path / 'rgb'}"]
        overrides += ["progress=false", "split.train_frames=3", "split.eval_frames=1", "gate.max_angle_deg=20"]
        cfg = compose("capture", overrides=overrides)
    summary = run_capture(cfg)
    assert summary.complete and summary.reasons["no_face"] >= 1
    assert len(list((tmp_path / "rgb" / "train" / "Color").iterdir())) == 3
    assert not (tmp_path / "rgb" / "train" / "Depth").exists()


def test_pyk4a_playback_backend_without_pyk4a_is_explained(gate_recording):
    try:
        import pyk4a  # noqa: F401

        pytest.skip("pyk4a is installed here")
    except (ImportError, OSError):
        pass
    with pytest.raises(ImportError, match="pip install pyk4a"):
        MkvSource(gate_recording, backend="pyk4a")
    with pytest.raises(ValueError, match=r"source\.backend"):
        MkvSource(gate_recording, backend="ffmpeg")


def test_session_names_must_fit_frame_ids(gate_recording, tmp_path):
    with pytest.raises(ValueError, match=r"capture\.session"):
        run_capture(_cfg(gate_recording, tmp_path, "session=day_1"))


def test_python_entry_point_and_missing_keys(gate_recording, tmp_path):
    from src.capture.app import capture_config

    cfg = capture_config([f"source.path={gate_recording}", f"output_dir={tmp_path}", "progress=false"])
    assert cfg.source._target_.endswith("MkvSource") and cfg.split.mode == "block"
    with pytest.raises(ValueError, match="output_dir is required"):
        run_capture(capture_config([f"source.path={gate_recording}"]))
    with pytest.raises(ValueError, match=r"source\.path is required"):
        run_capture(capture_config([f"output_dir={tmp_path}"]))
