"""Build Lightning callbacks and loggers from their config groups (entries without `_target_` are skipped)."""

from __future__ import annotations

import logging

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from src.utils.errors import UserError

log = logging.getLogger(__name__)


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


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    return _instantiate_group(cfg, "loggers")
