"""Optuna sweeps that resume: an interrupted sweep rerun with the same command continues its study.

hydra-optuna-sweeper already reopens a study that exists in its storage (`load_if_exists`), but then runs
`n_trials` *more* trials and leaves the trials that were running when the sweep was killed as RUNNING for ever.
Here, before the sweep starts:
- the storage folder of a `sqlite:///<file>` storage is created;
- a study that exists must have been started by the same sweep (the same command-line arguments, stored as a study
  attribute), otherwise one error line says so: a different sweep never silently joins an old study;
- trials left RUNNING by the interrupted sweep are marked FAIL, tagged as interrupted, and their parameters are
  queued: the continued sweep first reruns exactly what was interrupted;
- only the trials still missing are run: `n_trials` counts the study's finished trials (complete, or failed by
  themselves); interrupted trials never count, however often the sweep was interrupted;
- a seeded sampler is reseeded with seed + the number of stored trials. The sweeper builds a fresh sampler from
  the config, so with the plain seed the continued sweep replayed the first part's random draws and trained an
  exact copy of its first trial.
The sampler sees every stored trial, so TPE goes on from what the first part learned. Hydra accepts sweepers only
from its `hydra_plugins` package, so this runs as a Hydra callback (`ResumeOptunaStudy`, on_multirun_start: before
the sweeper is built from the same config) that sets the sweeper's `n_trials` to what is missing.

An interrupted trial must never be told to Optuna as finished. Lightning's SIGTERM handler only sets a flag that its
loops check at batch and epoch ends: a SIGTERM landing after the last check of a `fit` or `test` (on_train_end,
the last test batch, the final checkpoint) was swallowed, the trial was recorded COMPLETE and the sweep went on
with its next trial. `StopSweepOnSigterm` makes SIGTERM stop the sweep at once, wherever it lands: the running
trial stays RUNNING (marked FAIL and rerun by the next run of the same command) and the command ends with one
`error: ...` line.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, read_write
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from src.utils.errors import UncatchableUserError, UserError

log = logging.getLogger(__name__)

ARGUMENTS_ATTR = "facesynth_sweep_arguments"
INTERRUPTED_ATTR = "facesynth_interrupted"


def _sqlite_file(storage: str) -> Path | None:
    return Path(storage[len("sqlite:///") :]) if storage.startswith("sqlite:///") else None


@dataclass(frozen=True)
class StudyState:
    """What the sweep still has to do: `remaining` trials to run, `stored` trials already in the study."""

    remaining: int
    stored: int


def prepare_study(
    storage: str, study_name: str, arguments: list[str], n_trials: int, directions: list[str] | None = None
) -> StudyState:
    """Open or create the study for this sweep and queue its interrupted trials (see the module docstring)."""
    sqlite = _sqlite_file(storage)
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
    names = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
    if study_name not in names:
        study = optuna.create_study(study_name=study_name, storage=storage, directions=directions or ["minimize"])
        study.set_user_attr(ARGUMENTS_ATTR, list(arguments))
        return StudyState(remaining=n_trials, stored=0)
    study = optuna.load_study(study_name=study_name, storage=storage)
    stored = study.user_attrs.get(ARGUMENTS_ATTR)
    if stored != list(arguments):
        raise UserError(
            f"hydra.sweeper.study_name={study_name}: {storage} already holds this study, started by another sweep "
            f"({' '.join(stored or ['(unknown)'])}); rerun that command to continue it, or give a new "
            "hydra.sweeper.study_name"
        )
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for trial in stale:  # killed with the sweep; rerun as a new trial (tagged first: a finished trial is frozen)
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, True)
        study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    finished = sum(
        t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED_ATTR))
        for t in trials
    )
    remaining = max(0, n_trials - finished)
    # Trials still queued (an earlier continuation stopped before asking for them) run first; never queue more than
    # the run will ask for (a rerun may lower hydra.sweeper.n_trials, which is not one of the sweep's arguments).
    queued = sum(t.state == TrialState.WAITING for t in trials)
    for trial in stale[: max(0, remaining - queued)]:
        with warnings.catch_warnings():  # enqueue_trial is "experimental" in Optuna 2.x, and stable since
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.enqueue_trial(trial.params)
    log.info(
        f"Optuna study {study_name} continues from {storage}: {finished} trial(s) finished, {len(stale)} interrupted "
        f"(marked failed and queued to run again), {remaining} to run"
    )
    return StudyState(remaining=remaining, stored=len(trials))


class ResumeOptunaStudy(Callback):
    """Hydra callback of conf/hparams_search/*optuna*: continue the stored study (see the module docstring)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        if not str(sweeper.get("_target_", "")).endswith("OptunaSweeper") or not sweeper.get("storage"):
            return
        arguments = [str(a) for a in config.hydra.overrides.task]
        direction = sweeper.get("direction") or "minimize"
        directions = [str(d) for d in direction] if isinstance(direction, ListConfig | list) else [str(direction)]
        try:
            state = prepare_study(
                str(sweeper.storage), str(sweeper.study_name), arguments, int(sweeper.n_trials), directions
            )
        except UserError as err:  # Hydra would only warn about an Exception raised in a callback
            raise UncatchableUserError(str(err)) from None
        with read_write(config.hydra):
            sweeper.n_trials = state.remaining
            sampler = sweeper.get("sampler")
            if state.stored and sampler is not None and sampler.get("seed") is not None:
                sampler.seed = int(sampler.seed) + state.stored


class SweepInterruptedError(UncatchableUserError):
    """SIGTERM stopped the sweep; BaseException so that neither Hydra's job runner nor the sweeper records it."""


class StopSweepOnSigterm(Callback):
    """Hydra callback: SIGTERM stops the whole sweep at once, leaving the running trial unfinished (see the module
    docstring). Inside a Lightning fit / test, Lightning's own handler calls this one after setting its flag (it
    keeps a handler it finds installed); outside them this is the only handler. Either way the sweep stops here."""

    def __init__(self) -> None:
        self.job: int | None = None
        self.received = False
        self._previous: Any = None
        self._pid = os.getpid()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        self._pid = os.getpid()
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.job = int(config.hydra.job.num)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if self.received:  # a handler installed after ours swallowed the exception: the trial must still not count
            raise self._interrupted()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous)

    def _interrupted(self) -> SweepInterruptedError:
        during = f" during job {self.job}" if self.job is not None else ""
        return SweepInterruptedError(
            f"the sweep was stopped by SIGTERM{during}; that trial is not recorded as finished: run the same "
            "command again to continue the sweep"
        )

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked data-loader worker inherited the handler: die as by default
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.received = True
        raise self._interrupted()
