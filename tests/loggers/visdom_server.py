"""A real visdom server for the tests, from a venv made with the README's commands.

The `visdom` package is not in requirements.txt (its sdist cannot be built by a current pip; see
src/utils/visdom_logger.py), so the tests build the server's venv exactly as the README tells users to, and
start the server through `visdom.server.run_server.main`: `python -m visdom.server` first downloads the web
page's scripts from CDNs and dies on a machine without internet, while run_server.main is the same server
without that step. Environment files go to a folder of the test's choosing, never to ~/.visdom.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The README's install line for the server's venv (run with cwd = the folder that gets `.visdom`).
VISDOM_VENV_COMMAND = (
    'python3 -m venv .visdom && .visdom/bin/pip install "setuptools<81" wheel '
    "&& .visdom/bin/pip install --no-build-isolation visdom==0.2.4"
)
# The server without the CDN download (README: "offline, start it with ...").
OFFLINE_SERVER_CODE = "from visdom.server.run_server import main; main()"
INSTALL_TIMEOUT_S = 600
START_TIMEOUT_S = 30.0


class VisdomVenvUnavailableError(RuntimeError):
    """The venv could not be made (no PyPI, no python3 -m venv): the real-server tests skip with this message."""


def make_visdom_venv(folder: Path) -> Path:
    """Run the README's install line in `folder`; the venv's python. Raises VisdomVenvUnavailableError."""
    folder.mkdir(parents=True, exist_ok=True)
    python = folder / ".visdom" / "bin" / "python"
    if python.exists() and _imports_visdom(python):
        return python
    if shutil.which("python3") is None:
        raise VisdomVenvUnavailableError("python3 is not on PATH")
    try:
        result = subprocess.run(
            ["bash", "-c", VISDOM_VENV_COMMAND],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise VisdomVenvUnavailableError(f"`{VISDOM_VENV_COMMAND}` ran over {INSTALL_TIMEOUT_S} s") from None
    if result.returncode != 0 or not _imports_visdom(python):
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise VisdomVenvUnavailableError(f"`{VISDOM_VENV_COMMAND}` failed: {tail[0]}")
    return python


def _imports_visdom(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import visdom.server"], capture_output=True).returncode == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(process: subprocess.Popen, port: int, timeout: float = START_TIMEOUT_S) -> None:
    """Return once 127.0.0.1:port accepts connections; raise with the server's own output if it died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"visdom server exited with code {process.returncode}: {output[-800:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"visdom server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """Terminate the process we started (and only it), then reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_server(python: Path, port: int, env_path: Path) -> Iterator[subprocess.Popen]:
    """A visdom server on 127.0.0.1:port for the duration of the block."""
    env_path.mkdir(parents=True, exist_ok=True)
    command = [str(python), "-c", OFFLINE_SERVER_CODE, "-port", str(port), "--hostname", "127.0.0.1"]
    command += ["-env_path", str(env_path), "-logging_level", "WARNING"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until_listening(process, port)
        yield process
    finally:
        stop(process)
