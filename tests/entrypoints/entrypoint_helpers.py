"""Helpers of the entry-point tests: run train.py / eval.py / export.py exactly as a user types them.

Outputs go where a user's would, under the project root, which the tests move to a temporary folder through the
environment (PROJECT_ROOT and the working directory) only, never through extra overrides: a path override would
hide exactly the bugs these tests exist for (e.g. hydra.sweep.dir resolved before Hydra starts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.framework.framework_fixtures import REPO, TINY_RGBD_RUN


def tiny_overrides(dataset: Path, *extra: str) -> list[str]:
    """experiment=rgbd_face shrunk to seconds on a CPU (framework_fixtures' settings) with no paths.* override."""
    return [*TINY_RGBD_RUN, f"data.root={dataset}", *extra]


def user_env(project: Path) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PROJECT_ROOT": str(project), "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)  # a developer's setting would turn every one-line error into a traceback
    return env


def run_script(project: Path, script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python <script> args...` from the project folder, as a user runs it."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=project, env=user_env(project), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def run_until(
    project: Path, script: str, args: list[str], done: Callable[[], bool], timeout: float = 900.0, poll_s: float = 1.0
) -> tuple[bool, int | None, str]:
    """Run a long command and stop it (SIGTERM to its process group) once `done()` holds while it runs.

    Returns (done reached while the command ran, exit code: its own or after the SIGTERM, stderr tail). A command
    that ends by itself before `done()` was seen is not "reached", even if `done()` holds afterwards: that would
    hide a stop that never happened.
    """
    log = project / f"{script}.stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(REPO / script), *args],
            cwd=project, env=user_env(project), stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        reached = False
        while time.monotonic() < deadline and process.poll() is None:
            if done():
                reached = True
                break
            time.sleep(poll_s)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    return reached, process.returncode, log.read_text()[-3000:]


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def only_child(folder: Path) -> Path:
    children = sorted(p for p in folder.iterdir() if p.is_dir())
    assert len(children) == 1, f"expected one folder in {folder}, found {[p.name for p in children]}"
    return children[0]
