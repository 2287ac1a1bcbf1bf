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


def _job_output_dir(job_return: JobReturn) -> str:
    """The job's own run folder (traceback.txt, train.log); working_dir is the launch folder when chdir is off."""
    hydra_cfg = job_return.hydra_cfg
    output_dir = hydra_cfg.hydra.runtime.get("output_dir") if hydra_cfg is not None else None
    return str(output_dir or job_return.working_dir)


# The failed jobs of this process's sweep: their exceptions (by identity) and the file that lists them.
_FAILED: dict[str, Any] = {"errors": [], "file": None}


def sweep_failure_message(err: BaseException) -> str | None:
    """One line for an error the sweeper raised *because* jobs failed (e.g. Optuna: no trial completed).

    None when no job failed, or when `err` is a failed job's own exception (reported as that job's error).
    """
    errors = _FAILED["errors"]
    if not errors or any(err is job_error for job_error in errors):
        return None
    return f"every job of the sweep failed ({len(errors)}); they are listed in {_FAILED['file']}"


class ReportFailedJobs(Callback):
    def __init__(self) -> None:
        self.failures: list[str] = []
        _FAILED["errors"] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # A single run's failure is its own `error: ...` line (src/utils/errors.py); only a sweep needs the list.
        if job_return.status != JobStatus.FAILED or config.hydra.mode != RunMode.MULTIRUN:
            return
        err = job_return._return_value  # the exception; the public property would re-raise it
        message = describe_user_error(err) or f"{type(err).__name__}: {_one_line(err)}"
        overrides = " ".join(job_return.overrides or []) or "(no overrides)"
        line = f"job failed [{overrides}]: {message} (outputs: {_job_output_dir(job_return)})"
        self.failures.append(line)
        _FAILED["errors"].append(err)
        log.error(line)
        # Written at once: the basic sweeper raises the first failure after its batch, before on_multirun_end.
        _FAILED["file"] = Path(config.hydra.sweep.dir) / "failed_jobs.txt"
        write_text_atomic(_FAILED["file"], "\n".join(self.failures) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.failures:
            log.error(
                f"{len(self.failures)} job(s) failed; listed in {Path(config.hydra.sweep.dir) / 'failed_jobs.txt'}"
            )
