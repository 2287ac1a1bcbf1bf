"""A single training run stopped by SIGTERM says so and exits 143, instead of Lightning's silent exit code 0.

Lightning turns SIGTERM into SystemExit() at the next batch end; without train.py's handling a job scheduler (or
a user's script) would read the interrupted run as finished. The probe holds the run at on_train_start until the
signal has arrived, so the stop lands inside fit however fast the machine is.
"""

from __future__ import annotations

from pathlib import Path

from entrypoint_helpers import last_line, run_until, tiny_overrides

PROBE = "tests.entrypoints.sweep_probe.HoldTrainerUntilSigterm"


def test_single_run_stopped_by_sigterm_exits_143_with_one_line(dataset: Path, project: Path) -> None:
    marker = project / "held_at.txt"
    command = [
        *tiny_overrides(dataset, "test=false", "trainer.max_epochs=3"),
        f"+callbacks.hold._target_={PROBE}", "+callbacks.hold.job=0", f"+callbacks.hold.marker={marker}",
        "+callbacks.hold.hook=on_train_start",
    ]  # fmt: skip
    reached, code, stderr = run_until(project, "train.py", command, marker.is_file, timeout=600, poll_s=0.1)
    assert reached, f"the run never reached on_train_start (exit code {code}):\n{stderr}"
    assert code == 143, f"exit code {code}:\n{stderr}"
    assert last_line(stderr) == (
        "error: training was stopped by SIGTERM before it finished; continue it with "
        "python train.py ckpt_path=<run>/checkpoints/last.ckpt"
    ), stderr
    assert "Traceback" not in stderr
