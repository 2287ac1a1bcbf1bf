"""rgbd_face's split background cut: training masks at model.training_background_threshold, inference (val / test /
export) at model.background_threshold, and an unset training cut is the inference cut."""

from __future__ import annotations

import pytest
import torch
from test_rgbd_face_pinned import pinned_kwargs
from torch import nn

from src.models.rgbd_face import RGBDFaceModule

# Generated depth of three pixels: below both cuts, between them, above both.
RAW_DEPTH = (-0.999, -0.95, -0.5)


class FixedOutput(nn.Module):
    """A 'generator' that paints colour 0.3 and the given depth per pixel, whatever the drawing."""

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        depth = torch.tensor(RAW_DEPTH).view(1, 1, 1, 3).expand(feature.shape[0], 1, 1, 3)
        return torch.cat([torch.full_like(depth, 0.3).expand(-1, 3, -1, -1), depth], dim=1)


def masked_background(module: RGBDFaceModule, training: bool, rule: str = "prediction") -> list[bool]:
    """Which of the three pixels the module's generate() turns into background (-1 in every channel; up to float
    rounding in training, where the straight-through mask adds the masked difference back to the raw value)."""
    module.depth_mask_rule = rule
    module.train(training)
    batch = {"feature": torch.zeros(1, 1, 1, 3), "rgbd": torch.full((1, 4, 1, 3), 0.5)}
    fake = module.generate(batch, FixedOutput())["rgbd"]
    return [bool(((fake[0, :, 0, i] + 1.0).abs() < 1e-6).all()) for i in range(3)]


def module_with_cuts(inference: float, training: float | None) -> RGBDFaceModule:
    kwargs = pinned_kwargs("prediction", None, None)
    return RGBDFaceModule(**{**kwargs, "background_threshold": inference, "training_background_threshold": training})


@pytest.mark.parametrize("rule", ["prediction", "original"])
def test_training_masks_at_the_training_cut_and_inference_at_the_inference_cut(rule: str) -> None:
    module = module_with_cuts(inference=-0.9, training=-0.992)
    assert masked_background(module, training=True, rule=rule) == [True, False, False]
    assert masked_background(module, training=False, rule=rule) == [True, True, False]
    assert module.export_model().threshold == -0.9


def test_an_unset_training_cut_is_the_inference_cut() -> None:
    module = module_with_cuts(inference=-0.9, training=None)
    assert module.training_background_threshold == -0.9
    assert masked_background(module, training=True) == masked_background(module, training=False) == [True, True, False]
