"""Silhouette shares of the predicted depth (background painted as face, holes in the face) vs a pixel loop."""

from __future__ import annotations

import math

import pytest
import torch

from src.losses.depth import BACKGROUND_THRESHOLD
from src.metrics import depth_metrics_mm
from src.metrics.depth import silhouette_errors


def _naive_shares(pred_depth: list[list[float]], true_depth: list[list[float]], threshold: float) -> tuple:
    """(background_as_face, face_as_background) of one sample by counting pixels one at a time."""
    background = painted = face = holes = 0
    for pred_row, true_row in zip(pred_depth, true_depth, strict=True):
        for p, t in zip(pred_row, true_row, strict=True):
            if t > threshold:
                face += 1
                holes += p <= threshold
            else:
                background += 1
                painted += p > threshold
    return (painted / background if background else math.nan, holes / face if face else math.nan)


def test_silhouette_shares_match_a_pixel_loop() -> None:
    generator = torch.Generator().manual_seed(3)
    # Depth in [-1, 1] with exact background (-1) in the target and values straddling the cut in the prediction.
    target = torch.rand(5, 4, 9, 11, generator=generator) * 2 - 1
    target[:, 3] = torch.where(torch.rand(5, 9, 11, generator=generator) < 0.4, -1.0, target[:, 3].abs())
    pred = target.clone()
    pred[:, 3] = torch.rand(5, 9, 11, generator=generator) * 0.02 - 1.0  # around BACKGROUND_THRESHOLD (-0.996)
    pred[2, 3] = target[2, 3]  # a perfect silhouette
    result = silhouette_errors(pred, target, depth_channel=3)
    for index in range(5):
        expected = _naive_shares(pred[index, 3].tolist(), target[index, 3].tolist(), BACKGROUND_THRESHOLD)
        assert result["background_as_face"][index].item() == pytest.approx(expected[0], abs=1e-7)
        assert result["face_as_background"][index].item() == pytest.approx(expected[1], abs=1e-7)
    assert result["background_as_face"][2] == 0 and result["face_as_background"][2] == 0
    assert 0 < result["background_as_face"][0] < 1  # the random prediction straddles the cut both ways


def test_silhouette_shares_extremes_and_undefined() -> None:
    target = torch.tensor([[[[-1.0, -1.0, 0.2, 0.4]]], [[[0.1, 0.1, 0.1, 0.1]]], [[[-1.0, -1.0, -1.0, -1.0]]]])
    everything_face = torch.full_like(target, 0.0)
    result = silhouette_errors(everything_face, target)
    assert result["background_as_face"][0] == 1.0 and result["face_as_background"][0] == 0.0
    assert math.isnan(result["background_as_face"][1])  # no background to paint over: undefined, not 0
    assert math.isnan(result["face_as_background"][2])  # no face to leave holes in
    nothing = silhouette_errors(torch.full_like(target, -1.0), target)
    assert nothing["background_as_face"][0] == 0.0 and nothing["face_as_background"][0] == 1.0
    with pytest.raises(ValueError, match="differ"):
        silhouette_errors(target, target[:, :, :, :2])


def test_depth_metrics_carry_the_silhouette_shares() -> None:
    target = torch.full((2, 4, 3, 3), -1.0)
    target[:, 3, 1, 1] = 0.5
    pred = target.clone()
    pred[0, 3, 0, :] = 0.3  # three of the eight background pixels painted as face
    metrics = depth_metrics_mm(pred, target, mm_per_unit=50.0, depth_channel=3)
    assert metrics["background_as_face"].tolist() == pytest.approx([3 / 8, 0.0])
    assert metrics["face_as_background"].tolist() == [0.0, 0.0]
    assert metrics["depth_mae_mm"].tolist() == [0.0, 0.0]  # the face pixel itself is right: MAE cannot see it
