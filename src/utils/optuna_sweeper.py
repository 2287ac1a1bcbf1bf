"""The Optuna sweeper, resumable: an interrupted sweep rerun with the same command continues its study.

hydra-optuna-sweeper already reopens a study that exists in its storage (`load_if_exists`), but then runs
`n_trials` *more* trials and leaves the trials that were running when the sweep was killed as RUNNING for ever.
Here, before the sweep starts:
- the storage folder of a `sqlite:///<file>` storage is created;
- a study that exists must have been started by the same sweep (the same command-line arguments, stored as a study
  attribute), otherwise one error line says so: a different sweep never silently joins an old study;
- trials left RUNNING by the interrupted sweep are marked FAIL (they are rerun as new trials);
- only the trials still missing are run: `n_trials` counts the study's finished trials (complete or failed).
The sampler sees every stored trial, so TPE goes on from what the first part learned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from optuna.trial import TrialState

from src.utils.errors import UserError

log = logging.getLogger(__name__)

ARGUMENTS_ATTR = "facesynth_sweep_arguments"


def _sqlite_file(storage: str) -> Path | None:
    return Path(storage[len("sqlite:///") :]) if storage.startswith("sqlite:///") else None


def prepare_study(storage: str, study_name: str, arguments: list[str], n_trials: int) -> int:
    """Open or create the study for this sweep; returns how many trials are still to run (see the module docstring)."""
    sqlite = _sqlite_file(storage)
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
    names = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
    if study_name not in names:
        study = optuna.create_study(study_name=study_name, storage=storage)
        study.set_user_attr(ARGUMENTS_ATTR, list(arguments))
        return n_trials
    study = optuna.load_study(study_name=study_name, storage=storage)
    stored = study.user_attrs.get(ARGUMENTS_ATTR)
    if stored != list(arguments):
        raise UserError(
            f"hydra.sweeper.study_name={study_name}: {storage} already holds this study, started by another sweep "
            f"({' '.join(stored or ['(unknown)'])}); rerun that command to continue it, or give a new "
            "hydra.sweeper.study_name"
        )
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for trial in stale:  # killed with the sweep; its job reruns as a new trial
        study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in study.get_trials(deepcopy=False))
    finished -= len(stale)
    remaining = max(0, n_trials - finished)
    log.info(
        f"Optuna study {study_name} continues from {storage}: {finished} trial(s) finished, {len(stale)} interrupted "
        f"(marked failed), {remaining} to run"
    )
    return remaining


class ResumableOptunaSweeper(OptunaSweeper):
    """OptunaSweeper whose sweep continues its stored study when rerun (see the module docstring)."""

    def sweep(self, arguments: list[str]) -> Any:
        impl = self.sweeper
        if impl.storage:
            impl.n_trials = prepare_study(str(impl.storage), str(impl.study_name), list(arguments), int(impl.n_trials))
        return super().sweep(arguments)
