"""The training preflight is generic: a datamodule and system that are not rgbd_face get the same one-line checks.

The system here is a minimal one written for the test (not a facesynth system): an image-to-image generator whose
skip connection only fits even image sides, logging one validation metric. It follows the GAN base's contract
(`generate(batch, generator)`, `generator`), which is all the preflight relies on.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningDataModule, LightningModule
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src.utils.errors import UserError
from src.utils.task import preflight


class EvenSideGenerator(nn.Module):
    """Down by 2, up by 2, add the input: odd sides give a natural PyTorch size-mismatch RuntimeError."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(4, 1, 2, stride=2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image + self.up(self.down(image))


class SquareSystem(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.generator = EvenSideGenerator()

    def generate(self, batch: dict[str, torch.Tensor], generator: nn.Module) -> dict[str, torch.Tensor]:
        return {"output": generator(batch["image"])}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        error = (self.generate(batch, self.generator)["output"] - batch["image"]).abs().mean()
        self.log("val/l1", error)


def _image_batch(rows: list[tuple[torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {"image": torch.stack([row[0] for row in rows])}


class ImageData(LightningDataModule):
    def __init__(self, image_size: int, batch_size: int, val_frames: int = 4) -> None:
        super().__init__()
        self.image_size, self.batch_size, self.val_frames = image_size, batch_size, val_frames
        self.setup_calls: list[str] = []

    def setup(self, stage: str) -> None:
        self.setup_calls.append(stage)

    def _loader(self, frames: int) -> DataLoader:
        images = torch.linspace(0, 1, frames * self.image_size**2).reshape(frames, 1, self.image_size, self.image_size)
        dataset = TensorDataset(images)
        return DataLoader(dataset, batch_size=self.batch_size, collate_fn=_image_batch)

    def train_dataloader(self) -> DataLoader:
        return self._loader(8)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_frames)

    def test_dataloader(self) -> DataLoader:
        return self._loader(4)


def _config(image_size: int = 8, batch_size: int = 2, monitor: str | None = "val/l1", **extra: object):
    return OmegaConf.create(
        {
            "data": {"_target_": "tests.entrypoints.ImageData", "image_size": image_size, "batch_size": batch_size},
            "model": {"_target_": "tests.entrypoints.SquareSystem", "generator": {"_target_": "EvenSideGenerator"}},
            "trainer": {"limit_val_batches": None},
            "callbacks": {"model_checkpoint": {"_target_": "ModelCheckpoint", "monitor": monitor}},
            "monitor": monitor,
            "test": True,
            **extra,
        }
    )


def _run(cfg, model: SquareSystem | None = None) -> ImageData:
    datamodule = ImageData(cfg.data.image_size, cfg.data.batch_size, cfg.get("val_frames", 4))
    preflight(cfg, datamodule, model or SquareSystem())
    return datamodule


def test_a_good_setup_passes_and_sets_up_fit_and_test() -> None:
    assert _run(_config()).setup_calls == ["fit", "test"]


def test_a_bad_batch_size_names_the_data_key() -> None:
    with pytest.raises(UserError) as info:
        _run(_config(batch_size=-1))
    assert str(info.value).startswith("data.batch_size=-1: the train loader cannot be built: batch_size should be")


def test_an_empty_split_is_reported_before_training() -> None:
    with pytest.raises(UserError, match="the val split of ImageData yields no batch"):
        _run(_config(val_frames=0))


def test_an_image_size_the_generator_cannot_take_is_one_line() -> None:
    with pytest.raises(UserError) as info:
        _run(_config(image_size=9))
    message = str(info.value)
    expected = "data.image_size=9 does not fit model.generator=EvenSideGenerator (batch: image [2, 1, 9, 9]): "
    assert message.startswith(expected)
    assert "must match" in message and "\n" not in message


def test_a_misspelt_monitor_lists_the_logged_val_metrics() -> None:
    with pytest.raises(UserError) as info:
        _run(_config(monitor="val/L1"))
    assert str(info.value) == "monitor='val/L1' is not logged by SquareSystem's validation; logged val metrics: val/l1"


def test_preflight_leaves_every_random_stream_as_it_was() -> None:
    def draws() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    model = SquareSystem()
    for seed in (0, 1):
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
        expected = draws()
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
        _run(_config(), model)  # iterates loaders (each iterator draws a torch base seed) and validates one batch
        assert draws() == expected


def test_preflight_does_not_change_a_training_run(dataset, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same tiny rgbd_face run with and without the preflight ends with bit-identical weights."""
    import train as train_entry
    from tests.framework.framework_fixtures import compose_config, tiny_train_overrides

    def final_weights(out) -> dict[str, torch.Tensor]:
        cfg = compose_config("train.yaml", tiny_train_overrides(dataset, out, "test=false"))
        return train_entry.train(cfg)[1]["model"].state_dict()

    checked = final_weights(tmp_path / "checked")
    monkeypatch.setattr(train_entry, "preflight", lambda *args: None)
    unchecked = final_weights(tmp_path / "unchecked")
    assert checked.keys() == unchecked.keys()
    assert all(torch.equal(checked[k], unchecked[k]) for k in checked)


def test_a_gpu_trainer_without_a_gpu_is_one_line_before_any_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """trainer=gpu on a CPU-only machine must say so first, not fail later on the dataset it would have read."""
    from src.utils.task import check_accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"trainer.accelerator=gpu but torch sees no CUDA GPU"):
        check_accelerator(OmegaConf.create({"trainer": {"accelerator": "gpu"}}))
    check_accelerator(OmegaConf.create({"trainer": {"accelerator": "cpu"}}))  # the CPU needs nothing
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_accelerator(OmegaConf.create({"trainer": {"accelerator": "gpu"}}))
