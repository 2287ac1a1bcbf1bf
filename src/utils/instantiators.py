"""Build Lightning callbacks and loggers from their config groups (entries without `_target_` are skipped).

A resumed run (train.py ckpt_path=...) continues its loggers' own version folder, and its metrics.csv grows
instead of being replaced: Lightning's CSV writer deletes an existing metrics.csv when it opens a version folder.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
from pathlib import Path

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig, open_dict

from src.utils.errors import UserError

log = logging.getLogger(__name__)

_VERSION_FOLDER = re.compile(r"version_(\d+)$")


def _instantiate_group(cfg: DictConfig | None, group: str) -> list:
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise UserError(f"{group} config must be a mapping of name -> {{_target_: ...}}, got {type(cfg).__name__}")
    objects = []
    for name, entry in cfg.items():
        if isinstance(entry, DictConfig) and "_target_" in entry:
            log.info(f"Instantiating {group[:-1]} {name} <{entry._target_}>")
            objects.append(hydra.utils.instantiate(entry))
    return objects


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    return _instantiate_group(cfg, "callbacks")


def latest_version(save_dir: str | os.PathLike, name: str | None) -> int | None:
    """The highest `version_<n>` folder a logger wrote under save_dir/name, or None."""
    folder = Path(save_dir) / (name or "")
    versions = [int(m.group(1)) for p in folder.glob("version_*") if (m := _VERSION_FOLDER.search(p.name))]
    return max(versions) if versions else None


def _keep_csv_metrics(logger: CSVLogger) -> None:
    """Open the CSV writer on an existing metrics.csv without losing it; new rows are appended below the old."""
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    backup = path.with_name("metrics.csv.before-resume")
    shutil.copy2(path, backup)
    writer = logger.experiment  # Lightning's writer deletes metrics.csv here
    os.replace(backup, path)
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    # The writer appends rows under its own key list; start it from the file's header (already sorted by Lightning).
    writer.metrics_keys = list(header)
    log.info(f"Appending to {path}")


def instantiate_loggers(cfg: DictConfig | None, resume: bool = False) -> list[Logger]:
    """Loggers of the run; resume=True continues each versioned logger's latest version folder."""
    if resume and cfg:
        for entry in cfg.values():
            if isinstance(entry, DictConfig) and "save_dir" in entry and entry.get("version") is None:
                version = latest_version(entry.save_dir, entry.get("name"))
                if version is not None:
                    with open_dict(entry):
                        entry.version = version
    loggers = _instantiate_group(cfg, "loggers")
    if resume:
        for logger in loggers:
            if isinstance(logger, CSVLogger):
                _keep_csv_metrics(logger)
    return loggers
