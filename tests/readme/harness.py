"""Run README commands as written in a throw-away copy of the repository.

The copy holds what a fresh clone of this working tree would hold (`git ls-files --cached --others
--exclude-standard`, with the working-tree content, so uncommitted work is tested too) plus `.venv`, a symlink
to the project's already-built venv. Commands run through `bash -c <line>` with that venv activated (its bin/
first on PATH, VIRTUAL_ENV set), as a user who followed the quick start would run them; `.venv/bin/...`
commands use the same venv through the symlink.

A long command may be stopped once a marker shows it did its job (a checkpoint after the first epoch, the first
multirun job's checkpoint): the whole process group is terminated, so dataloader or writer workers go too.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Local folders a user may have next to the clone that are not part of it (venvs, caches); never copied.
NOT_COPIED = (".venv", ".visdom", ".venv-ci", "data/cache", "logs", "outputs", "multirun")


def copy_working_tree(destination: Path) -> Path:
    """Copy the files a clone of the working tree holds into destination (created), plus .venv as a symlink."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    destination.mkdir(parents=True, exist_ok=True)
    archive = destination / ".copy.tar"
    with tarfile.open(archive, "w") as tar:
        for name in filter(None, listing.split("\0")):
            source = REPO / name
            if any(name == skip or name.startswith(skip + "/") for skip in NOT_COPIED) or not source.is_file():
                continue  # deleted in the working tree, or a local folder
            tar.add(source, arcname=name, recursive=False)
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="tar")
    archive.unlink()
    (destination / ".venv").symlink_to(REPO / ".venv")
    return destination


def activated_env(repo: Path) -> dict[str, str]:
    """The environment of a user's shell in which `. .venv/bin/activate` was run (one thread each: CPU is shared).

    Variables the test process itself may carry are dropped: PROJECT_ROOT (tests set it; the entry points would
    then write their logs and data into that project instead of the copy), PYTHONPATH, HYDRA_* and PYTEST_*.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PROJECT_ROOT", "PYTHONPATH", "VIRTUAL_ENV") and not key.startswith(("HYDRA_", "PYTEST_"))
    }
    env.update(
        VIRTUAL_ENV=str(repo / ".venv"),
        PATH=f"{repo / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
        MPLBACKEND="Agg",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Outcome:
    """How a README command ended: exit code (None: stopped by us), output, wall and CPU seconds."""

    command: str
    returncode: int | None
    output: str
    seconds: float
    stopped_at_marker: bool = False
    cpu_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def error_lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith("error:")]


def _terminate_group(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM the process group this harness started for the command; SIGKILL the group after grace_s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    time.sleep(0.5)  # workers of the group may outlive the leader for a moment
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=grace_s)


def run_command(
    repo: Path,
    command: str,
    timeout_s: float,
    marker: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
) -> Outcome:
    """`bash -c command` in repo; with a marker, stop the command once marker() holds (checked every second)."""
    log_path = repo / ".readme-command.log"
    start, cpu_before = time.monotonic(), _children_cpu_seconds()
    ending = "exited"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=repo,
            env=env or activated_env(repo),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while ending == "exited":
                try:
                    process.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if marker is not None and marker():
                    ending = "marker"
                elif time.monotonic() - start > timeout_s:
                    ending = "timeout"
        finally:
            if process.poll() is None:
                _terminate_group(process)
            else:  # the leader exited; leftover children of its group must not outlive the test
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
    seconds = time.monotonic() - start
    output = log_path.read_text(errors="replace")
    log_path.unlink()
    if ending == "timeout":
        output += f"\n[readme harness: stopped at the {timeout_s:.0f} s limit]"
    returncode = process.returncode if ending == "exited" else None
    cpu = _children_cpu_seconds() - cpu_before
    return Outcome(command, returncode, output, seconds, stopped_at_marker=ending == "marker", cpu_seconds=cpu)


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's reaped children (commands run one at a time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def newest(pattern: str, root: Path, after: float = 0.0) -> Path | None:
    """The most recently modified path matching the glob pattern under root, modified after `after` (epoch s)."""
    found = [p for p in root.glob(pattern) if p.stat().st_mtime >= after]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def complete_file(pattern: str, root: Path, after: float) -> Callable[[], bool]:
    """A marker: a file matching pattern, written after `after`, whose size stayed the same for two checks."""
    sizes: dict[Path, int] = {}

    def done() -> bool:
        path = newest(pattern, root, after)
        if path is None:
            return False
        size = path.stat().st_size
        stable = size > 0 and sizes.get(path) == size
        sizes[path] = size
        return stable

    return done


@contextlib.contextmanager
def serving(repo: Path, command: str, port: int, start_timeout_s: float = 120.0) -> Iterator[subprocess.Popen]:
    """Run a server command as written (bash -c, own process group) while the block runs; it must listen on
    127.0.0.1:port within start_timeout_s. Raises ServerExitedError with its output when it exits first."""
    log_path = repo / f".readme-server-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=repo,
            env=activated_env(repo),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                raise ServerExitedError(command, process.returncode, log_path.read_text(errors="replace"))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"`{command}` did not listen on port {port} in {start_timeout_s:.0f} s"
                    ) from None
                time.sleep(0.25)
        yield process
    finally:
        if process.poll() is None:
            _terminate_group(process)
        log_path.unlink(missing_ok=True)


class ServerExitedError(RuntimeError):
    def __init__(self, command: str, returncode: int, output: str) -> None:
        super().__init__(f"`{command}` exited with code {returncode} before listening:\n{output[-1500:]}")
        self.output = output
