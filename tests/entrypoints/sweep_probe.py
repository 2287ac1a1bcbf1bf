"""Callbacks that hold one sweep job at a named point until the test stops the sweep with SIGTERM.

They make the interrupted-sweep test deterministic: the job announces the point it reached by writing `marker`,
then waits, so the SIGTERM lands exactly there however fast or slow the machine is. A later run of the same
command finds the marker and does not stop. Added to a command with `+callbacks.<name>=...` (Lightning hooks) or
`+hydra.callbacks.<name>=...` (before the job's task starts, outside any Lightning handler).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from lightning.pytorch import Callback, LightningModule, Trainer
from omegaconf import DictConfig

POLL_S = 0.05


def _job_number() -> int:
    """The sweep job's number; a single run (no `hydra.job.num`) counts as job 0."""
    job = HydraConfig.get().job
    return int(job.num) if "num" in job and job.num is not None else 0


def _claim(marker: Path, point: str) -> bool:
    """True the first time any job reaches the hold point (the marker is then written for the test to see)."""
    if marker.exists():
        return False
    marker.write_text(point)
    return True


class HoldTrainerUntilSigterm(Callback):
    """In sweep job `job`, stop at the Lightning hook `hook` until Lightning's SIGTERM flag is set, then go on, as
    Lightning would. `on_train_end` runs after the loops' last SIGTERM check: a SIGTERM there used to be swallowed."""

    def __init__(self, hook: str, job: int, marker: str, timeout_s: float = 300.0) -> None:
        if hook not in ("on_train_start", "on_train_end"):
            raise ValueError(f"hook must be on_train_start or on_train_end, got {hook}")
        self.hook, self.job, self.marker, self.timeout_s = hook, job, Path(marker), timeout_s

    def _hold(self, trainer: Trainer, point: str) -> None:
        if point != self.hook or _job_number() != self.job or not _claim(self.marker, point):
            return
        deadline = time.monotonic() + self.timeout_s
        while not trainer.received_sigterm:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no SIGTERM reached job {self.job} at {point} within {self.timeout_s} s")
            time.sleep(POLL_S)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._hold(trainer, "on_train_start")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._hold(trainer, "on_train_end")


class HoldJobStartUntilSigterm(HydraCallback):
    """In sweep job `job`, wait before the task starts (no Lightning handler installed) until the process is
    stopped. A timeout ends the command (SystemExit: Hydra turns a callback's Exception into a warning)."""

    def __init__(self, job: int, marker: str, timeout_s: float = 300.0) -> None:
        self.job, self.marker, self.timeout_s = job, Path(marker), timeout_s

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if int(config.hydra.job.num) != self.job or not _claim(self.marker, "on_job_start"):
            return
        time.sleep(self.timeout_s)
        raise SystemExit(f"no SIGTERM stopped job {self.job} within {self.timeout_s} s")
