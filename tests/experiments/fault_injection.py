"""Fault injection for the resume tests: a callback that kills (SIGKILL) or interrupts a run at a chosen point.

Added to a run from the command line, e.g. `+callbacks.kill._target_=tests.experiments.fault_injection.KillAt
+callbacks.kill.train_batches=3 +callbacks.kill.how=sigkill`. Lightning runs checkpoint callbacks after all others,
so a kill at the end of training batch k happens before that batch's checkpoint: last.ckpt then holds batch k-1,
as after a real kill between two saves.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class SimulatedKillError(RuntimeError):
    """Raised instead of SIGKILL by in-process tests (pytest must survive)."""


def die(how: str, where: str) -> None:
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise SimulatedKillError(f"simulated kill {where}")


class KillAt(Callback):
    """Kill the run when `train_batches` training batches are done (counted over the whole run, resumes included),
    or at validation batch `val_batch` of the validation that follows `val_after_train_batches` training batches."""

    def __init__(
        self,
        train_batches: int | None = None,
        val_after_train_batches: int | None = None,
        val_batch: int = 0,
        how: str = "raise",
    ) -> None:
        self.train_batches = train_batches
        self.val_after_train_batches = val_after_train_batches
        self.val_batch = val_batch
        self.how = how

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if trainer.ckpt_path is not None:  # the resumed run (same config, callback included) goes on
            return
        if trainer.fit_loop.epoch_loop.batch_progress.total.processed == self.train_batches:
            die(self.how, f"after training batch {self.train_batches}")

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.total.processed
        if (
            trainer.ckpt_path is None
            and not trainer.sanity_checking
            and done == self.val_after_train_batches
            and batch_idx == self.val_batch
        ):
            die(self.how, f"in validation batch {batch_idx} after training batch {done}")


class PoisonBatch(Callback):
    """Fill `key` of training batch number `train_batch` (1-based over the run) with NaN: a diverging loss."""

    def __init__(self, train_batch: int, key: str) -> None:
        self.train_batch = train_batch
        self.key = key

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.ready == self.train_batch:
            batch[self.key].fill_(float("nan"))
