"""Every FaceWorld writer records its settings first and resumes: an interrupted write rerun with the same settings
finishes byte-identical to an uninterrupted one; other settings into a non-empty folder are one clear error that
touches nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from src.faceworld.write import main
from src.faceworld.writers import common
from src.faceworld.writers.details import write_details_dataset
from src.faceworld.writers.head2head import write_head2head_dataset
from src.faceworld.writers.prnet import write_prnet_dataset
from src.faceworld.writers.reenact import write_reenactment_dataset
from src.faceworld.writers.rgbd import write_processed_dataset, write_unprocessed_capture
from src.utils.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]

# Tiny sets with at least three jobs each, so an interruption after the first job leaves work to resume.
WRITERS = {
    "rgbd-processed": partial(write_processed_dataset, num_identities=3, frames_per_identity=2, size=128),
    "rgbd-unprocessed": partial(write_unprocessed_capture, num_sessions=3, frames_per_session=2, size=(60, 50)),
    "head2head": partial(
        write_head2head_dataset, num_identities=2, frames_per_video=6, size=32, part_frames=2, reenactments=1
    ),
    "dg": partial(write_reenactment_dataset, num_identities=3, frames_per_video=2, pairs_per_identity=1, size=32),
    "dfdn": partial(
        write_details_dataset, num_identities=2, expressions=("neutral", "smile"), map_size=64, patch_size=16,
        stride=16,
    ),
    "prnet": partial(
        write_prnet_dataset, num_identities=2, images_per_identity=2, size=32, transfer_pairs=1, transfer_frames=2
    ),
}  # fmt: skip


class _InterruptedError(Exception):
    pass


def _hashes(root: Path) -> dict[str, str]:
    """Every file below root (the resume record included) -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, jobs: int) -> list[int]:
    calls: list[int] = []

    def hook(finished: int) -> None:
        calls.append(finished)
        if finished >= jobs:
            raise _InterruptedError(f"stopped after {finished} job(s)")

    monkeypatch.setattr(common, "after_job_hook", hook)
    return calls


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple[dict[str, str], int]]:
    """Per layout: the hashes of one uninterrupted in-process write (seed 5) and its number of jobs."""
    base = tmp_path_factory.mktemp("reference")
    out = {}
    for name, writer in WRITERS.items():
        calls: list[int] = []
        common.after_job_hook = calls.append
        try:
            out[name] = (_hashes(writer(base / name, seed=5, workers=1, progress=False)), len(calls))
        finally:
            common.after_job_hook = None
    return out


@pytest.mark.parametrize("layout", sorted(WRITERS))
@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_write_resumes_to_the_same_bytes(tmp_path, monkeypatch, reference, layout, workers):
    writer = WRITERS[layout]
    expected, num_jobs = reference[layout]
    assert num_jobs >= 3
    root = tmp_path / layout
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(_InterruptedError):
        writer(root, seed=5, workers=workers, progress=False)
    partial_set = _hashes(root)
    # Settings were recorded before any frame; the set is unfinished.
    record = json.loads((root / common.STATE_DIR / common.SETTINGS_FILE).read_text())
    assert record["layout"] == layout and record["settings"]["seed"] == 5
    assert not (root / common.STATE_DIR / common.COMPLETE_FILE).exists()
    assert len(partial_set) < len(expected)
    assert len(list((root / common.STATE_DIR / "done").glob("*.json"))) == 1
    # A temporary left by a write killed mid-file is cleaned up by the rerun.
    (root / ".half_written.png.abc123.tmp.png").write_bytes(b"\x89PNG half")

    calls = _interrupt_after(monkeypatch, 10**6)
    writer(root, seed=5, workers=workers, progress=False)
    assert _hashes(root) == expected
    # Only the unfinished jobs ran again; a complete set reruns no job at all.
    assert len(calls) == num_jobs - 1
    calls.clear()
    writer(root, seed=5, workers=workers, progress=False)
    assert calls == [] and _hashes(root) == expected


def test_other_settings_are_one_error_naming_them_and_touch_nothing(tmp_path, monkeypatch):
    writer = WRITERS["head2head"]
    root = tmp_path / "set"
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(_InterruptedError):
        writer(root, seed=5, workers=1, progress=False)
    (root / "dataset" / ".x.png.1.tmp.png").write_bytes(b"temporary")
    before = _hashes(root)
    monkeypatch.setattr(common, "after_job_hook", None)
    with pytest.raises(DatasetError) as info:
        write_head2head_dataset(
            root, num_identities=2, frames_per_video=6, size=48, part_frames=2, reenactments=1, seed=6, progress=False
        )
    message = str(info.value)
    assert "\n" not in message and str(root) in message
    assert "seed: 5 there, 6 now" in message and "size: 32 there, 48 now" in message
    assert "frames_per_video" not in message  # only the settings that differ are named
    with pytest.raises(DatasetError, match="holds a FaceWorld head2head dataset, not prnet"):
        WRITERS["prnet"](root, seed=5, workers=1, progress=False)
    assert _hashes(root) == before  # nothing written, nothing deleted (not even the temporary)
    # The worker count does not change the bytes, so it is not a setting: resuming with 2 workers is fine.
    writer(root, seed=5, workers=2, progress=False)
    assert (root / common.STATE_DIR / common.COMPLETE_FILE).is_file()


def test_foreign_folders_are_refused(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("someone else's")
    with pytest.raises(DatasetError, match="busy: not empty and not a FaceWorld dataset folder"):
        WRITERS["prnet"](busy, seed=5, workers=1, progress=False)
    assert [p.name for p in busy.rglob("*")] == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        WRITERS["prnet"](a_file, seed=5, workers=1, progress=False)


def test_cli_reports_differing_settings_in_one_line(tmp_path, capsys):
    out = tmp_path / "h2h"
    argv = [
        "head2head", "--out", str(out), "--num-identities", "1", "--frames-per-video", "3", "--size", "32",
        "--part-frames", "2",
    ]  # fmt: skip
    assert main([*argv, "--workers", "1", "--no-progress"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--seed", "3", "--workers", "1", "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed: 0 there, 3 now" in err[0]


def test_a_killed_write_process_resumes_to_the_same_bytes(tmp_path):
    """SIGKILL the whole writer (parent and pool workers) once a job is done, rerun the same command. Six jobs
    (25 + 25 + 10 frames per video) on two workers: the kill lands while others are being written."""
    argv = [
        "head2head", "--num-identities", "2", "--frames-per-video", "60", "--size", "48", "--part-frames", "20",
        "--seed", "2",
    ]  # fmt: skip
    expected = _hashes(main_in_process(tmp_path / "reference", argv))
    root = tmp_path / "killed"
    command = [sys.executable, "-m", "src.faceworld.write", *argv, "--out", str(root), "--workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [*command, "--no-progress"], cwd=REPO, env=env, start_new_session=True, stderr=subprocess.PIPE
    )
    done = root / common.STATE_DIR / "done"
    deadline = time.monotonic() + 180
    try:
        while process.poll() is None and not any(done.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, f"the writer ended before it was killed: {process.stderr.read()}"
    process.stderr.close()
    assert not (root / common.STATE_DIR / common.COMPLETE_FILE).exists()
    assert 0 < len(_hashes(root)) < len(expected)
    main_in_process(root, argv)  # the same command again (in this process: one interpreter start less)
    assert _hashes(root) == expected


def main_in_process(root: Path, argv: list[str]) -> Path:
    assert main([*argv, "--out", str(root), "--workers", "1", "--no-progress"]) == 0
    return root
