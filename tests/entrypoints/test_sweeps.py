"""Both README sweep commands run from the shell, without a hydra.sweep.dir override; a failing job is reported
at once, listed in failed_jobs.txt, and the sweep goes on.

Before the fix every -m run died at once with "HydraConfig was not set (key: hydra.sweep.dir)": the fallback of
paths.root_dir (${hydra:runtime.cwd}) was resolved while Hydra resolved the sweep folder, before its own config
existed. The older tests passed hydra.sweep.dir and so never resolved it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from entrypoint_helpers import last_line, only_child, run_script, run_until, tiny_overrides

from src.utils.checkpoint import read_checkpoint


def _job_override(job: Path, key: str) -> str:
    overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    return next(o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key)


def test_value_sweep_reports_a_failing_job_and_goes_on(dataset: Path, project: Path) -> None:
    # job 0 fails before training (an impossible split), job 1 must still train to the end
    result = run_script(project, "train.py", "-m", *tiny_overrides(dataset, "test=false"), "data.val_fraction=1.5,0.25")
    assert "HydraConfig was not set" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 1, result.stderr[-2000:]
    sweep = only_child(project / "logs" / "train" / "multiruns")
    assert read_checkpoint(sweep / "1" / "checkpoints" / "last.ckpt")["epoch"] == 1  # two epochs: 0 and 1
    failed = (sweep / "failed_jobs.txt").read_text().splitlines()
    assert len(failed) == 1 and "data.val_fraction=1.5" in failed[0]
    assert "data.val_fraction must be in [0, 1)" in failed[0] and f"(outputs: {sweep / '0'})" in failed[0]
    assert (sweep / "0" / "traceback.txt").is_file() and not (sweep / "0" / "checkpoints").exists()
    assert last_line(result.stderr) == "error: data.val_fraction must be in [0, 1), got 1.5"
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_optuna_sweep_reports_a_failing_trial_and_goes_on(dataset: Path, project: Path) -> None:
    trials = 4
    result = run_script(
        project, "train.py", *tiny_overrides(dataset, "test=false"), "hparams_search=rgbd_face_optuna",
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.sampler.n_startup_trials={trials}",
        "data.val_fraction=1.5,0.25",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_child(project / "logs" / "train" / "multiruns")
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    assert len(jobs) == trials  # the sweep went on after its failed trials
    bad = [job for job in jobs if _job_override(job, "data.val_fraction") == "1.5"]
    good = [job for job in jobs if job not in bad]
    assert bad and good, "the seeded sampler should draw both values; change n_trials if Optuna's draw changed"
    failed = (sweep / "failed_jobs.txt").read_text().splitlines()
    assert len(failed) == len(bad) and all(f"(outputs: {job})" in line for job, line in zip(bad, failed, strict=True))
    for job in good:
        assert read_checkpoint(job / "checkpoints" / "last.ckpt")["epoch"] == 1
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    scores = [float(_metric(job)) for job in good]
    assert best["best_value"] == pytest.approx(max(scores))  # failed trials never count as best


def _metric(job: Path, name: str = "val/psnr_rgbd") -> str:
    """The last logged value of `name` in a job's metrics.csv (the value train.py returned to the sweeper)."""
    import csv

    rows = list(csv.DictReader((only_child(job / "csv") / "metrics.csv").open()))
    return [row[name] for row in rows if row.get(name)][-1]


# --------------------------------------------------------------------------- the README commands, verbatim
README_SWEEPS = {
    "values": ["-m", "experiment=rgbd_face", "quickstart=cpu", "model.optimizer_g.lr=1e-4,2e-4"],
    "optuna": ["-m", "experiment=rgbd_face", "quickstart=cpu", "hparams_search=rgbd_face_optuna"],
}


@pytest.fixture(scope="module")
def quickstart_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project folder for both commands, so the quick start's FaceWorld dataset is generated once."""
    return tmp_path_factory.mktemp("readme_sweeps")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(README_SWEEPS))
def test_readme_sweep_command_trains_its_first_job(name: str, quickstart_project: Path) -> None:
    """The command exactly as the README prints it, stopped once job 0 has finished its first epoch."""
    multiruns = quickstart_project / "logs" / "train" / "multiruns"
    before = set(multiruns.iterdir()) if multiruns.is_dir() else set()

    def first_epoch_saved() -> bool:
        new = (set(multiruns.iterdir()) if multiruns.is_dir() else set()) - before
        last = next(iter(new), Path("-")) / "0" / "checkpoints" / "last.ckpt"
        try:
            return last.is_file() and read_checkpoint(last)["epoch"] == 0
        except Exception:  # still being written
            return False

    reached, code, stderr = run_until(quickstart_project, "train.py", README_SWEEPS[name], first_epoch_saved)
    assert reached, f"exit code {code}:\n{stderr}"
    (sweep,) = set(multiruns.iterdir()) - before
    config = read_checkpoint(sweep / "0" / "checkpoints" / "last.ckpt")["facesynth"]["config"]
    assert config["data"]["image_size"] == 128 and config["trainer"]["max_epochs"] == 9  # the quick start
    if name == "values":
        assert config["model"]["optimizer_g"]["lr"] == pytest.approx(1e-4)
    else:
        assert config["optimized_metric"] == "val/psnr_rgbd"


# Where the interrupted sweep's second job is held until the test sends SIGTERM (tests/entrypoints/sweep_probe.py).
PROBE = "tests.entrypoints.sweep_probe"
INTERRUPTIONS = {
    # before the job's task: only the sweep's own handler is installed (once: SIG_DFL, the process died at once)
    "before_the_task": ("hydra.callbacks", f"{PROBE}.HoldJobStartUntilSigterm", []),
    # inside fit: Lightning's handler runs first and would stop at the next batch end
    "mid_fit": ("callbacks", f"{PROBE}.HoldTrainerUntilSigterm", ["hook=on_train_start"]),
    # after the loops' last SIGTERM check: Lightning swallowed the signal, the trial was told COMPLETE and the sweep
    # went on with its third job (the old defect)
    "after_the_last_epoch": ("callbacks", f"{PROBE}.HoldTrainerUntilSigterm", ["hook=on_train_end"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(INTERRUPTIONS))
def test_interrupted_optuna_sweep_continues_its_sqlite_study_when_rerun(
    point: str, dataset: Path, project: Path
) -> None:
    import optuna

    from src.utils.optuna_sweeper import INTERRUPTED_ATTR

    node, target, settings = INTERRUPTIONS[point]
    marker = project / "held_at.txt"  # written by job 1 when it reaches the hold point; a rerun then never holds
    probe = [f"+{node}.hold._target_={target}", f"+{node}.hold.job=1", f"+{node}.hold.marker={marker}"]
    command = [
        *tiny_overrides(dataset, "test=false", "trainer.max_epochs=1"), "hparams_search=rgbd_face_optuna",
        "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=3",
        *probe, *(f"+{node}.hold.{setting}" for setting in settings),
    ]  # fmt: skip
    multiruns = project / "logs" / "train" / "multiruns"
    reached, code, stderr = run_until(project, "train.py", command, marker.is_file, timeout=900, poll_s=0.1)
    assert reached, f"job 1 never reached its hold point (exit code {code}):\n{stderr}"
    assert code == 1 and last_line(stderr) == (
        "error: the sweep was stopped by SIGTERM during job 1; that trial is not recorded as finished: run the same "
        "command again to continue the sweep"
    ), f"exit code {code}:\n{stderr}"
    (first,) = multiruns.iterdir()
    assert sorted(p.name for p in first.iterdir() if p.is_dir()) == ["0", "1"]  # stopped: no third job
    storage = f"sqlite:///{project / 'logs' / 'optuna' / 'rgbd_face.db'}"
    before = optuna.load_study(study_name="rgbd_face", storage=storage).get_trials()
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]  # the interrupted trial is not COMPLETE

    result = run_script(project, "train.py", *command, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (second,) = set(multiruns.iterdir()) - {first}
    assert sorted(p.name for p in second.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]  # only 2 more
    trials = optuna.load_study(study_name="rgbd_face", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs.get(INTERRUPTED_ATTR) is True and trials[1].value is None
    assert trials[0].params == before[0].params and trials[0].value == before[0].value  # the first part is reused
    assert trials[2].params == trials[1].params  # the interrupted trial runs again first
    # then a fresh draw: the reseeded sampler does not replay the first part's draws (trial 0's, then trial 1's)
    assert trials[3].params not in (trials[0].params, trials[1].params)
    best = yaml.safe_load((second / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(t.value for t in trials if t.state.name == "COMPLETE")

    other = run_script(project, "train.py", *command, "trainer.max_epochs=2", timeout=300)
    assert other.returncode == 1 and "hydra.sweeper.study_name=rgbd_face" in last_line(other.stderr)
