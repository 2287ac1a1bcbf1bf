"""Pixel reconstruction loss (pix2pix's L1, x100 in the RGBD original), optionally on a channel subset / mask."""

from __future__ import annotations

import torch
from torch import nn


class L1ReconstructionLoss(nn.Module):
    """Mean absolute error; ``channels`` selects e.g. [0, 1, 2] (colour) of RGBD; a mask (N,1,H,W) weights pixels."""

    def __init__(self, weight: float = 1.0, channels: list[int] | None = None) -> None:
        super().__init__()
        self.weight = weight
        self.channels = list(channels) if channels is not None else None

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        if self.channels is not None:
            pred, target = pred[:, self.channels], target[:, self.channels]
        error = (pred - target).abs()
        if mask is None:
            return self.weight * error.mean()
        mask = mask.to(error.dtype).expand_as(error)
        return self.weight * (error * mask).sum() / mask.sum().clamp_min(1.0)
