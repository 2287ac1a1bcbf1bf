"""Probes added to a run from the command line (`+callbacks.probe._target_=tests.experiments.probes.<Name>`)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class ConvDtypeProbe(Callback):
    """Records the output dtype of G's first convolution in every training step's forward (autocast: bf16);
    forwards outside training steps (sample grids at epoch end) are not recorded."""

    def __init__(self) -> None:
        self.dtypes: list[torch.dtype] = []
        self._handle: Any = None
        self._in_step = False

    def _record(self, module: Any, args: Any, out: torch.Tensor) -> None:
        if self._in_step:
            self.dtypes.append(out.dtype)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        conv = next(m for m in pl_module.generator.modules() if isinstance(m, torch.nn.Conv2d))
        self._handle = conv.register_forward_hook(self._record)

    def on_train_batch_start(self, *args: Any) -> None:
        self._in_step = True

    def on_train_batch_end(self, *args: Any) -> None:
        self._in_step = False

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._handle.remove()
