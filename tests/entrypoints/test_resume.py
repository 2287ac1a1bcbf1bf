"""Resume exactly as the README shows: `python train.py experiment=rgbd_face ckpt_path=<run>/checkpoints/last.ckpt`.

The run's overrides are not repeated on the resume command line. Before the fix the command composed the
full-size experiment (512 px data, unet_512) and died on a 65 KB state-dict dump; now the checkpoint's stored
config is restored and the run goes on in its own folder, its own metrics.csv growing. The fast test runs both
commands in-process through the real entry point (hydra.main, argv, working directory); the slow one from a shell.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from entrypoint_helpers import only_child, run_script, tiny_overrides
from hydra.core.global_hydra import GlobalHydra

import train as train_entry
from src.utils.checkpoint import read_checkpoint
from src.utils.errors import run_cli

STEPS_PER_EPOCH = 2 * 2  # limit_train_batches=2, one G and one D step per batch
Runner = Callable[[list[str]], None]


def _rows(metrics: Path) -> list[dict[str, str]]:
    with metrics.open(newline="") as handle:
        return list(csv.DictReader(handle))


def check_readme_resume(dataset: Path, project: Path, train: Runner) -> None:
    train(tiny_overrides(dataset, "test=false"))
    runs = project / "logs" / "train" / "runs"
    run = only_child(runs)
    metrics = only_child(run / "csv") / "metrics.csv"
    rows_before, log_before = _rows(metrics), (run / "train.log").read_text()
    overrides_before = (run / ".hydra" / "overrides.yaml").read_text()
    stored_before = read_checkpoint(run / "checkpoints" / "last.ckpt")["facesynth"]["config"]
    assert {row["epoch"] for row in rows_before} == {"0", "1"}

    last = f"logs/train/runs/{run.name}/checkpoints/last.ckpt"  # relative, as the README writes it
    resume_command = ["experiment=rgbd_face", f"ckpt_path={last}", "trainer.max_epochs=3"]
    train(resume_command)

    assert only_child(runs) == run  # no new run folder
    checkpoint = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["epoch"] == 2 and checkpoint["global_step"] == 3 * STEPS_PER_EPOCH
    stored = checkpoint["facesynth"]["config"]
    assert stored["trainer"]["max_epochs"] == 3 and stored["ckpt_path"] == last
    assert {k: v for k, v in stored.items() if k not in ("trainer", "ckpt_path")} == {
        k: v for k, v in stored_before.items() if k not in ("trainer", "ckpt_path")
    }  # the run's own config (32 px, resnet_6blocks, ...), not the full-size experiment
    assert stored["data"]["image_size"] == 32 and stored["model"]["generator"]["name"] == "resnet_6blocks"

    assert only_child(run / "csv") == metrics.parent  # the same logger version
    rows = _rows(metrics)
    assert rows[: len(rows_before)] == [{k: row.get(k, "") for k in rows[0]} for row in rows_before]
    assert {row["epoch"] for row in rows[len(rows_before) :]} == {"2"}
    assert (run / "train.log").read_text().startswith(log_before)  # appended
    assert (run / ".hydra" / "overrides.yaml").read_text() == overrides_before  # the run's own record is kept
    (resume_record,) = (run / ".hydra").glob("resume_*/overrides.yaml")
    assert yaml.safe_load(resume_record.read_text()) == resume_command


def test_readme_resume_continues_the_run_in_its_own_folder(
    dataset: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("PROJECT_ROOT", str(project))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def train(overrides: list[str]) -> None:
        monkeypatch.setattr(sys, "argv", ["train.py", *overrides])
        GlobalHydra.instance().clear()
        run_cli(train_entry.main)

    check_readme_resume(dataset, project, train)


@pytest.mark.slow
def test_readme_resume_from_the_shell(dataset: Path, project: Path) -> None:
    def train(overrides: list[str]) -> None:
        result = run_script(project, "train.py", *overrides)
        assert result.returncode == 0, result.stderr[-3000:]

    check_readme_resume(dataset, project, train)
