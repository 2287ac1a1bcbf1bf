"""Depth terms for RGBD outputs: background rule, masked depth L1 in mm, depth-gradient and normal losses.

Depth is in network units [-1, 1] with background at -1 (level 0 of the processed layout). A value is background
when it is <= ``BACKGROUND_THRESHOLD`` (half an 8-bit level above -1). Physical errors need ``mm_per_unit``, the
millimetres per network unit: for a ``DepthEncoding`` ``enc`` it is ``enc.mm_per_level * enc.max_level / 2``.
Inputs may be depth maps (N, 1, H, W) or RGBD (N, 4, H, W) with ``depth_channel=3``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BACKGROUND_THRESHOLD = -1.0 + 1.0 / 255.0


def select_depth(x: torch.Tensor, depth_channel: int | None) -> torch.Tensor:
    """(N, 1, H, W) depth from a depth map or from the ``depth_channel`` of a multi-channel tensor."""
    if depth_channel is not None:
        return x[:, depth_channel : depth_channel + 1]
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"expected depth (N, 1, H, W), got {tuple(x.shape)}; set depth_channel for RGBD")
    return x


def foreground_mask(depth: torch.Tensor, threshold: float = BACKGROUND_THRESHOLD) -> torch.Tensor:
    """True where depth carries a measurement (above the background code)."""
    return depth > threshold


def apply_depth_mask(
    pred_rgbd: torch.Tensor,
    real_rgbd: torch.Tensor,
    threshold: float = BACKGROUND_THRESHOLD,
    depth_channel: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The RGBD original's depth-as-mask rule: where the real OR the predicted depth is background, every
    channel of both tensors becomes -1. Returns (masked_pred, masked_real); gradients flow where kept."""
    if pred_rgbd.shape != real_rgbd.shape:
        raise ValueError(f"pred {tuple(pred_rgbd.shape)} and real {tuple(real_rgbd.shape)} differ")
    background = ~foreground_mask(real_rgbd[:, depth_channel : depth_channel + 1], threshold) | ~foreground_mask(
        pred_rgbd[:, depth_channel : depth_channel + 1], threshold
    )
    fill = torch.full((), -1.0, dtype=pred_rgbd.dtype, device=pred_rgbd.device)
    return torch.where(background, fill, pred_rgbd), torch.where(background, fill, real_rgbd)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


class _MaskedDepthLoss(nn.Module):
    """Settings and input handling the depth losses share: the depth of pred and target and the mask to compare
    them in (the caller's, or else the target's foreground)."""

    def __init__(
        self,
        mm_per_unit: float,
        weight: float = 1.0,
        depth_channel: int | None = None,
        threshold: float = BACKGROUND_THRESHOLD,
    ) -> None:
        super().__init__()
        if mm_per_unit <= 0:
            raise ValueError(f"mm_per_unit must be > 0, got {mm_per_unit}")
        self.mm_per_unit = mm_per_unit
        self.weight = weight
        self.depth_channel = depth_channel
        self.threshold = threshold

    def _depths_and_mask(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pred_d, target_d = select_depth(pred, self.depth_channel), select_depth(target, self.depth_channel)
        mask = foreground_mask(target_d, self.threshold) if mask is None else mask.bool()
        return pred_d, target_d, mask


class DepthL1Loss(_MaskedDepthLoss):
    """Mean |pred - target| depth in millimetres over the face mask (default: the target's foreground)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pred_d, target_d, mask = self._depths_and_mask(pred, target, mask)
        return self.weight * _masked_mean((pred_d - target_d).abs() * self.mm_per_unit, mask)


def depth_gradients(depth: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Forward differences along x and y and where both pixels of each difference are inside ``mask``."""
    dx = depth[..., :, 1:] - depth[..., :, :-1]
    dy = depth[..., 1:, :] - depth[..., :-1, :]
    return dx, dy, mask[..., :, 1:] & mask[..., :, :-1], mask[..., 1:, :] & mask[..., :-1, :]


class DepthGradientLoss(_MaskedDepthLoss):
    """L1 between the depth gradients (mm per pixel) of pred and target, inside the mask: penalises wrong
    relief (wrinkles, nose slope) even when the absolute depth is offset."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pred_d, target_d, mask = self._depths_and_mask(pred, target, mask)
        pdx, pdy, mx, my = depth_gradients(pred_d * self.mm_per_unit, mask)
        tdx, tdy, _, _ = depth_gradients(target_d * self.mm_per_unit, mask)
        count = (mx.sum() + my.sum()).clamp_min(1).to(pred.dtype)
        total = ((pdx - tdx).abs() * mx).sum() + ((pdy - tdy).abs() * my).sum()
        return self.weight * total / count


def depth_to_normals(depth_mm: torch.Tensor, mm_per_pixel: float, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Unit normals (N, 3, H, W) of a depth map from central differences (orthographic approximation, fine at
    face scale) and the pixels whose 4 neighbours are all inside ``mask``. Camera: x right, y down, z forward,
    so a surface facing the camera has normal (0, 0, -1)."""
    padded = F.pad(depth_mm, (1, 1, 1, 1), mode="replicate")
    dzdx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / (2 * mm_per_pixel)
    dzdy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / (2 * mm_per_pixel)
    normals = F.normalize(torch.cat([dzdx, dzdy, -torch.ones_like(dzdx)], 1), dim=1)
    m = F.pad(mask.to(depth_mm.dtype), (1, 1, 1, 1))
    valid = (m[..., 1:-1, 2:] * m[..., 1:-1, :-2] * m[..., 2:, 1:-1] * m[..., :-2, 1:-1] * m[..., 1:-1, 1:-1]) > 0
    return normals, valid


class NormalConsistencyLoss(_MaskedDepthLoss):
    """Mean (1 - cos) between surface normals of pred and target depth inside the mask (scale-free shading cue).

    ``mm_per_pixel`` is the lateral pixel size at the face (e.g. ~0.5 mm for a 512 crop of a ~250 mm face).
    """

    def __init__(
        self,
        mm_per_unit: float,
        mm_per_pixel: float = 1.0,
        weight: float = 1.0,
        depth_channel: int | None = None,
        threshold: float = BACKGROUND_THRESHOLD,
    ) -> None:
        super().__init__(mm_per_unit, weight, depth_channel, threshold)
        if mm_per_pixel <= 0:
            raise ValueError(f"mm_per_pixel must be > 0, got {mm_per_pixel}")
        self.mm_per_pixel = mm_per_pixel

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pred_d, target_d, mask = self._depths_and_mask(pred, target, mask)
        pred_n, valid = depth_to_normals(pred_d * self.mm_per_unit, self.mm_per_pixel, mask)
        target_n, _ = depth_to_normals(target_d * self.mm_per_unit, self.mm_per_pixel, mask)
        cosine = (pred_n * target_n).sum(1, keepdim=True)
        return self.weight * _masked_mean(1.0 - cosine, valid)
