"""Helpers of the bad-input suite: run an entry point as a user types it, hash what must survive, damage files.

In-process runs (`run_entry`) execute the script or `-m` module as `__main__` (runpy), so the exact code of the
shell command runs, with its own error layer. A fresh Python per case would cost ~4 CPU-s (imports); in-process a
case costs ~0.3 s. The disk-full cases need a process of their own (a file-size limit), and
test_cli_spot_checks.py re-runs one case per entry point from the shell.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Outcome:
    code: int | str | None
    stderr: str
    stdout: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def describe(self) -> str:
        return f"exit {self.code!r}; stderr tail:\n{self.stderr[-2500:]}"


def run_as_main(entry: str) -> None:
    """Execute the entry point the way `python train.py` / `python -m src.convert` does: as `__main__`.

    Hydra finds conf/ relative to the calling file only when the task function lives in `__main__`, and each
    `__main__` wraps its Hydra main its own way (run_cli or not), so the script itself is run, not its `main`.
    """
    if entry.endswith(".py"):
        runpy.run_path(str(REPO / entry), run_name="__main__")
    else:
        runpy.run_module(entry, run_name="__main__", alter_sys=True)


def run_entry(entry: str, args: list[str], project: Path) -> Outcome:
    """`python <entry> args...` in-process from `project` (its PROJECT_ROOT and working directory)."""
    saved_env, saved_argv, saved_cwd = dict(os.environ), list(sys.argv), os.getcwd()
    os.environ.update({"PROJECT_ROOT": str(project), "OMP_NUM_THREADS": "1"})
    os.environ.pop("HYDRA_FULL_ERROR", None)
    sys.argv = [entry, *args]
    os.chdir(project)
    GlobalHydra.instance().clear()
    err, out = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                run_as_main(entry)
            except SystemExit as exit_:
                code = exit_.code
            except Exception as bug:  # a traceback the user would see
                import traceback

                traceback.print_exc(file=err)
                code = f"uncaught {type(bug).__name__}"
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        GlobalHydra.instance().clear()
    return Outcome(code, err.getvalue(), out.getvalue())


def tree_hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file below the roots (a file itself counts as a root): what must not change."""
    hashes = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def assert_one_line_error(outcome: Outcome, *expected: str) -> None:
    """Exit code 1, no traceback, the last stderr line is `error: ...` holding every expected fragment."""
    assert "Traceback" not in outcome.stderr, outcome.describe()
    assert outcome.code == 1, outcome.describe()
    line = outcome.last_line
    assert line.startswith("error: "), outcome.describe()
    missing = [part for part in expected if part not in line]
    assert not missing, f"{missing} not in the error line: {line}"
    assert len(line) < 1500, line


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
