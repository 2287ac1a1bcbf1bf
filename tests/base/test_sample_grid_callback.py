"""The sample-grid callback takes the validation split, falls back to training only when validation does not
exist for the run or is empty, and lets every other loader error through."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from base_toy_system import ToySequences, ToySequenceSystem, toy_config
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from src.callbacks.sample_grid import SampleGridCallback
from src.utils.errors import DatasetError


class GridToy(ToySequenceSystem):
    def sample_grid(self, batch: dict[str, Any], outputs: dict[str, Any]) -> np.ndarray:
        self.gridded = list(batch["frame_id"])
        frames = outputs["frames"][:, 0, 0]  # (B, H, W), first frame of each sequence
        return ((frames.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).flatten(0, 1)[..., None].expand(-1, -1, 3).numpy()


class Broken(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> dict[str, Any]:
        raise OSError(f"frame {index}: truncated PNG")


class Data(LightningDataModule):
    """Training and validation splits; `val` may be an error that building its loader raises."""

    def __init__(self, train: Dataset, val: Dataset | Exception | list) -> None:
        super().__init__()
        self.train, self.val = train, val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=2)

    def val_dataloader(self) -> DataLoader:
        if isinstance(self.val, Exception):
            raise self.val
        return DataLoader(self.val, batch_size=1)


def render(tmp_path: Path, datamodule: Data, limit_val_batches: float = 1.0) -> GridToy:
    module = GridToy(**toy_config())
    module.statistics_fitted.fill_(True)
    trainer = SimpleNamespace(
        datamodule=datamodule,
        limit_val_batches=limit_val_batches,
        val_dataloaders=None,
        train_dataloader=None,
        loggers=[],
        global_step=0,
        default_root_dir=str(tmp_path),
    )
    callback = SampleGridCallback(num_samples=3, output_dir=str(tmp_path))
    grid = callback.render(trainer, module, tag="t")
    assert grid.shape == (3 * 8, 8, 3) and (tmp_path / "samples" / "t.png").is_file()
    return module


def test_validation_frames_across_batches(tmp_path: Path) -> None:
    module = render(tmp_path, Data(ToySequences(4), ToySequences(5, seed=1)))
    assert module.gridded == ["seq_000", "seq_001", "seq_002"] and module.training


def test_training_split_when_validation_is_off_or_empty(tmp_path: Path) -> None:
    train = ToySequences(4, seed=3)
    expected = [train[i]["frame_id"] for i in range(3)]
    assert render(tmp_path, Data(train, Broken()), limit_val_batches=0).gridded == expected
    assert render(tmp_path, Data(train, []), limit_val_batches=1.0).gridded == expected


@pytest.mark.parametrize("error", [OSError, DatasetError])
def test_loader_errors_are_not_hidden(tmp_path: Path, error: type[Exception]) -> None:
    val: Any = Broken() if error is OSError else DatasetError("data/processed: 3 problem(s) in the dataset")
    with pytest.raises(error, match=r"truncated PNG|3 problem"):
        render(tmp_path, Data(ToySequences(4), val))


class Windows(Dataset):
    """Validation windows of a video: the second one is shorter (the end of the stream)."""

    def __init__(self) -> None:
        self.items = ToySequences(2, seed=1).items
        self.items[1] = {**self.items[1], "source": self.items[1]["source"][:2], "target": self.items[1]["target"][:2]}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def test_batches_of_other_shapes_are_not_joined(tmp_path: Path) -> None:
    """A shorter window would make torch.cat fail: the grid keeps the samples collected before it."""
    module = GridToy(**toy_config())
    module.statistics_fitted.fill_(True)
    trainer = SimpleNamespace(
        datamodule=Data(ToySequences(4), Windows()),
        limit_val_batches=1.0,
        val_dataloaders=None,
        train_dataloader=None,
        loggers=[],
        global_step=0,
        default_root_dir=str(tmp_path),
    )
    grid = SampleGridCallback(num_samples=3, output_dir=str(tmp_path)).render(trainer, module, tag="w")
    assert module.gridded == ["seq_000"] and grid.shape == (8, 8, 3)
