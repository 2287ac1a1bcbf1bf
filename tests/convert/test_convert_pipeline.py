"""The conversion app end to end on tiny captures: report, resume after a kill, determinism, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from convert_testdata import detector_spec, tree_hashes, write_capture

from src.convert import NothingUsableError, run_conversion
from src.convert.pipeline import STATE_DIR
from src.io.rgbd_layout import depth_encoding_from_config, intrinsics_from_config, read_config

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

GOOD = [{"name": f"sessA_{i}", "seed": i, "faceworld": True} for i in range(5)]
BROKEN = [
    {"name": "sessA_19", "seed": 19, "faceworld": True, "yaw": 25.0},
    {"name": "sessA_20", "seed": 20, "faces": "none"},
    {"name": "sessA_21", "seed": 21, "faces": "two"},
    {"name": "sessA_22", "seed": 22, "break": "truncated_png"},
    {"name": "sessA_23", "seed": 23, "break": "missing_depth"},
    {"name": "sessA_24", "seed": 24, "break": "depth_8bit"},
    {"name": "sessA_25", "seed": 25, "break": "garbage"},
]
EVAL = [{"name": f"sessB_{i}", "seed": 100 + i, "faceworld": True} for i in range(2)]


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("unprocessed") / "capture"
    table = write_capture(root, {"train": GOOD + BROKEN, "eval": EVAL})
    return root, table


def _cfg(capture, output: Path, **kw) -> dict:
    root, table = capture
    cfg = dict(
        input=str(root),
        output=str(output),
        detector=detector_spec(table),
        size=128,
        padding=8,
        workers=1,
        progress=False,
    )
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def reference(capture, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("processed") / "reference"
    return out, run_conversion(_cfg(capture, out))


def test_every_rejection_is_counted_by_reason_and_accepted_frames_are_written(reference):
    out, report = reference
    assert report.accepted == {"train": 5, "eval": 2}
    expected = {"no_face": 1, "multiple_faces": 1, "truncated_png": 1, "missing_depth": 1, "depth_not_16bit": 1}
    expected.update(unreadable=1, pose_out_of_range=1)
    assert {k: v for k, v in report.rejected.items() if v} == expected
    pose_message = next(r["message"] for r in report.rejected_frames if r["reason"] == "pose_out_of_range")
    assert pose_message.startswith("head pose yaw") and pose_message.endswith("exceeds 10.0 deg")
    saved = json.loads((out / "conversion_report.json").read_text())
    assert saved["rejected"] == report.rejected and saved["accepted_total"] == 7
    assert {r["frame_id"] for r in saved["rejected_frames"]} == {f"sessA_{i:06d}" for i in range(19, 26)}
    for split, n in (("train", 5), ("eval", 2)):
        for kind in ("Color", "Depth", "Feature", "Landmark"):
            assert len(list((out / split / kind).iterdir())) == n
    assert sorted(p.stem for p in (out / "eval" / "Color").iterdir()) == ["sessB_000000", "sessB_000001"]


def test_dataset_config_names_the_depth_encoding_and_intrinsics(capture, reference):
    out, report = reference
    config = read_config(out / "config.txt")
    encoding = depth_encoding_from_config(config)
    assert encoding.bits == 16
    assert encoding.near_mm == pytest.approx(report.desired_nose_depth_mm - 20)
    assert encoding.far_mm == pytest.approx(report.desired_nose_depth_mm + 200)
    assert float(config["nose_depth_mm"]) == pytest.approx(report.desired_nose_depth_mm)
    fx, _fy, cx, cy = intrinsics_from_config(config)
    source_fx = float(read_config(capture[0] / "config.txt")["fx"])
    assert fx == pytest.approx(source_fx * report.global_scale) and cx == cy == 63.5
    assert float(config["face_depth_mm"]) == 200 and float(config["depth_padding_mm"]) == 20


def test_rerun_on_a_finished_output_changes_nothing(capture, reference):
    out, _ = reference
    before = tree_hashes(out)
    report = run_conversion(_cfg(capture, out))
    assert report.this_run.measured == 0 and report.this_run.rendered == 0
    assert tree_hashes(out) == before


def _run_killed(capture, output: Path, exit_after: int) -> int:
    """Run the conversion in a child process that dies abruptly after `exit_after` frames."""
    cfg = _cfg(capture, output, exit_after_frames=exit_after)
    code = "import json, sys; from src.convert import run_conversion; run_conversion(json.loads(sys.argv[1]))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    return subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], cwd=REPO, env=env, timeout=120).returncode


def test_killed_twice_then_resumed_gives_byte_identical_output(capture, reference, tmp_path):
    ref_out, ref_report = reference
    out = tmp_path / "resumed"
    assert _run_killed(capture, out, exit_after=4) == 3  # dies in pass 1
    assert not (out / "config.txt").exists()
    assert _run_killed(capture, out, exit_after=13) == 3  # dies in pass 2, after some frames are written
    assert (out / "train" / "Color").is_dir() and not (out / "config.txt").exists()
    # A writer killed mid-file leaves only a temporary name; the resume removes it.
    stale = out / "train" / "Depth" / ".sessA_000004.png.abc.tmp.png"
    stale.write_bytes(b"half a png")
    report = run_conversion(_cfg(capture, out))
    assert report.this_run.reused > 0 and report.this_run.measured < report.frames_total
    assert tree_hashes(out) == tree_hashes(ref_out)
    assert not [p for p in out.rglob("*.tmp*")]
    body = json.loads((out / "conversion_report.json").read_text())
    ref_body = json.loads((ref_out / "conversion_report.json").read_text())
    for key in ("this_run", "output"):
        body.pop(key), ref_body.pop(key)
    assert body == ref_body
    assert report.rejected == ref_report.rejected


def test_two_workers_write_the_same_bytes_as_one(capture, reference, tmp_path):
    out = tmp_path / "parallel"
    report = run_conversion(_cfg(capture, out, workers=2))
    assert report.accepted_total == 7
    assert tree_hashes(out) == tree_hashes(reference[0])


def test_resume_with_other_settings_is_refused_and_overwrite_starts_over(capture, reference, tmp_path):
    out = tmp_path / "settings"
    run_conversion(_cfg(capture, out))
    with pytest.raises(FileExistsError, match="face_depth"):
        run_conversion(_cfg(capture, out, face_depth=80))
    report = run_conversion(_cfg(capture, out, face_depth=80, depth_bits=8, overwrite=True))
    assert depth_encoding_from_config(read_config(out / "config.txt")).bits == 8
    assert report.accepted_total == 7


def test_nothing_usable_is_one_clear_error_and_leaves_no_dataset(tmp_path):
    root = tmp_path / "empty-faces"
    table = write_capture(root, {"train": [{"name": "1", "seed": 1, "faces": "none"}, {"name": "2", "seed": 2}]})
    (root / "train" / "Depth" / "2.png").unlink()
    out = tmp_path / "out"
    cfg = dict(input=str(root), output=str(out), detector=detector_spec(table), max_pose_deg=None, workers=1)
    cfg.update(detect_max_side=None, progress=False)
    with pytest.raises(NothingUsableError, match=r"nothing usable .* all 2 frame\(s\) were rejected"):
        run_conversion(cfg)
    assert not (out / "train").exists() and not (out / STATE_DIR).exists() and not (out / "config.txt").exists()


def test_command_line_app_converts_and_exits_1_when_nothing_is_usable(capture, tmp_path):
    root, table = capture
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    common = [
        sys.executable,
        "-m",
        "src.convert",
        f"input={root}",
        "detector=null",
        "+detector.name=convert_testdata:LookupDetector",
        f"+detector.table={table}",
        "size=64",
        "padding=4",
        "workers=1",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    done = subprocess.run([*common, f"output={tmp_path / 'cli'}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "converted 7 of 14 frames" in done.stdout and "rejected no_face" in done.stdout
    # An input where every frame is bad: one error line, exit code 1.
    bad = tmp_path / "bad"
    (bad / "train" / "Color").mkdir(parents=True)
    (bad / "train" / "Color" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    failed = subprocess.run(
        [*common[:3], f"input={bad}", *common[4:], f"output={tmp_path / 'none'}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nothing usable" in errors[0] and "truncated_png 1" in errors[0]


def _kill_when(process: subprocess.Popen, ready, timeout_s: float = 120.0) -> bool:
    """SIGKILL the child's whole process group (workers included) once `ready()`; False if it ended first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("the conversion did not reach the kill point in time")


@pytest.mark.slow
def test_sigkill_of_the_whole_process_group_at_random_points_then_resume_is_byte_identical(tmp_path):
    root = tmp_path / "capture"
    specs = [{"name": f"k_{i}", "seed": 300 + i} for i in range(48)]
    table = write_capture(root, {"train": specs[:40], "eval": specs[40:]}, width=760, height=908)
    base = dict(input=str(root), detector=detector_spec(table), max_pose_deg=None, size=512, padding=20)
    base.update(progress=False)
    reference = tmp_path / "reference"
    run_conversion({**base, "output": str(reference), "workers": 1})

    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    code = "import json, sys; from src.convert import run_conversion; run_conversion(json.loads(sys.argv[1]))"
    args = [sys.executable, "-c", code, json.dumps({**base, "output": str(out), "workers": 2})]
    measured = out / STATE_DIR / "measure"
    kill_points = [
        lambda: len(list(measured.rglob("*.json"))) >= 10,  # in pass 1
        lambda: len(list((out / "train" / "Depth").glob("*.png"))) >= 5,  # in pass 2
    ]
    for ready in kill_points:
        child = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True)
        assert _kill_when(child, ready), "the conversion finished before it could be killed"
    assert not (out / "config.txt").exists()
    run_conversion({**base, "output": str(out), "workers": 2})
    assert tree_hashes(out) == tree_hashes(reference)
    assert not list(out.rglob("*.tmp*"))


def test_the_rgbd_datamodule_reads_the_output(reference):
    from src.datamodules.rgbd import RGBDFrames, validate_processed_dataset

    out, report = reference
    encoding, frames = validate_processed_dataset(out)
    assert {split: len(ids) for split, ids in frames.items()} == report.accepted
    sample = RGBDFrames(out, "train", frames["train"], encoding)[0]
    assert tuple(sample["rgbd"].shape) == (4, 128, 128) and tuple(sample["feature"].shape) == (1, 128, 128)
    assert sample["frame_id"] == "sessA_000000"


def test_a_changed_input_is_reconverted_consistently_never_mixed(capture, reference, tmp_path):
    import shutil

    root, table = capture
    changed = tmp_path / "changed-capture"
    shutil.copytree(root, changed)
    for kind in ("Color", "Depth", "Infrared"):  # the first accepted frame goes: the desired nose depth changes
        (changed / "train" / kind / "sessA_0.png").unlink()
    out = tmp_path / "out"
    shutil.copytree(reference[0], out)  # the output of the full capture
    report = run_conversion(_cfg((changed, table), out))
    assert report.accepted == {"train": 4, "eval": 2}
    fresh = tmp_path / "fresh"
    run_conversion(_cfg((changed, table), fresh))
    # The dataset is what a fresh conversion of the new input writes (the state keeps the old frame's record).
    assert tree_hashes(out, dataset_only=True) == tree_hashes(fresh, dataset_only=True)
    assert not (out / "train" / "Color" / "sessA_000000.png").exists()


def test_a_repaired_frame_is_measured_again_on_resume(capture, tmp_path):
    import shutil

    from convert_testdata import synthetic_frame

    from src.io.atomic import write_image_atomic

    root, table = capture
    repaired = tmp_path / "repaired-capture"
    shutil.copytree(root, repaired)
    out = tmp_path / "out"
    # The synthetic heads are not FaceWorld's mean face, so the pose gate is off here.
    first = run_conversion(_cfg((repaired, table), out, max_pose_deg=None))
    assert first.rejected["truncated_png"] == 1
    # sessA_22 was written with half of its colour PNG; a re-copy of the whole file repairs it.
    write_image_atomic(repaired / "train" / "Color" / "sessA_22.png", synthetic_frame(380, 454, 22).colour_bgr)
    report = run_conversion(_cfg((repaired, table), out, max_pose_deg=None))
    assert report.rejected["truncated_png"] == 0 and report.accepted["train"] == first.accepted["train"] + 1
    assert report.this_run.measured == 1
    fresh = tmp_path / "fresh"
    run_conversion(_cfg((repaired, table), fresh, max_pose_deg=None))
    assert tree_hashes(out, dataset_only=True) == tree_hashes(fresh, dataset_only=True)
