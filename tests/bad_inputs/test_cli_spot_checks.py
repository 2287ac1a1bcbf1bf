"""One case per entry point from the shell (a fresh `python` each): the in-process runs of this suite see what a
user sees. Slow (a Python start with torch is ~4 CPU-s), so one case each."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bad_inputs.bad_input_helpers import REPO, tree_hashes, truncate
from tests.framework.framework_fixtures import TINY_RGBD_RUN


def shell(project: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PROJECT_ROOT": str(project), "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, *argv], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )  # fmt: skip


def cases(root: Path, dataset: Path) -> dict[str, tuple[list[str], list[Path], str]]:
    """name -> (argv, files that must not change, the exact error line)."""
    broken = root / "broken"
    shutil.copytree(dataset, broken)
    png = broken / "train" / "Color" / "s1_000000.png"
    truncate(png)
    empty = root / "empty.ckpt"
    empty.write_bytes(b"")
    zero_mkv = root / "zero.mkv"
    zero_mkv.write_bytes(b"")
    capture_source = root / "capture_in"
    (capture_source / "train" / "Color").mkdir(parents=True)
    empty_msg = "not a checkpoint (an empty file; a .ckpt written by train.py is a zip archive)"
    return {
        "train.py": (
            [str(REPO / "train.py"), *TINY_RGBD_RUN, f"data.root={broken}"],
            [broken],
            f"error: {broken}: 1 problem(s) in the dataset: {png}: truncated or corrupt PNG",
        ),
        "eval.py": ([str(REPO / "eval.py"), f"ckpt={empty}"], [empty], f"error: {empty}: {empty_msg}"),
        "export.py": ([str(REPO / "export.py"), f"ckpt={empty}"], [empty], f"error: {empty}: {empty_msg}"),
        "src.capture": (
            ["-m", "src.capture", "capture/source=video", f"source.path={zero_mkv}", f"output_dir={root}/cap"],
            [zero_mkv],
            "error: source.path: OpenCV cannot open video (empty, truncated or in a format FFmpeg cannot read) "
            f"{zero_mkv}",
        ),
        "src.convert": (
            ["-m", "src.convert", f"input={capture_source}", f"output={root}/out", "sise=256"],
            [capture_source],
            "error: Could not override 'sise'; To append to your config use +sise=256; Key 'sise' is not in struct",
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["train.py", "eval.py", "export.py", "src.capture", "src.convert"])
def test_entry_point_from_the_shell_prints_one_error_line(
    entry: str, clean_dataset: Path, tmp_path: Path, project: Path
) -> None:
    argv, keep, expected = cases(tmp_path, clean_dataset)[entry]
    before = tree_hashes(*keep)
    result = shell(project, *argv)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == expected, result.stderr[-3000:]
    assert tree_hashes(*keep) == before
