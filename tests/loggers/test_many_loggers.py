"""logger=many_loggers: CSV, TensorBoard and wandb together, with wandb offline (nothing leaves the machine)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import wandb
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from src.utils.instantiators import instantiate_loggers
from tests.framework.framework_fixtures import compose_config


def _loggers(tmp_path: Path, logger: str) -> list:
    cfg = compose_config("train.yaml", ["experiment=rgbd_face", f"logger={logger}", f"paths.output_dir={tmp_path}"])
    return instantiate_loggers(cfg.logger)


def _wandb_offline_and_dir(logger: WandbLogger) -> tuple[bool, Path]:
    """Start the wandb run; whether it is offline ("offline" / "dryrun" mode) and its files folder."""
    run = logger.experiment
    return run.offline, Path(run.dir)


def test_many_loggers_is_csv_tensorboard_and_offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the config alone must keep wandb offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    loggers = _loggers(tmp_path, "many_loggers")
    assert sorted(type(lg).__name__ for lg in loggers) == ["CSVLogger", "TensorBoardLogger", "WandbLogger"]
    by_type = {type(lg): lg for lg in loggers}
    try:
        for logger in loggers:
            logger.log_metrics({"train/G/l1": 0.5}, step=3)
        offline, run_dir = _wandb_offline_and_dir(by_type[WandbLogger])
        assert offline
        assert run_dir.is_relative_to(tmp_path) and run_dir.parent.name.startswith("offline-run-")
    finally:
        for logger in loggers:
            logger.finalize("success")
        wandb.finish()

    with open(Path(by_type[CSVLogger].log_dir) / "metrics.csv") as rows:
        assert [(r["step"], float(r["train/G/l1"])) for r in csv.DictReader(rows)] == [("3", 0.5)]
    assert list(Path(by_type[TensorBoardLogger].log_dir).glob("events.out.tfevents.*"))
    assert list(run_dir.parent.glob("run-*.wandb"))  # the offline record `wandb sync` uploads later


def test_wandb_alone_respects_wandb_mode_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    (logger,) = _loggers(tmp_path, "wandb")
    try:
        offline, run_dir = _wandb_offline_and_dir(logger)
    finally:
        wandb.finish()
    assert offline and run_dir.parent.name.startswith("offline-run-")
