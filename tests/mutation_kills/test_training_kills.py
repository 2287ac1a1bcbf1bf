"""rgbd_face's training step, evaluation and checkpoint loading checked against what they must compute.

Each test names the plausible one-line bug it exists to catch (issue 14's list):
- D and G updated in the swapped order (the original steps D, then G, every iteration);
- the EMA copy never updated during training (only by hand in other tests);
- only G's LR scheduler stepped at the end of an epoch;
- D's input channels concatenated in the other order (condition first, then the RGBD image, as the original);
- depth MAE in mm off by a factor of two, and the depth metrics ignoring the batch's face mask;
- checkpoints loaded with weights_only=False (a pickle that runs code must be refused, and must not run).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from src.datamodules.rgbd import RGBDDataModule
from src.io.rgbd_layout import DepthEncoding
from src.models.rgbd_face import RGBDFaceModule
from src.utils.checkpoint import read_checkpoint
from src.utils.errors import CheckpointError, UserError
from tests.framework.framework_fixtures import TINY_MODEL, compose_config, write_synthetic_rgbd

BASE_LR = 2e-4  # the original's Adam LR for G and D (conf/model/rgbd_face.yaml)


def tiny_module(tmp_path: Path, *overrides: str) -> RGBDFaceModule:
    cfg = compose_config(
        "train.yaml",
        ["experiment=rgbd_face", *TINY_MODEL, f"paths.output_dir={tmp_path}", "data.image_size=32", *overrides],
    )
    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[assignment]
    kwargs.pop("_target_"), kwargs.pop("_recursive_")
    return RGBDFaceModule(**kwargs)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8-bit depth (0.87 mm levels), so an error of a few levels is millimetres, not hundredths."""
    return write_synthetic_rgbd(tmp_path_factory.mktemp("kills") / "processed", depth_bits=8, frames=2)


class Recorder(L.Callback):
    """Which network each optimizer step updates, in order, and G's weights after every training batch."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.generator_after_batch: list[list[torch.Tensor]] = []

    def on_train_start(self, trainer: L.Trainer, module: RGBDFaceModule) -> None:
        generator_params = {id(p) for p in module.generator.parameters()}
        for optimizer in trainer.optimizers:
            owner = "G" if id(optimizer.param_groups[0]["params"][0]) in generator_params else "D"
            optimizer.register_step_pre_hook(lambda *_, owner=owner: self.steps.append(owner))

    def on_train_batch_end(self, trainer: L.Trainer, module: RGBDFaceModule, *args: Any) -> None:
        self.generator_after_batch.append([p.detach().clone() for p in module.generator.parameters()])


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RGBDFaceModule, Recorder]:
    """One epoch of two batches, EMA decay 0.5, the linear policy decaying from the first epoch on."""
    tmp = tmp_path_factory.mktemp("kills_run")
    torch.set_num_threads(1)
    module = tiny_module(tmp, "model.ema_decay=0.5", "model.scheduler.n_epochs=1", "model.scheduler.n_epochs_decay=1")
    recorder = Recorder()
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=0, accelerator="cpu", logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp,
        callbacks=[recorder],
    )  # fmt: skip
    trainer.fit(module, datamodule=RGBDDataModule(root=str(dataset), batch_size=2, val_fraction=0.25, image_size=32))
    return module, recorder


def test_discriminator_steps_before_generator_every_iteration(trained) -> None:
    _, recorder = trained
    assert recorder.steps == ["D", "G", "D", "G"]


def test_generator_ema_follows_training_with_its_decay(trained) -> None:
    module, recorder = trained
    first, second = recorder.generator_after_batch
    assert any(not torch.equal(a, b) for a, b in zip(first, second))  # G moved, so the test can tell
    # AveragedModel's first update copies G; every later one is decay * ema + (1 - decay) * G.
    for ema, g1, g2 in zip(module.generator_ema.module.parameters(), first, second):
        torch.testing.assert_close(ema, 0.5 * g1 + 0.5 * g2, rtol=1e-5, atol=1e-7)


def test_every_scheduler_steps_at_the_end_of_the_epoch(trained) -> None:
    module, _ = trained
    # pix2pix 'linear' policy after one completed epoch of n_epochs=1, n_epochs_decay=1: 1 - 1 / (1 + 1)
    expected = BASE_LR * (1.0 - max(0, 1 + 1 - 1) / float(1 + 1))
    lrs = [opt.param_groups[0]["lr"] for opt in module.trainer.optimizers]
    assert len(lrs) == 2 and lrs == pytest.approx([expected, expected])


def test_each_updates_learning_rate_is_logged_under_its_documented_name(trained) -> None:
    """docs/adding_a_system.md: the LR is logged as `train/lr_<update>` (docs/configs.md: `train/lr_G`), the value
    the finished epoch trained with (BASE_LR: the decay starts after the first epoch)."""
    module, _ = trained
    logged = module.trainer.callback_metrics
    assert float(logged["train/lr_G"]) == pytest.approx(BASE_LR)
    assert float(logged["train/lr_D"]) == pytest.approx(BASE_LR)


def test_discriminator_sees_condition_then_rgbd(dataset: Path, tmp_path: Path) -> None:
    module = tiny_module(tmp_path)
    seen: list[torch.Tensor] = []
    module.discriminator.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    gen = torch.Generator().manual_seed(0)
    feature = torch.rand(2, 1, 32, 32, generator=gen) * 2 - 1
    fake, real = torch.rand(2, 2, 4, 32, 32, generator=gen) * 2 - 1
    batch, outputs = {"feature": feature}, {"rgbd": fake, "target": real}
    module.discriminator_losses(batch, outputs, frozenset({"real", "fake"}))
    module.generator_losses(batch, outputs, frozenset({"gan"}))
    assert len(seen) == 3
    for judged, image in zip(seen, (real, fake, fake)):
        assert judged.shape[1] == 5
        torch.testing.assert_close(judged[:, :1], feature)
        torch.testing.assert_close(judged[:, 1:], image)


def _eval_batch(dataset: Path) -> dict[str, Any]:
    datamodule = RGBDDataModule(root=str(dataset), batch_size=2, val_fraction=0.25, image_size=32)
    datamodule.setup("test")
    return next(iter(datamodule.test_dataloader()))


def test_depth_errors_are_millimetres_inside_the_batch_face_mask(dataset: Path, tmp_path: Path) -> None:
    module = tiny_module(tmp_path).eval()
    batch = _eval_batch(dataset)
    encoding = DepthEncoding(float(batch["depth_near_mm"][0]), float(batch["depth_far_mm"][0]), 8)
    target = batch["rgbd"].clone()
    levels = np.round((target[:, 3].numpy().astype(np.float64) + 1) / 2 * 255).astype(np.int64)
    face = torch.from_numpy(levels > 10)
    mask = face.clone()
    mask[:, :, 16:] = False  # the metric's mask: the left half of the face
    assert mask.sum() > 20 and (face & ~mask).sum() > 20
    shifted = torch.from_numpy(np.where(levels > 10, levels + 3, levels))  # 3 levels deeper inside the face
    shifted = torch.where(mask, shifted, torch.from_numpy(np.where(levels > 10, levels + 40, levels)))  # 40 outside
    fake = target.clone()
    fake[:, 3] = torch.from_numpy(encoding.levels_to_unit(shifted.numpy()))
    metrics = module.sample_metrics({**batch, "face_mask": mask[:, None]}, {"rgbd": fake, "target": target})
    true_mm = 3 * encoding.mm_per_level  # 2.6 mm: a naive decode of each pixel gives the same
    decoded_error = encoding.decode(shifted.numpy()) - encoding.decode(levels)
    assert np.allclose(decoded_error[mask.numpy()], true_mm, atol=1e-3)
    np.testing.assert_allclose(metrics["depth_mae_mm"], [true_mm, true_mm], rtol=1e-4)
    np.testing.assert_allclose(metrics["depth_rmse_mm"], [true_mm, true_mm], rtol=1e-4)


class RunsCode:
    """A pickle payload that creates a folder when unpickled (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_a_checkpoint_that_runs_code_is_refused_and_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "shared.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match=r"shared\.ckpt: "):
        read_checkpoint(path)
    assert not marker.exists()
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, plain)
    assert read_checkpoint(plain)["epoch"] == 3


def test_the_ema_copy_is_frozen_and_g_is_not(tmp_path: Path) -> None:
    """The EMA copy is updated by averaging, never by an optimizer: its parameters must not collect gradients."""
    module = tiny_module(tmp_path, "model.ema_decay=0.5")
    assert all(not p.requires_grad for p in module.generator_ema.parameters())
    assert all(p.requires_grad for p in module.generator.parameters())


def test_a_replaced_generator_is_used_only_inside_its_scope(tmp_path: Path) -> None:
    """generator_replaced (baselines through the val / test code) must hand G back afterwards, or every later
    evaluation and export would silently score the baseline."""
    module = tiny_module(tmp_path)
    baseline = torch.nn.Conv2d(3, 4, 1)
    with module.generator_replaced(baseline):
        assert module.inference_generator is baseline
    assert module.inference_generator is module.generator


def test_a_one_sample_picture_grid_has_the_six_columns_and_a_zero_error_map(dataset: Path, tmp_path: Path) -> None:
    """A batch of one (the last batch of a split) must still draw; a prediction equal to the truth gives the error
    column of error_map on two equal depth maps (zero error), placed after the five other 32 px columns."""
    from src.utils.visualize import error_map

    module = tiny_module(tmp_path)
    batch = {k: v[:1] for k, v in _eval_batch(dataset).items()}
    outputs = {"rgbd": batch["rgbd"].clone(), "target": batch["rgbd"]}
    grid = module.sample_grid(batch, outputs)
    views = module._views(batch, outputs, 0)
    zero, _ = error_map(views["true_depth_mm"], views["true_depth_mm"])
    assert grid.ndim == 3 and grid.shape[1] >= 5 * 32 + zero.shape[1]
    assert any(
        np.array_equal(grid[r : r + zero.shape[0], c : c + zero.shape[1]], zero)
        for r in range(grid.shape[0] - zero.shape[0] + 1)
        for c in range(grid.shape[1] - zero.shape[1], -1, -1)
        if grid[r, c].tolist() == zero[0, 0].tolist()
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+model.discriminator_loss_weights.bogus=1.0", r"^model\.discriminator_loss_weights: unknown loss term"),
        ("model.ema_decay=1.5", r"^model\.ema_decay must be in \(0, 1\)"),
    ],
)
def test_a_bad_setting_is_named_by_the_config_key_the_user_wrote(tmp_path: Path, override: str, message: str) -> None:
    """One error line that begins with the key as written in the config (what the user must edit): the legacy
    discriminator weight table and the single-generator EMA decay."""
    with pytest.raises(UserError, match=message):
        tiny_module(tmp_path, override)
