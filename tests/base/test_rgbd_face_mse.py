"""rgbd_face's `mse` loss-table term: its value against a naive loop over pixels, its channel subset, that its
weight scales it into G's total, and that a zero weight neither builds its criterion nor computes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from test_rgbd_face_pinned import STEPS, fit_pinned, pinned_kwargs

from src.models.rgbd_face import RGBDFaceModule, SquaredReconstructionLoss

MSE_CRITERION = {"_target_": "src.models.rgbd_face.SquaredReconstructionLoss"}


def module_with(weights: dict[str, float], channels: list[int] | None = None) -> RGBDFaceModule:
    """The pinned test's tiny system (explicit networks, no conf/ defaults) with this G weight table, no GAN."""
    kwargs = pinned_kwargs("prediction", None, None)
    kwargs["criteria"] = {**kwargs["criteria"], "mse": {**MSE_CRITERION, "channels": channels}}
    kwargs["loss_weights"] = {"gan": 0.0, "fm": 0.0, "l1": 0.0, "depth_l1_mm": 0.0, "depth_grad": 0.0, **weights}
    kwargs["discriminator_loss_weights"] = {"real": 0.0, "fake": 0.0}
    return RGBDFaceModule(**kwargs)


def naive_mse(fake: torch.Tensor, target: torch.Tensor, channels: list[int]) -> float:
    """Sum of squared differences over every listed channel and pixel, one element at a time, over their count."""
    total, count = 0.0, 0
    for n in range(fake.shape[0]):
        for c in channels:
            for y in range(fake.shape[2]):
                for x in range(fake.shape[3]):
                    total += (float(fake[n, c, y, x]) - float(target[n, c, y, x])) ** 2
                    count += 1
    return total / count


@pytest.mark.parametrize("channels", [None, [0, 1, 2], [3]])
def test_mse_term_is_the_mean_squared_error_of_the_masked_images(channels: list[int] | None) -> None:
    module = module_with({"mse": 1.0}, channels)
    generator = torch.Generator().manual_seed(3)
    fake = torch.rand(2, 4, 5, 6, generator=generator) * 2 - 1
    target = torch.rand(2, 4, 5, 6, generator=generator) * 2 - 1
    losses = module.generator_losses({"feature": torch.zeros(2, 1, 5, 6)}, {"rgbd": fake, "target": target}, {"mse"})
    assert set(losses) == {"mse"}
    expected = naive_mse(fake, target, [0, 1, 2, 3] if channels is None else channels)
    assert float(losses["mse"]) == pytest.approx(expected, rel=1e-6)


def test_squared_loss_rejects_mismatched_images() -> None:
    with pytest.raises(ValueError, match="differ"):
        SquaredReconstructionLoss()(torch.zeros(1, 4, 2, 2), torch.zeros(1, 3, 2, 2))


def fit_steps(module: RGBDFaceModule, tmp_path: Path) -> list[dict[str, float]]:
    """Logged per-step losses of a few training steps on the pinned faces."""
    torch.set_num_threads(1)
    L.seed_everything(7, verbose=False)
    return fit_pinned(module, tmp_path)


def test_mse_weight_scales_the_term_into_the_generator_total(tmp_path: Path) -> None:
    steps = fit_steps(module_with({"mse": 400.0, "l1": 7.0}), tmp_path)
    assert len(steps) == STEPS
    for step in steps:
        assert step["train/G/mse"] > 0.0
        expected = 400.0 * step["train/G/mse"] + 7.0 * step["train/G/l1"]
        assert step["train/G/total"] == pytest.approx(expected, rel=1e-5)


def test_zero_mse_weight_builds_no_criterion_and_computes_no_term(tmp_path: Path) -> None:
    module = module_with({"mse": 0.0, "l1": 100.0})
    assert "mse" not in module.criteria
    calls: list[Any] = []
    original = module.generator_losses
    module.generator_losses = lambda batch, outputs, terms: calls.append(terms) or original(batch, outputs, terms)
    steps = fit_steps(module, tmp_path)
    assert calls and all("mse" not in terms for terms in calls)
    assert all("train/G/mse" not in step for step in steps)
    assert all(step["train/G/total"] == pytest.approx(100.0 * step["train/G/l1"], rel=1e-5) for step in steps)
