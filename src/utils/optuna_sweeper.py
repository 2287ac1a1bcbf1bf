"""Optuna sweeps that resume: an interrupted sweep rerun with the same command continues its study.

hydra-optuna-sweeper already reopens a study that exists in its storage (`load_if_exists`), but then runs
`n_trials` *more* trials and leaves the trials that were running when the sweep was killed as RUNNING for ever.
Here, before the sweep starts:
- the storage folder of a `sqlite:///<file>` storage is created;
- a study that exists must have been started by the same sweep (the same command-line arguments, stored as a study
  attribute), otherwise one error line says so: a different sweep never silently joins an old study;
- trials left RUNNING by the interrupted sweep are marked FAIL (they are rerun as new trials);
- only the trials still missing are run: `n_trials` counts the study's finished trials (complete or failed).
The sampler sees every stored trial, so TPE goes on from what the first part learned. Hydra accepts sweepers only
from its `hydra_plugins` package, so this runs as a Hydra callback (`ResumeOptunaStudy`, on_multirun_start: before
the sweeper is built from the same config) that sets the sweeper's `n_trials` to what is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, read_write
from optuna.trial import TrialState

from src.utils.errors import UncatchableUserError, UserError

log = logging.getLogger(__name__)

ARGUMENTS_ATTR = "facesynth_sweep_arguments"


def _sqlite_file(storage: str) -> Path | None:
    return Path(storage[len("sqlite:///") :]) if storage.startswith("sqlite:///") else None


def prepare_study(
    storage: str, study_name: str, arguments: list[str], n_trials: int, directions: list[str] | None = None
) -> int:
    """Open or create the study for this sweep; returns how many trials are still to run (see the module docstring)."""
    sqlite = _sqlite_file(storage)
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
    names = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
    if study_name not in names:
        study = optuna.create_study(study_name=study_name, storage=storage, directions=directions or ["minimize"])
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
            remaining = prepare_study(
                str(sweeper.storage), str(sweeper.study_name), arguments, int(sweeper.n_trials), directions
            )
        except UserError as err:  # Hydra would only warn about an Exception raised in a callback
            raise UncatchableUserError(str(err)) from None
        with read_write(config.hydra):
            sweeper.n_trials = remaining
