"""Hydra callbacks: a failed multirun job is reported at once (one line) and listed at the end of the sweep.

Jobs re-raise their exception (src/utils/task.py) so Hydra records them as FAILED; the basic sweeper runs the
whole batch before raising, and the Optuna sweeper tolerates failures up to `max_failure_rate`. This callback
makes the failures visible while the sweep goes on, and writes `failed_jobs.txt` into the sweep folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from src.io.atomic import write_text_atomic
from src.utils.errors import _one_line, describe_user_error

log = logging.getLogger(__name__)


class ReportFailedJobs(Callback):
    def __init__(self) -> None:
        self.failures: list[str] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.FAILED:
            return
        err = job_return._return_value  # the exception; the public property would re-raise it
        message = describe_user_error(err) or f"{type(err).__name__}: {_one_line(err)}"
        overrides = " ".join(job_return.overrides or []) or "(no overrides)"
        line = f"job failed [{overrides}]: {message} (outputs: {job_return.working_dir})"
        self.failures.append(line)
        log.error(line)
        # Written at once: the basic sweeper raises the first failure after its batch, before on_multirun_end.
        if config.hydra.mode == RunMode.MULTIRUN:
            write_text_atomic(Path(config.hydra.sweep.dir) / "failed_jobs.txt", "\n".join(self.failures) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.failures:
            log.error(
                f"{len(self.failures)} job(s) failed; listed in {Path(config.hydra.sweep.dir) / 'failed_jobs.txt'}"
            )
