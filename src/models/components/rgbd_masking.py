"""rgbd_face's depth-as-mask rule and its input-independent baseline, as plain modules (traceable, exportable).

Kept beside the system (src/models/rgbd_face.py) so the deployable MaskedGenerator and the mean-face baseline
need no LightningModule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from src.losses.depth import BACKGROUND_THRESHOLD
from src.utils.errors import UserError

DEPTH = slice(3, 4)
# Generated depth below this ([-1, 1] units) is background. Real faces never get there: the encoding keeps a
# padding in front of the nose (original 8-bit: 20 of 220 mm -> faces start at -0.82; FaceWorld / 16-bit 20 of
# 100 mm -> -0.6), so the cut sits inside that empty band. A cut at level 0 itself (-1 + 1/255) would ask tanh to
# saturate before any pixel counts as background, which a short training never reaches (measured: the whole
# quick-start image stayed "face"). Targets are unaffected (their background is exactly -1).
GENERATED_BACKGROUND_THRESHOLD = -0.9


def mask_background(rgbd: torch.Tensor, threshold: float = BACKGROUND_THRESHOLD) -> torch.Tensor:
    """-1 in every channel where the tensor's own depth is background (value unchanged elsewhere)."""
    background = rgbd[:, DEPTH] <= threshold
    return torch.where(background, torch.full((), -1.0, dtype=rgbd.dtype, device=rgbd.device), rgbd)


def mask_background_straight_through(rgbd: torch.Tensor, threshold: float = BACKGROUND_THRESHOLD) -> torch.Tensor:
    """mask_background in the forward pass, identity in the backward pass (masked pixels keep learning)."""
    return rgbd + (mask_background(rgbd, threshold) - rgbd).detach()


class MaskedGenerator(nn.Module):
    """G followed by the inference depth-as-mask rule: the deployable RGBD generator (traceable)."""

    def __init__(self, generator: nn.Module, threshold: float = GENERATED_BACKGROUND_THRESHOLD) -> None:
        super().__init__()
        self.generator = generator
        self.threshold = threshold

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return mask_background(self.generator(feature), self.threshold)


class MeanFaceGenerator(nn.Module):
    """The mean-face baseline: ignores its input and returns the per-pixel average training face.

    Colour: mean over all training frames (background -1 included, as the targets have it). Depth: mean over
    the frames that have depth at that pixel, where at least half of them do; background elsewhere. This is
    the strongest input-independent guess a trained generator has to beat.
    """

    def __init__(self, mean_rgbd: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean_rgbd", mean_rgbd.reshape(1, *mean_rgbd.shape[-3:]).clone())

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.mean_rgbd.expand(feature.shape[0], -1, -1, -1).to(feature.dtype)

    @classmethod
    def from_batches(cls, batches: Any, threshold: float = GENERATED_BACKGROUND_THRESHOLD) -> MeanFaceGenerator:
        colour_sum = depth_sum = depth_count = None
        frames = 0
        for batch in batches:
            target = mask_background(batch["rgbd"].double())
            foreground = (target[:, DEPTH] > BACKGROUND_THRESHOLD).double()
            colour, depth = target[:, :3].sum(0), (target[:, DEPTH] * foreground).sum(0)
            count = foreground.sum(0)
            if colour_sum is None:
                colour_sum, depth_sum, depth_count = colour, depth, count
            else:
                colour_sum, depth_sum, depth_count = colour_sum + colour, depth_sum + depth, depth_count + count
            frames += target.shape[0]
        if not frames:
            raise UserError("mean-face baseline: the training split is empty")
        depth = torch.where(
            depth_count >= frames / 2, depth_sum / depth_count.clamp_min(1), torch.full_like(depth_sum, -1)
        )
        mean = torch.cat([colour_sum / frames, depth], 0)
        return cls(mask_background(mean[None], threshold)[0].float())
