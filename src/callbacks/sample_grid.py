"""Sample grids during training: a fixed batch rendered every N epochs and sent to every logger that takes images.

The batch is fixed (the first `num_samples` frames of the validation split, else of the training split when
validation is off or empty), so grids of successive epochs show the same faces and progress is visible at a
glance. Rendering is the model's own `sample_grid(batch, outputs)` on the outputs of `generate_whole` (whole
sequences for sequence systems; input | prediction | truth | depth maps for rgbd_face); this callback owns
the schedule and the delivery: TensorBoard `add_image`, wandb `Image`, visdom `image`, and a PNG in
`<output_dir>/samples/` always (so CSV-only runs, and the quick start, have their grids on disk).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_helpers import is_overridden

from src.io.atomic import write_image_atomic

log = logging.getLogger(__name__)


def _take(batch: dict[str, Any], count: int) -> dict[str, Any]:
    return {k: v[:count] for k, v in batch.items()}


def _joinable(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Batches join along dim 0 only with the same keys and per-sample tensor shapes (video windows of different
    lengths, or another region's patches of another size, start a grid of their own)."""
    if set(first) != set(second):
        return False
    return all(
        not isinstance(v, torch.Tensor) or (isinstance(second[k], torch.Tensor) and v.shape[1:] == second[k].shape[1:])
        for k, v in first.items()
    )


def _concat(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {
        k: torch.cat([v, second[k]]) if isinstance(v, torch.Tensor) else list(v) + list(second[k])
        for k, v in first.items()
    }


class SampleGridCallback(Callback):
    def __init__(self, every_n_epochs: int = 1, num_samples: int = 4, output_dir: str | None = None) -> None:
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.num_samples = int(num_samples)
        self.output_dir = Path(output_dir) if output_dir else None
        self._batch: dict[str, Any] | None = None
        self.written: list[Path] = []

    def _split_loaders(self, trainer: Trainer) -> list[Any]:
        """The validation loader (when validation runs), then the training loader.

        Only a split that does not exist for this run is skipped: validation switched off
        (`limit_val_batches=0`) or not defined by the datamodule. A loader that fails to build or to
        load (a broken file, a bug) raises: a grid silently drawn from another split would hide it.
        """
        datamodule = trainer.datamodule
        loaders = []
        if trainer.limit_val_batches != 0:
            if trainer.val_dataloaders is not None:
                loaders.append(trainer.val_dataloaders)
            elif datamodule is not None and is_overridden("val_dataloader", datamodule):
                loaders.append(datamodule.val_dataloader())
        if trainer.train_dataloader is not None:
            loaders.append(trainer.train_dataloader)
        elif datamodule is not None:
            loaders.append(datamodule.train_dataloader())
        return [loader[0] if isinstance(loader, list | tuple) else loader for loader in loaders]

    def _fixed_batch(self, trainer: Trainer) -> dict[str, Any] | None:
        # Starting a DataLoader iterator draws its worker seed from the global torch stream: the grid must not move
        # the training's random streams (a resumed run draws the grid batch in another epoch than the original).
        with torch.random.fork_rng(devices=[]):
            return self._draw_fixed_batch(trainer)

    def _draw_fixed_batch(self, trainer: Trainer) -> dict[str, Any] | None:
        if self._batch is None:
            for loader in self._split_loaders(trainer):
                collected: dict[str, Any] | None = None
                for batch in loader:  # an empty split yields nothing: the next split is tried
                    if collected is not None and not _joinable(collected, batch):
                        break  # the grid shows the samples collected so far
                    collected = batch if collected is None else _concat(collected, batch)
                    if (
                        len(collected["frame_id"] if "frame_id" in collected else next(iter(collected.values())))
                        >= self.num_samples
                    ):
                        break
                if collected is not None:
                    self._batch = _take(collected, self.num_samples)
                    break
        return self._batch

    @rank_zero_only
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        if trainer.sanity_checking or ((epoch + 1) % self.every_n_epochs and not last):
            return
        self.render(trainer, pl_module, tag=f"epoch_{epoch:04d}")

    def render(self, trainer: Trainer, pl_module: LightningModule, tag: str) -> np.ndarray | None:
        batch = self._fixed_batch(trainer)
        if batch is None:
            return None
        device_batch = {k: v.to(pl_module.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                outputs = pl_module.generate_whole(device_batch, pl_module.inference_generator)
                grid = pl_module.sample_grid(device_batch, outputs)
        finally:
            pl_module.train(was_training)
        self._deliver(trainer, grid, tag, trainer.global_step)
        return grid

    def _deliver(self, trainer: Trainer, grid: np.ndarray, tag: str, step: int) -> None:
        folder = self.output_dir or Path(trainer.default_root_dir)
        path = folder / "samples" / f"{tag}.png"
        write_image_atomic(path, grid[..., ::-1])  # RGB in memory, BGR on disk (OpenCV)
        self.written.append(path)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, step, dataformats="HWC")
            elif isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[grid], step=step)
            elif isinstance(logger, CSVLogger):
                write_image_atomic(Path(logger.log_dir) / "samples" / f"{tag}.png", grid[..., ::-1])
            elif hasattr(logger, "log_image"):  # our VisdomLogger and any other image-capable logger
                logger.log_image("samples", grid, step)
