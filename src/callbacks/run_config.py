"""Store the resolved run config in every checkpoint, so eval / export rebuild data and model from the file alone.

`data.root` is replaced by the folder the datamodule actually read (the cached FaceWorld dataset when the config
said null), so an evaluation of the checkpoint scores the very dataset it was trained on. The run's command-line
overrides and config-group choices are stored too: a resume (train.py ckpt_path=...) uses them to accept a
repeated `quickstart=cpu` and to name any override that would change the run (src/utils/checkpoint.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    def __init__(
        self,
        config: DictConfig | dict[str, Any],
        overrides: Sequence[str] = (),
        choices: Mapping[str, str | None] | None = None,
    ) -> None:
        self.config = resolved_run_config(config)
        self.overrides = [str(o) for o in overrides]
        self.choices = {str(k): (None if v is None else str(v)) for k, v in (choices or {}).items()}

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        config = dict(self.config)
        root = getattr(trainer.datamodule, "root", None)
        if root is not None and isinstance(config.get("data"), dict):
            config["data"] = {**config["data"], "root": str(root)}
        meta = checkpoint.setdefault(CHECKPOINT_KEY, {})
        meta["config"] = config
        meta["overrides"] = list(self.overrides)
        meta["choices"] = dict(self.choices)
