"""The README harness itself: a clean user environment, markers, and no process left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.readme.harness import activated_env, complete_file, run_command


def test_activated_env_is_a_users_shell_not_the_test_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECT_ROOT", "/elsewhere")  # set by other tests; would redirect logs and data there
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    env = activated_env(tmp_path)
    assert "PROJECT_ROOT" not in env and "HYDRA_FULL_ERROR" not in env
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / ".venv" / "bin")
    assert env["VIRTUAL_ENV"] == str(tmp_path / ".venv")


def test_a_marker_stops_the_command_and_its_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = f"sleep 300 & echo $! > {pids}.tmp; echo $$ >> {pids}.tmp; mv {pids}.tmp {pids}; echo started; wait"
    start = time.time()
    outcome = run_command(tmp_path, command, timeout_s=60, marker=complete_file("pids", tmp_path, start - 1))
    assert outcome.stopped_at_marker and outcome.returncode is None and "started" in outcome.output
    assert outcome.seconds < 30
    for pid in (int(line) for line in pids.read_text().split()):
        assert not _running(pid), f"process {pid} of the stopped command is still running"


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan stays a zombie until init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_exit_code_and_timeout_are_reported(tmp_path: Path) -> None:
    failed = run_command(tmp_path, "echo 'error: no such thing'; exit 1", timeout_s=30)
    assert failed.returncode == 1 and failed.error_lines() == ["error: no such thing"]
    slow = run_command(tmp_path, "sleep 60", timeout_s=2)
    assert slow.returncode is None and not slow.stopped_at_marker and "limit" in slow.output
