"""Depth hole filling: exactness on smooth surfaces, what it may touch, and accuracy against OpenCV on FaceWorld."""

from __future__ import annotations

import numpy as np
import pytest
from convert_testdata import faceworld_frame

from src.convert.depth_fill import FillSettings, fill_depth, inpaint_opencv
from src.convert.steps import face_fill_region, fill_face_depth


def _surface(kind: str, size: int = 160) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    if kind == "plane":
        return (600 + 0.3 * x - 0.2 * y).astype(np.float32)
    return (600 + 0.004 * ((x - 80) ** 2 + (y - 70) ** 2)).astype(np.float32)  # a bowl (quadratic)


def _disc(size: int = 160, radius: int = 30) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    return (x - 80) ** 2 + (y - 80) ** 2 < radius**2


def test_the_membrane_fills_a_plane_to_a_quarter_of_a_millimetre():
    truth = _surface("plane")
    hole = _disc()
    filled = fill_depth(np.where(hole, 0, truth), settings=FillSettings("harmonic"))
    error = filled[hole] - truth[hole]  # a 60 px hole with 20 mm of slope across it, default (fast) sweeps
    assert np.abs(error).max() < 0.25 and np.sqrt(np.mean(error**2)) < 0.15


def test_the_thin_plate_bends_into_a_curved_hole_where_the_membrane_flattens():
    truth = _surface("bowl")
    hole = _disc()
    depth = np.where(hole, 0, truth)

    def rmse(settings: FillSettings) -> float:
        filled = fill_depth(depth, settings=settings)
        return float(np.sqrt(np.mean((filled[hole] - truth[hole]) ** 2)))

    membrane = rmse(FillSettings("harmonic", fine_iterations=16, coarse_iterations=30))
    assert rmse(FillSettings("biharmonic", fine_iterations=16, coarse_iterations=30)) < 0.6 * membrane
    assert rmse(FillSettings("biharmonic")) < 0.95 * rmse(FillSettings("harmonic"))  # also with the fast defaults


def test_only_requested_holes_change_and_background_never_anchors_the_fill():
    truth = _surface("plane")
    depth = truth.copy()
    hole = _disc(radius=12)
    other_hole = np.zeros_like(hole)
    other_hole[5:15, 5:15] = True
    depth[hole | other_hole] = 0
    depth[100:160, 120:160] = 1500.0  # a wall far behind
    wall = depth == 1500.0
    filled = fill_depth(depth, fill_mask=hole, far_mm=800.0)
    valid = depth > 0
    assert np.array_equal(filled[valid], depth[valid])  # valid depth (wall included) is never modified
    assert np.all(filled[other_hole] == 0)  # holes outside the mask stay holes
    assert np.all(filled[hole] > 0) and np.abs(filled[hole] - truth[hole]).max() < 0.5
    assert wall.any()


def test_settings_are_validated_with_the_key_named():
    with pytest.raises(ValueError, match="method"):
        FillSettings("exemplar")
    with pytest.raises(ValueError, match="sor_omega"):
        FillSettings("harmonic", sor_omega=2.5)
    with pytest.raises(ValueError, match="shape"):
        fill_depth(np.ones((4, 4)), fill_mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="telea"):
        inpaint_opencv(np.ones((4, 4)), np.ones((4, 4), bool), "fmm")


def test_on_faceworld_kinect_holes_ours_beats_opencv_telea_and_ns():
    """Same input (float32 mm), same holes, same face region; truth = FaceWorld's noiseless depth."""
    errors: dict[str, list[np.ndarray]] = {m: [] for m in ("biharmonic", "harmonic", "telea", "ns")}
    for seed in (11, 12):
        frame = faceworld_frame(380, 454, seed)
        (y0, y1, x0, x1), region = face_fill_region(frame.depth_u16.shape, frame.landmarks, 0.02)
        truth = frame.true_depth_mm[y0:y1, x0:x1]
        scored = region & (frame.depth_u16[y0:y1, x0:x1] == 0) & (truth > 0)
        assert scored.sum() > 200
        for method in errors:
            filled, origin = fill_face_depth(frame.depth_u16, frame.landmarks, FillSettings(method), 0.02)
            assert origin == (y0, x0)
            errors[method].append(filled[scored] - truth[scored])
    rmse = {m: float(np.sqrt(np.mean(np.concatenate(e) ** 2))) for m, e in errors.items()}
    best_opencv = min(rmse["telea"], rmse["ns"])
    assert rmse["biharmonic"] < best_opencv, rmse
    assert rmse["harmonic"] < best_opencv, rmse
