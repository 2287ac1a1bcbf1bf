"""src/utils/optuna_sweeper.py without training: how a continued study counts, queues and reseeds, and how SIGTERM
stops a sweep. The trials are played by hand with Optuna's ask / tell on an sqlite file, so each state the sweeper
can leave behind (finished, failed, interrupted, queued) is set up exactly; the end-to-end run is in test_sweeps.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from src.utils.errors import UserError
from src.utils.optuna_sweeper import (
    INTERRUPTED_ATTR,
    ResumeOptunaStudy,
    StopSweepOnSigterm,
    SweepInterruptedError,
    prepare_study,
)

ARGUMENTS = ["experiment=rgbd_face", "hparams_search=rgbd_face_optuna"]


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna' / 'sweep.db'}"  # the folder does not exist yet: prepare_study makes it


def _run_trial(study: optuna.Study, value: float | None, state: str = "COMPLETE") -> optuna.trial.Trial:
    """Ask for a trial as the sweeper does; tell it unless `state` is RUNNING (a trial killed with the sweep)."""
    trial = study.ask()
    trial.suggest_float("lr", 1e-5, 1e-3)
    if state != "RUNNING":
        study.tell(trial, value, state=getattr(optuna.trial.TrialState, state))
    return trial


def _load(storage: str) -> optuna.Study:
    """A fresh handle: Optuna caches the trials it has seen running, and prepare_study changes them behind it."""
    return optuna.load_study(study_name="s", storage=storage)


def _states(storage: str) -> list[str]:
    return [t.state.name for t in _load(storage).get_trials()]


def test_a_sweep_interrupted_twice_still_runs_every_requested_trial(storage: str) -> None:
    assert prepare_study(storage, "s", ARGUMENTS, 3).remaining == 3
    study = _load(storage)
    _run_trial(study, 1.0)
    first_cut = _run_trial(study, None, "RUNNING")

    state = prepare_study(storage, "s", ARGUMENTS, 3)
    assert (state.remaining, state.stored) == (2, 2)  # 1 finished; the interrupted one does not count
    study = _load(storage)
    assert _states(storage) == ["COMPLETE", "FAIL", "WAITING"]
    assert study.get_trials()[1].user_attrs[INTERRUPTED_ATTR] is True
    rerun = _run_trial(study, 2.0)  # the continuation asks first for the queued trial: the interrupted parameters
    assert rerun.params == first_cut.params
    second_cut = _run_trial(study, None, "RUNNING")

    state = prepare_study(storage, "s", ARGUMENTS, 3)
    # naive count: COMPLETE + FAIL - newly interrupted = 3 -> nothing left, with only 2 trials really finished
    assert state.remaining == 1
    assert _states(storage) == ["COMPLETE", "FAIL", "COMPLETE", "FAIL", "WAITING"]
    assert _load(storage).get_trials()[-1].system_attrs["fixed_params"] == second_cut.params


def test_a_trial_that_failed_by_itself_counts_and_is_not_queued_again(storage: str) -> None:
    prepare_study(storage, "s", ARGUMENTS, 3)
    study = _load(storage)
    _run_trial(study, None, "FAIL")  # e.g. its config was impossible: rerunning it would fail again
    _run_trial(study, 1.0)
    assert prepare_study(storage, "s", ARGUMENTS, 3).remaining == 1
    assert _states(storage) == ["FAIL", "COMPLETE"]


def test_an_interruption_before_the_queued_trial_ran_queues_it_once(storage: str) -> None:
    prepare_study(storage, "s", ARGUMENTS, 2)
    study = _load(storage)
    _run_trial(study, None, "RUNNING")
    prepare_study(storage, "s", ARGUMENTS, 2)
    assert prepare_study(storage, "s", ARGUMENTS, 2).remaining == 2  # stopped again before anything ran
    assert _states(storage) == ["FAIL", "WAITING"]


def test_never_more_trials_queued_than_the_continued_sweep_runs(storage: str) -> None:
    """Two jobs at a time (n_jobs=2) were interrupted; the rerun lowers hydra.sweeper.n_trials (not one of the
    sweep's arguments) so that only one trial is missing: only the first interrupted one is queued."""
    prepare_study(storage, "s", ARGUMENTS, 4)
    study = _load(storage)
    _run_trial(study, 1.0)
    first_cut = _run_trial(study, None, "RUNNING")
    _run_trial(study, None, "RUNNING")
    assert prepare_study(storage, "s", ARGUMENTS, 2).remaining == 1
    trials = _load(storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "WAITING"]
    assert trials[-1].system_attrs["fixed_params"] == first_cut.params


def test_another_sweep_never_joins_the_study(storage: str) -> None:
    prepare_study(storage, "s", ARGUMENTS, 3)
    with pytest.raises(UserError, match=r"^hydra\.sweeper\.study_name=s: .* started by another sweep"):
        prepare_study(storage, "s", [*ARGUMENTS, "trainer.max_epochs=2"], 3)


def _sweep_config(storage: str, n_trials: int, seed: int | None) -> OmegaConf:
    sweeper = {
        "_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
        "storage": storage, "study_name": "s", "direction": "maximize", "n_trials": n_trials,
        "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": seed},
    }  # fmt: skip
    return OmegaConf.create({"hydra": {"sweeper": sweeper, "overrides": {"task": ARGUMENTS}}})


def test_the_continued_sweep_gets_the_missing_trials_and_a_new_seed(storage: str) -> None:
    config = _sweep_config(storage, 4, seed=1234)
    ResumeOptunaStudy().on_multirun_start(config)
    assert config.hydra.sweeper.n_trials == 4 and config.hydra.sweeper.sampler.seed == 1234  # a new study: as given
    study = _load(storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    _run_trial(study, 1.0)
    _run_trial(study, None, "RUNNING")

    config = _sweep_config(storage, 4, seed=1234)
    ResumeOptunaStudy().on_multirun_start(config)
    assert config.hydra.sweeper.n_trials == 3
    assert config.hydra.sweeper.sampler.seed == 1234 + 2  # two stored trials before this run

    unseeded = _sweep_config(storage, 4, seed=None)
    ResumeOptunaStudy().on_multirun_start(unseeded)
    assert unseeded.hydra.sweeper.sampler.seed is None


def _wait_for_signal() -> None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        time.sleep(0.01)
    pytest.fail("SIGTERM did not stop the sweep")


def test_sigterm_stops_the_sweep_with_one_line_and_the_old_handler_comes_back() -> None:
    config = OmegaConf.create({"hydra": {"job": {"num": 3}}})
    before = signal.getsignal(signal.SIGTERM)
    callback = StopSweepOnSigterm()
    callback.on_multirun_start(config)
    try:
        callback.on_job_start(config)
        with pytest.raises(SweepInterruptedError, match=r"^the sweep was stopped by SIGTERM during job 3; "):
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for_signal()
    finally:
        callback.on_multirun_end(config)
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_stops_the_sweep_when_another_handler_calls_it_first() -> None:
    """As inside a Lightning fit: Lightning installs its own handler, which sets its flag and then calls the one it
    found installed. The old behaviour (flag only) let a trial finish after the loops' last check and go on."""
    config = OmegaConf.create({"hydra": {"job": {"num": 1}}})
    callback = StopSweepOnSigterm()
    callback.on_multirun_start(config)
    ours = signal.getsignal(signal.SIGTERM)
    flags: list[int] = []

    def lightning_like(signum: int, frame: object) -> None:
        flags.append(signum)
        ours(signum, frame)

    try:
        signal.signal(signal.SIGTERM, lightning_like)
        with pytest.raises(SweepInterruptedError):
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for_signal()
        assert flags == [signal.SIGTERM]
        with pytest.raises(SweepInterruptedError):  # and the job is not recorded, even if that raise was swallowed
            callback.on_job_end(config, job_return=None)
    finally:
        signal.signal(signal.SIGTERM, ours)
        callback.on_multirun_end(config)
