"""A disk that fills up mid-write: one error line naming the file, and nothing written before lost or corrupted.

Two ways to fill a disk without touching the machine's own: a per-process file-size limit (RLIMIT_FSIZE, with
SIGXFSZ ignored so a write fails with EFBIG instead of killing the process; works for any user), and a real tmpfs
of a few kilobytes (ENOSPC; needs the right to mount, so that variant is skipped where mounting is not allowed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.bad_inputs.bad_input_helpers import REPO, tree_hashes


def _limit_file_size(limit_bytes: int) -> Callable[[], None]:
    """A preexec_fn: the child may write no file larger than limit_bytes."""

    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def _python(args: list[str], cwd: Path, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
        preexec_fn=None if limit_bytes is None else _limit_file_size(limit_bytes),
    )  # fmt: skip


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (a real full disk), or a skip where this user may not mount one."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("documented skip: mounting a tmpfs needs root (the file-size-limit variant covers this case)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"documented skip: this container may not mount a tmpfs ({result.stderr.decode().strip()[:120]})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


WRITE_OVER = """
import sys
import numpy as np
from src.io.atomic import write_image_atomic
try:
    write_image_atomic(sys.argv[1], np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
except Exception as err:
    print(f"{type(err).__name__}: {err}", file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.parametrize("disk", ["file-size limit", "tmpfs"])
def test_an_image_that_does_not_fit_keeps_the_earlier_file(
    disk: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    folder = request.getfixturevalue("small_tmpfs") if disk == "tmpfs" else tmp_path / "frames"
    folder.mkdir(exist_ok=True)
    target = folder / "s1_000001.png"
    assert cv2.imwrite(str(target), np.full((64, 64, 3), 77, np.uint8))  # the frame written earlier
    if disk == "tmpfs":  # fill the disk to a few KiB below full
        (folder / "filler.bin").write_bytes(b"\0" * (256 * 1024 - 8 * 1024 - target.stat().st_size))
    before = tree_hashes(folder)
    result = _python(["-c", WRITE_OVER, str(target)], tmp_path, limit_bytes=64 * 1024 if disk != "tmpfs" else None)
    assert result.returncode == 1, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("DiskFullError: ") and f"{target}: not written" in line, result.stderr[-2000:]
    assert ("file too large" if disk != "tmpfs" else "no space left on device") in line
    assert tree_hashes(folder) == before  # the earlier file is intact and no temporary is left behind


FACEWORLD = ["-m", "src.faceworld.write", "rgbd-processed", "--num-identities", "3", "--frames-per-identity", "1",
             "--size", "128", "--eval-identities", "1", "--workers", "1", "--no-progress", "--seed", "3"]  # fmt: skip


@pytest.mark.slow
def test_dataset_writer_stopped_by_a_full_disk_resumes_byte_identical(tmp_path: Path) -> None:
    """FaceWorld's writer: an interrupted dataset whose resume hits a full disk fails with one line naming the file;
    the files written before are intact, and a resume with space finishes byte-identical to an uninterrupted run."""
    complete = tmp_path / "complete"
    assert _python([*FACEWORLD, "--out", str(complete)], tmp_path).returncode == 0
    reference = {str(Path(k).relative_to(complete)): v for k, v in tree_hashes(complete).items()}
    interrupted = tmp_path / "interrupted"
    shutil.copytree(complete, interrupted)
    lost = sorted(interrupted.glob("train/Color/*.png"))[-1]
    lost.unlink()  # the run was killed before this frame was written, so it never marked the dataset complete
    (interrupted / ".faceworld_write" / "complete.json").unlink()
    (interrupted / "config.txt").unlink(missing_ok=True)
    kept = tree_hashes(interrupted)
    full = _python([*FACEWORLD, "--out", str(interrupted)], tmp_path, limit_bytes=1024)
    assert full.returncode != 0 and "Traceback" not in full.stderr, full.stderr[-3000:]
    line = full.stderr.strip().splitlines()[-1]
    assert "error: " in line and "not written, file too large" in line, full.stderr[-3000:]
    after = tree_hashes(interrupted)
    assert {k: v for k, v in after.items() if k in kept} == kept and set(after) == set(kept)
    assert _python([*FACEWORLD, "--out", str(interrupted)], tmp_path).returncode == 0
    assert {str(Path(k).relative_to(interrupted)): v for k, v in tree_hashes(interrupted).items()} == reference
