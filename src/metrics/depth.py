"""Per-sample depth errors in millimetres inside the face mask (default: the target's depth foreground).

Depth in [-1, 1] network units, background -1 (see ``src.losses.depth``); ``mm_per_unit`` converts unit
differences to mm (``enc.mm_per_level * enc.max_level / 2`` for a ``DepthEncoding``). A sample with an empty
mask yields NaN rather than a misleading 0.

The silhouette shares (``background_as_face``, ``face_as_background``) say whether the predicted depth puts the
face where it belongs. Depth errors inside the face mask cannot see a prediction that paints face over the
background, and the image metrics barely notice it when the invented colour is close to -1; these shares do.
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


def silhouette_errors(
    pred: torch.Tensor,
    target: torch.Tensor,
    depth_channel: int | None = None,
    threshold: float = BACKGROUND_THRESHOLD,
) -> dict[str, torch.Tensor]:
    """Per-sample silhouette errors of the predicted depth, both (N,), float32:

    background_as_face: the share of the target's background pixels where the prediction has depth (face painted
        over the background; NaN when the target has no background);
    face_as_background: the share of the target's foreground pixels where the prediction has none (holes in the
        face; NaN when the target has no foreground).

    Foreground means depth above ``threshold`` in both tensors, the rule every depth metric here uses, so a model
    that masks its own output with a stricter cut is scored on what it actually outputs.
    """
    pred_face = foreground_mask(select_depth(pred, depth_channel).detach(), threshold).flatten(1)
    true_face = foreground_mask(select_depth(target, depth_channel).detach(), threshold).flatten(1)
    if pred_face.shape != true_face.shape:
        raise ValueError(f"pred depth {tuple(pred_face.shape)} and target depth {tuple(true_face.shape)} differ")
    true_background = ~true_face
    painted = (pred_face & true_background).sum(1).to(torch.float64)
    holes = (~pred_face & true_face).sum(1).to(torch.float64)
    return {
        "background_as_face": (painted / true_background.sum(1).to(torch.float64)).to(torch.float32),
        "face_as_background": (holes / true_face.sum(1).to(torch.float64)).to(torch.float32),
    }


def depth_metrics_mm(
    pred: torch.Tensor,
    target: torch.Tensor,
    mm_per_unit: float,
    mask: torch.Tensor | None = None,
    depth_channel: int | None = None,
    threshold: float = BACKGROUND_THRESHOLD,
) -> dict[str, torch.Tensor]:
    """``{"depth_mae_mm", "depth_rmse_mm", "background_as_face", "face_as_background"}``, each (N,).

    The errors in mm are measured inside ``mask``; the silhouette shares (see ``silhouette_errors``) over the whole
    image, since they exist to catch what happens outside the face.
    """
    args = (pred, target, mm_per_unit, mask, depth_channel, threshold)
    return {
        "depth_mae_mm": depth_mae_mm(*args),
        "depth_rmse_mm": depth_rmse_mm(*args),
        **silhouette_errors(pred, target, depth_channel, threshold),
    }
