"""Store the resolved run config in every checkpoint, so eval / export rebuild data and model from the file alone.

`data.root` is replaced by the folder the datamodule actually read (the cached FaceWorld dataset when the config
said null), so an evaluation of the checkpoint scores the very dataset it was trained on.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from omegaconf import DictConfig, ListConfig, OmegaConf

from src.utils.checkpoint import CHECKPOINT_KEY


def resolved_run_config(config: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The run config as plain containers, interpolations resolved, without Hydra's own `hydra` node."""
    plain: dict[str, Any] = {}
    for key in config:
        if key == "hydra":
            continue
        value = config[key]
        plain[str(key)] = (
            OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value
        )
    return plain


class RunConfigInCheckpoint(Callback):
    def __init__(self, config: DictConfig | dict[str, Any]) -> None:
        self.config = resolved_run_config(config)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        config = dict(self.config)
        root = getattr(trainer.datamodule, "root", None)
        if root is not None and isinstance(config.get("data"), dict):
            config["data"] = {**config["data"], "root": str(root)}
        checkpoint.setdefault(CHECKPOINT_KEY, {})["config"] = config
