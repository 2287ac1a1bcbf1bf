"""The shared GAN module: loss table, LR policy, EMA, depth-as-mask rule, inference-mode semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
import pytest
import torch
from framework_fixtures import TINY_MODEL, compose_config
from omegaconf import OmegaConf
from torch import nn

from src.datamodules.rgbd import RGBDDataModule
from src.models.components.norms import SwitchableBatchNorm2d
from src.models.gan import LinearDecayLR
from src.models.rgbd_face import MeanFaceGenerator, RGBDFaceModule
from src.utils.errors import UserError


def model_kwargs(tmp_path: Path, *overrides: str) -> dict[str, Any]:
    cfg = compose_config(
        "train.yaml", ["experiment=rgbd_face", *TINY_MODEL, f"paths.output_dir={tmp_path}", *overrides]
    )
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    kwargs.pop("_target_"), kwargs.pop("_recursive_")
    return kwargs


def fit_one_batch(module: RGBDFaceModule, dataset: Path, tmp_path: Path) -> dict[str, float]:
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(module, datamodule=RGBDDataModule(root=str(dataset), batch_size=2, val_fraction=0.25))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_loss_table_weights_and_skipped_terms(rgbd_dataset: Path, tmp_path: Path) -> None:
    totals = {}
    for weight in (100.0, 250.0):
        module = RGBDFaceModule(**model_kwargs(tmp_path, f"model.loss_weights.l1={weight}", "model.loss_weights.fm=0"))
        assert set(module.criteria) == {"gan", "l1"}  # zero-weight fm / lpips / vgg / depth: never built
        metrics = fit_one_batch(module, rgbd_dataset, tmp_path)
        assert "train/G/fm_step" not in metrics and "train/G/lpips_step" not in metrics
        expected = metrics["train/G/gan_step"] + weight * metrics["train/G/l1_step"]
        assert metrics["train/G/total_step"] == pytest.approx(expected, rel=1e-5)
        assert metrics["train/D/total_step"] == pytest.approx(
            0.5 * (metrics["train/D/real_step"] + metrics["train/D/fake_step"]), rel=1e-5
        )
        totals[weight] = metrics["train/G/total_step"]
    assert totals[250.0] > totals[100.0]


def test_every_active_term_is_logged(rgbd_dataset: Path, tmp_path: Path) -> None:
    module = RGBDFaceModule(
        **model_kwargs(
            tmp_path, "model.loss_weights.fm=10", "model.loss_weights.depth_l1_mm=1", "model.loss_weights.depth_grad=1"
        )
    )
    metrics = fit_one_batch(module, rgbd_dataset, tmp_path)
    for term in ("gan", "fm", "l1", "depth_l1_mm", "depth_grad"):
        assert f"train/G/{term}_step" in metrics
    assert metrics["train/G/depth_l1_mm_step"] > 0.1  # millimetres, not [-1, 1] units


def test_unknown_loss_term_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown loss term\(s\) \['l2'\]"):
        RGBDFaceModule(**model_kwargs(tmp_path, "+model.loss_weights.l2=1"))


def test_linear_policy_values() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = LinearDecayLR(optimizer, n_epochs=3, n_epochs_decay=2)
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # past n_epochs + n_epochs_decay (a resume given more epochs) the last factor holds: never 0, never negative
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 2 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3])


def test_ema_of_generator(tmp_path: Path) -> None:
    module = RGBDFaceModule(**model_kwargs(tmp_path, "model.ema_decay=0.5"))
    assert module.inference_generator is module.generator_ema.module
    start = [p.detach().clone() for p in module.generator.parameters()]
    module.generator_ema.update_parameters(module.generator)  # first update copies G
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
    module.generator_ema.update_parameters(module.generator)  # then ema = 0.5 ema + 0.5 G
    for p0, p_ema in zip(start, module.generator_ema.module.parameters()):
        torch.testing.assert_close(p_ema, p0 + 0.5)
    assert not any(p.requires_grad for p in module.generator_ema.parameters())


def test_inference_norm_applies_to_generator_and_ema(tmp_path: Path) -> None:
    kwargs = model_kwargs(tmp_path, "model.inference_norm=batch", "model.ema_decay=0.9", "model.generator.norm=batch")
    module = RGBDFaceModule(**kwargs)
    for net in (module.generator, module.inference_generator):
        norms = [m for m in net.modules() if isinstance(m, SwitchableBatchNorm2d)]
        assert norms and all(m.inference_norm == "batch" for m in norms)


class FixedOutput(nn.Module):
    """A 'generator' that returns a given RGBD tensor (as a parameter, so gradients can be inspected)."""

    def __init__(self, rgbd: torch.Tensor) -> None:
        super().__init__()
        self.rgbd = nn.Parameter(rgbd.clone())

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.rgbd


def _mask_case() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    real = torch.full((1, 4, 2, 2), 0.5)
    real[0, 3, 0, 0] = -1.0  # real background at (0, 0)
    fake = torch.full((1, 4, 2, 2), 0.2)
    fake[0, 3, 1, 1] = -1.0  # generated background at (1, 1)
    return {"feature": torch.zeros(1, 1, 2, 2), "rgbd": real}, fake


@pytest.mark.parametrize("rule", ["original", "prediction"])
def test_depth_as_mask_rule(tmp_path: Path, rule: str) -> None:
    batch, fake = _mask_case()
    generator = FixedOutput(fake)
    module = RGBDFaceModule(**{**model_kwargs(tmp_path, f"model.depth_mask_rule={rule}"), "generator": generator})
    module.train()
    out = module.generate(batch, generator)
    assert torch.all(out["rgbd"][0, :, 1, 1] == -1)  # generated background: all four channels -1
    assert torch.all(out["target"][0, :, 0, 0] == -1)  # real background: all four channels -1 in the target
    if rule == "original":  # real OR fake background masks both sides
        assert torch.all(out["rgbd"][0, :, 0, 0] == -1) and torch.all(out["target"][0, :, 1, 1] == -1)
    else:  # each side keeps its own silhouette; masked generated pixels still get a gradient
        assert torch.allclose(out["rgbd"][0, :, 0, 0], torch.tensor(0.2))
        assert torch.allclose(out["target"][0, :, 1, 1], torch.tensor(0.5))
        (out["rgbd"] - out["target"]).abs().sum().backward()
        assert generator.rgbd.grad[0, 0, 1, 1] != 0
    module.eval()  # inference: no real image, only the generated depth masks
    out = module.generate(batch, generator)
    assert torch.all(out["rgbd"][0, :, 1, 1] == -1) and torch.allclose(out["rgbd"][0, :, 0, 0], torch.tensor(0.2))


def test_mean_face_baseline(rgbd_dataset: Path) -> None:
    dm = RGBDDataModule(root=str(rgbd_dataset), batch_size=4)
    dm.setup()
    baseline = MeanFaceGenerator.from_batches(dm.train_dataloader())
    out = baseline(torch.zeros(3, 1, 32, 32))
    assert out.shape == (3, 4, 32, 32)
    depth = out[0, 3]
    assert depth[16, 16] > -1 and depth[0, 0] == -1 and torch.all(out[0, :, 0, 0] == -1)


def test_module_rebuilds_from_stored_hyperparameters(tmp_path: Path) -> None:
    module = RGBDFaceModule(**model_kwargs(tmp_path))
    clone = hydra.utils.get_class("src.models.rgbd_face.RGBDFaceModule")(**dict(module.hparams))
    assert clone.load_state_dict(module.state_dict()) is not None
    assert all(not hasattr(v, "_metadata") for v in module.hparams.values())  # plain containers, no DictConfig


def test_evaluation_keeps_exactly_the_asked_frames_spread_over_the_split(rgbd_dataset: Path, tmp_path: Path) -> None:
    module = RGBDFaceModule(**model_kwargs(tmp_path, "model.num_kept_samples=2"))
    datamodule = RGBDDataModule(root=str(rgbd_dataset), batch_size=2, val_fraction=0.25)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.test(module, datamodule=datamodule, verbose=False)
    results = module.eval_results["test"]
    kept = [frame for batch, _ in results["samples"] for frame in batch["frame_id"]]
    assert len(results["frame_ids"]) == 3 and kept == [results["frame_ids"][0], results["frame_ids"][-1]]
    assert [s.name for s in module.report_samples("test")] == kept
