"""GAN and feature-matching losses on list-of-lists discriminator outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.losses import FeatureMatchingLoss, GANLoss, R1Penalty
from src.models.components.discriminators import MultiscaleDiscriminator


def _outputs(*predictions: torch.Tensor) -> list[list[torch.Tensor]]:
    return [[torch.zeros(1), p] for p in predictions]


def test_lsgan_values_and_sum_over_scales() -> None:
    loss = GANLoss("lsgan")
    a, b = torch.tensor([[0.5, 1.0]]), torch.tensor([[0.0, 2.0]])
    assert torch.isclose(loss(_outputs(a), True), torch.tensor(0.125))
    assert torch.isclose(loss(_outputs(a, b), True), torch.tensor(0.125 + 1.0))
    assert torch.isclose(loss(_outputs(a, b), False), torch.tensor(0.625 + 2.0))
    assert torch.isclose(loss.discriminator_loss(_outputs(a, b), _outputs(a, b)), torch.tensor(0.5 * (1.125 + 2.625)))
    assert torch.isclose(loss(a, True), loss(_outputs(a), True))  # a bare tensor = one prediction


def test_vanilla_is_bce_with_logits_and_generator_is_non_saturating() -> None:
    loss = GANLoss("vanilla")
    logits = torch.randn(2, 1, 5, 5)
    assert torch.isclose(
        loss(_outputs(logits), False), F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
    )
    assert torch.isclose(loss.generator_loss(_outputs(logits)), F.softplus(-logits).mean())


def test_hinge() -> None:
    loss = GANLoss("hinge")
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    d = loss.discriminator_loss(_outputs(real), _outputs(fake))
    assert torch.isclose(d, 0.5 * (torch.tensor((0 + 0.5 + 2) / 3) + torch.tensor((0 + 1 + 2) / 3)))
    assert torch.isclose(loss.generator_loss(_outputs(fake)), torch.tensor(-(-2.0 + 0 + 1) / 3))
    with pytest.raises(ValueError, match="GAN mode"):
        GANLoss("wgan")


def test_feature_matching_weights_and_detached_real() -> None:
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(3, ndf=4, n_layers=2, num_D=2, norm="instance")
    fake_img = torch.randn(1, 3, 32, 32, requires_grad=True)
    real_img = torch.randn(1, 3, 32, 32, requires_grad=True)
    fake, real = d(fake_img), d(real_img)
    loss = FeatureMatchingLoss(weight=10.0)(fake, real)
    # n_layers 2 -> 3 compared features per scale: weight 4/3, two scales: 1/2, lambda 10.
    expected = sum(10 * (4 / 3) * 0.5 * F.l1_loss(f, r) for fs, rs in zip(fake, real) for f, r in zip(fs[:-1], rs[:-1]))
    assert torch.isclose(loss, expected)
    loss.backward()
    assert fake_img.grad is not None and fake_img.grad.abs().sum() > 0
    assert real_img.grad is None


def test_r1_penalty() -> None:
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    outputs = [[(3 * x).sum(dim=(1, 2, 3))]]  # gradient 3 everywhere: 0.5 * 9 * 48 per sample
    assert torch.isclose(R1Penalty()(outputs, x), torch.tensor(0.5 * 9 * 48.0))
    with pytest.raises(ValueError, match="requires_grad"):
        R1Penalty()(outputs, torch.randn(2, 3, 4, 4))
