"""PRNet system: NME against a naive loop, the fitted mean map against the files, one training step lowers the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.datamodules.prnet import PRNetDataModule
from src.models.prnet import MeanPositionMap, PRNetModule, position_map_nme

MODEL = {
    "generator": {"_target_": "src.models.components.prnet_resfcn.ResFCN256", "base_channels": 2},
    "criteria": {"posmap": {"_target_": "src.models.components.prnet_resfcn.WeightedPositionMapLoss"}},
    "loss_weights": {"posmap": 1.0},
    "optimizer_g": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
}


def test_nme_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    size = 8
    truth, pred = rng.random((2, 3, size, size)) * 50, rng.random((2, 3, size, size)) * 50
    mask = rng.random((size, size)) > 0.3
    keypoints = rng.choice(np.flatnonzero(mask), 68)
    got = position_map_nme(
        torch.from_numpy(pred), torch.from_numpy(truth), torch.from_numpy(mask), torch.from_numpy(keypoints)
    )
    for b in range(2):
        kt = np.array([[truth[b, c].flat[k] for c in range(3)] for k in keypoints])
        kp = np.array([[pred[b, c].flat[k] for c in range(3)] for k in keypoints])
        face = np.sqrt((kt[:, 0].max() - kt[:, 0].min()) * (kt[:, 1].max() - kt[:, 1].min()))
        assert got["nme_kpt68"][b].item() == pytest.approx(
            np.mean([np.hypot(*(kp[i, :2] - kt[i, :2])) for i in range(68)]) / face
        )
        rows, cols = np.nonzero(mask)
        dense3 = [np.linalg.norm(pred[b, :, r, c] - truth[b, :, r, c]) for r, c in zip(rows, cols)]
        dense2 = [np.linalg.norm(pred[b, :2, r, c] - truth[b, :2, r, c]) for r, c in zip(rows, cols)]
        assert got["nme_dense_3d"][b].item() == pytest.approx(np.mean(dense3) / face)
        assert got["nme_dense_2d"][b].item() == pytest.approx(np.mean(dense2) / face)


def test_fitted_mean_map_is_the_training_files_mean_and_training_lowers_the_loss(tiny_prnet: Path):
    data = PRNetDataModule(root=str(tiny_prnet), batch_size=4, val_fraction=0.34)
    data.setup()
    module = PRNetModule(map_size=32, **MODEL)
    values = module.fit_statistics(data.train_dataloader())
    files = [np.load(sample.posmap) for sample in data.items["train"]]
    expected = np.mean(files, axis=0).transpose(2, 0, 1) / (1.1 * 32)
    np.testing.assert_allclose(values["mean_posmap"].numpy(), expected, atol=1e-5)
    for name, value in values.items():
        getattr(module, name).copy_(value)
    baseline = MeanPositionMap(values["mean_posmap"])
    batch = next(iter(data.train_dataloader()))
    assert torch.equal(baseline(batch["image"])[1], values["mean_posmap"])
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(module.generator.parameters(), 3e-3)
    losses = []
    for _ in range(15):
        loss = module.generator_losses(batch, module.generate(batch, module.generator), frozenset({"posmap"}))["posmap"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def fitted_prior_module(root: Path, batch_size: int, seed: int | None = None) -> tuple[PRNetDataModule, PRNetModule]:
    """The tiny set's datamodule and a mean-prior PRNet whose mean map is fitted on its training files (`seed`, when
    given, is set just before the network is built)."""
    data = PRNetDataModule(root=str(root), batch_size=batch_size, val_fraction=0.34)
    data.setup()
    if seed is not None:
        torch.manual_seed(seed)
    module = PRNetModule(map_size=32, mean_prior=True, **MODEL)
    for name, value in module.fit_statistics(data.train_dataloader()).items():
        getattr(module, name).copy_(value)
    return data, module


def test_mean_prior_starts_at_the_mean_map_and_the_baseline_is_not_moved_twice(tiny_prnet: Path):
    data, module = fitted_prior_module(tiny_prnet, batch_size=4)
    module.eval()
    batch = next(iter(data.test_dataloader()))
    with torch.no_grad():
        start = module.generate(batch, module.generator)["posmap"]
        baseline = module.generate(batch, MeanPositionMap(module.mean_posmap))["posmap"]
        exported = module.export_model()(batch["image"])
    np.testing.assert_allclose(start[0].numpy(), module.mean_posmap.numpy(), atol=1e-5)
    np.testing.assert_allclose(baseline[0].numpy(), module.mean_posmap.numpy(), atol=1e-6)
    np.testing.assert_allclose(exported.numpy(), start.numpy() * module.max_pos, atol=1e-3)


class _ConstantOutput(torch.nn.Module):
    """A stand-in network whose sigmoid output is 0.5 + offset[c] at every texel of channel c."""

    def __init__(self, offset: torch.Tensor) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (0.5 + self.offset)[None, :, None, None].expand(image.shape[0], 3, *image.shape[-2:])


def test_mean_prior_is_additive_so_a_uniform_offset_shifts_the_whole_face(tiny_prnet: Path):
    """A face moved by (dx, dy) px in the crop is the mean map plus the same offset at every texel: the prior must
    pass a uniform network offset through unchanged (a logit-space prior would bend it texel by texel)."""
    data, module = fitted_prior_module(tiny_prnet, batch_size=2)
    module.eval()
    batch = next(iter(data.test_dataloader()))
    shift_px = torch.tensor([3.0, -2.0, 1.0])
    stand_in = _ConstantOutput(shift_px / module.max_pos)
    with torch.no_grad():
        moved = module.generate(batch, stand_in)["posmap"] * module.max_pos
        exported = type(module.export_model())(stand_in, module.max_pos, module.mean_posmap)(batch["image"])
    expected = module.mean_posmap * module.max_pos + shift_px[:, None, None]
    face = module.uv_face_mask
    np.testing.assert_allclose(moved[0][:, face].numpy(), expected[:, face].numpy(), atol=1e-3)
    np.testing.assert_allclose(exported.numpy(), moved.numpy(), atol=1e-4)


def test_mean_prior_training_goes_below_the_mean_map(tiny_prnet: Path):
    data, module = fitted_prior_module(tiny_prnet, batch_size=4, seed=0)
    batch = next(iter(data.train_dataloader()))
    terms = frozenset({"posmap"})
    mean_loss = module.generator_losses(batch, {"posmap": module.mean_posmap[None]}, terms)["posmap"].item()
    optimizer = torch.optim.Adam(module.generator.parameters(), lr=1e-2)
    for _ in range(25):
        loss = module.generator_losses(batch, module.generate(batch, module.generator), terms)["posmap"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.7 * mean_loss
