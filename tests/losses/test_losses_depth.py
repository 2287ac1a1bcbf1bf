"""Depth terms: the depth-as-mask rule, masked mm L1, gradient and normal consistency, L1 reconstruction."""

from __future__ import annotations

import pytest
import torch

from src.losses import (
    DepthGradientLoss,
    DepthL1Loss,
    L1ReconstructionLoss,
    NormalConsistencyLoss,
    apply_depth_mask,
    foreground_mask,
)


def test_apply_depth_mask_rule() -> None:
    real = torch.zeros(1, 4, 1, 4)
    fake = torch.full((1, 4, 1, 4), 0.5, requires_grad=True)
    with torch.no_grad():
        real[0, 3] = torch.tensor([-1.0, 0.2, 0.2, -1 + 2 / 255])  # pixel 3: level 1 = foreground
        fake[0, 3] = torch.tensor([0.3, -1.0, 0.1, 0.4])
    masked_fake, masked_real = apply_depth_mask(fake, real)
    background = torch.tensor([True, True, False, False])
    assert torch.all(masked_fake[0, :, 0, background] == -1) and torch.all(masked_real[0, :, 0, background] == -1)
    assert torch.equal(masked_fake[0, :, 0, ~background], fake[0, :, 0, ~background])
    assert torch.equal(masked_real[0, :, 0, ~background], real[0, :, 0, ~background])
    masked_fake.sum().backward()
    assert torch.all(fake.grad[0, :, 0, background] == 0) and torch.all(fake.grad[0, :, 0, ~background] == 1)


def test_background_threshold_is_half_a_level() -> None:
    levels = torch.tensor([-1.0, -1 + 1 / 255, -1 + 2 / 255])  # level 0, half a level, level 1
    assert foreground_mask(levels).tolist() == [False, False, True]


def test_depth_l1_in_mm_inside_target_mask() -> None:
    target = torch.tensor([[[[-1.0, 0.0, 0.5]]]])
    pred = torch.tensor([[[[0.9, 0.1, 0.3]]]])
    loss = DepthL1Loss(mm_per_unit=100.0)(pred, target)
    assert torch.isclose(loss, torch.tensor((10.0 + 20.0) / 2))  # background pixel ignored
    rgbd = torch.zeros(1, 4, 1, 3)
    rgbd[:, 3] = target[:, 0]
    assert torch.isclose(DepthL1Loss(100.0, depth_channel=3)(rgbd.clone().index_fill_(1, torch.tensor([3]), 0.1), rgbd),
                         torch.tensor((10.0 + 40.0) / 2))  # fmt: skip


def test_gradient_loss_ignores_offset_but_not_relief() -> None:
    y, x = torch.meshgrid(torch.linspace(-0.5, 0.5, 16), torch.linspace(-0.5, 0.5, 16), indexing="ij")
    target = (0.2 * x + 0.1 * y).view(1, 1, 16, 16)
    gradient = DepthGradientLoss(mm_per_unit=50.0)
    assert gradient(target + 0.3, target) < 1e-5
    assert DepthL1Loss(50.0)(target + 0.3, target) > 10
    tilted = (0.4 * x + 0.1 * y).view(1, 1, 16, 16)
    step = 1.0 / 15
    assert torch.isclose(gradient(tilted, target), torch.tensor(50.0 * 0.2 * step / 2), rtol=1e-4)  # x diffs only


def test_normal_consistency_matches_plane_angles() -> None:
    _, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    flat = torch.zeros(1, 1, 16, 16)
    slope = (x * 0.01).view(1, 1, 16, 16)  # 0.01 units/px * 100 mm/unit = 1 mm per 1 mm pixel: 45 degrees
    loss = NormalConsistencyLoss(mm_per_unit=100.0, mm_per_pixel=1.0)
    assert loss(flat, flat) < 1e-7
    assert torch.isclose(loss(slope, flat), torch.tensor(1 - 2**-0.5), atol=1e-5)
    pred = slope.clone().requires_grad_(True)
    loss(pred, flat).backward()
    assert pred.grad.abs().sum() > 0


def test_l1_reconstruction_channels_and_mask() -> None:
    pred, target = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
    target[:, 3] = 3
    assert L1ReconstructionLoss(weight=100.0)(pred, target) == 150.0
    assert L1ReconstructionLoss(channels=[3])(pred, target) == 3.0
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert L1ReconstructionLoss()(pred, target * torch.tensor([1.0, 1.0, 1.0, 1.0]).view(1, 4, 1, 1), mask) == 1.5


@pytest.mark.parametrize("loss_class", [DepthL1Loss, DepthGradientLoss, NormalConsistencyLoss])
def test_every_depth_loss_rejects_a_non_positive_scale(loss_class) -> None:
    with pytest.raises(ValueError, match="mm_per_unit must be > 0"):
        loss_class(mm_per_unit=0.0)
