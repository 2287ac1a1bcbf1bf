"""Per-sample depth errors in millimetres inside the face mask (default: the target's depth foreground).

Depth in [-1, 1] network units, background -1 (see ``src.losses.depth``); ``mm_per_unit`` converts unit
differences to mm (``enc.mm_per_level * enc.max_level / 2`` for a ``DepthEncoding``). A sample with an empty
mask yields NaN rather than a misleading 0.
"""

from __future__ import annotations

import torch

from src.losses.depth import BACKGROUND_THRESHOLD, foreground_mask, select_depth


def _errors_mm(pred, target, mm_per_unit, mask, depth_channel, threshold) -> tuple[torch.Tensor, torch.Tensor]:
    pred_d = select_depth(pred, depth_channel).detach().to(torch.float64)
    target_d = select_depth(target, depth_channel).detach().to(torch.float64)
    mask = foreground_mask(target_d, threshold) if mask is None else mask.bool()
    mask = mask.expand_as(pred_d).to(torch.float64)
    return (pred_d - target_d) * mm_per_unit, mask


def depth_mae_mm(
    pred: torch.Tensor,
    target: torch.Tensor,
    mm_per_unit: float,
    mask: torch.Tensor | None = None,
    depth_channel: int | None = None,
    threshold: float = BACKGROUND_THRESHOLD,
) -> torch.Tensor:
    error, m = _errors_mm(pred, target, mm_per_unit, mask, depth_channel, threshold)
    return ((error.abs() * m).flatten(1).sum(1) / m.flatten(1).sum(1)).to(torch.float32)


def depth_rmse_mm(
    pred: torch.Tensor,
    target: torch.Tensor,
    mm_per_unit: float,
    mask: torch.Tensor | None = None,
    depth_channel: int | None = None,
    threshold: float = BACKGROUND_THRESHOLD,
) -> torch.Tensor:
    error, m = _errors_mm(pred, target, mm_per_unit, mask, depth_channel, threshold)
    return ((error.pow(2) * m).flatten(1).sum(1) / m.flatten(1).sum(1)).sqrt().to(torch.float32)


def depth_metrics_mm(
    pred: torch.Tensor,
    target: torch.Tensor,
    mm_per_unit: float,
    mask: torch.Tensor | None = None,
    depth_channel: int | None = None,
    threshold: float = BACKGROUND_THRESHOLD,
) -> dict[str, torch.Tensor]:
    """``{"depth_mae_mm": (N,), "depth_rmse_mm": (N,)}``."""
    args = (pred, target, mm_per_unit, mask, depth_channel, threshold)
    return {"depth_mae_mm": depth_mae_mm(*args), "depth_rmse_mm": depth_rmse_mm(*args)}
