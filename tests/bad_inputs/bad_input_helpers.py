"""Helpers of the bad-input suite: run an entry point as a user types it, hash what must survive, damage files.

In-process runs (`run_entry`) go through the same code as the shell command: the module's Hydra `main` wrapped the
way its `__main__` wraps it (train.py / eval.py / `python -m src.capture` through run_cli; `python -m src.convert`
calls its main bare). A whole Python start per case would cost ~4 CPU-s; the in-process run ~0.3 s. The disk-full
cases need a process of their own (a file-size limit), and tests/bad_inputs/test_cli_spot_checks.py (slow) re-runs
one case per entry point from the shell.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
from collections.abc import Callable
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


def entry_main(entry: str) -> Callable[[], object]:
    """The callable a shell command runs: 'train.py', 'eval.py', 'src.capture', 'src.convert'."""
    from src.utils.errors import run_cli

    if entry in ("train.py", "eval.py"):
        module = __import__(entry.removesuffix(".py"))
        return lambda: run_cli(module.main)
    if entry == "src.capture":
        from src.capture.__main__ import main as capture_main

        return lambda: run_cli(capture_main)
    if entry == "src.convert":
        from src.convert.__main__ import main as convert_main

        return convert_main
    raise ValueError(f"unknown entry point {entry!r}")


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
                entry_main(entry)()
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
