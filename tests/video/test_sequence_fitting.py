"""Sequence-level 3DMM fitting against FaceWorld's truth (landmarks projected from known coefficients)."""

from __future__ import annotations

import numpy as np
import pytest

from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import world_for
from src.faceworld.writers.videos import video_camera_for
from src.geometry.camera import OrthographicCamera
from src.geometry.fitting import fit_landmarks
from src.geometry.pose import euler_to_rotation
from src.geometry.sequence_fitting import fit_sequence, identity_frame_indices

FRAMES = 24


@pytest.fixture(scope="module")
def video():
    """Orthographic projections of a FaceWorld talking head (the fit's own camera model) plus small noise."""
    world = world_for()
    mm = world.model
    params = talking_head(world, 99, FRAMES, fps=25.0, seed=1)
    camera = video_camera_for(256, 256)
    rng = np.random.default_rng(0)
    points = []
    for p in params:
        ortho = OrthographicCamera.matching(camera, float(p.translation[2]))
        model_lm = mm.landmarks(mm.shape(p.identity, p.expression)).astype(np.float64)
        posed = model_lm @ euler_to_rotation(*p.head_rotation_deg).T + p.translation
        points.append(ortho.project(posed)[:, :2] + rng.normal(0, 0.3, (68, 2)))
    return mm, params, np.stack(points)


def test_identity_frames_spread_over_the_video():
    assert identity_frame_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert identity_frame_indices(3, 32).tolist() == [0, 1, 2]


def test_sequence_fit_recovers_pose_and_expression_better_than_per_frame(video):
    mm, params, points = video
    fit = fit_sequence(mm, points, identity_frames=8)
    true_expression = np.stack([p.expression for p in params])
    true_pose = np.array([p.head_rotation_deg for p in params])
    errors = np.abs(fit.expression - true_expression).mean(0)
    per_frame = np.stack([fit_landmarks(mm, frame).expression for frame in points])
    # What 68 2D points observe well: jaw, smile, brows, blinks (lips_pucker and cheek_puff trade off against the
    # identity's mouth and cheek shape: reported by bench/video_preprocess.py, not asserted here).
    names = ("jaw_open", "smile", "brow_frown", "blink_left", "blink_right")
    observable = [mm.expression_names.index(n) for n in names]
    assert errors[observable].max() < 0.1, dict(zip(mm.expression_names, errors.round(3)))
    assert errors.mean() < np.abs(per_frame - true_expression).mean()  # one identity for the video helps
    assert np.abs(fit.rotation_deg - true_pose).mean() < 1.0
    assert fit.reprojection_error_px.mean() < 0.5
    # the joint identity beats the mean of single-frame identity fits
    rounds0 = fit_sequence(mm, points, identity_frames=8, identity_rounds=0)
    assert np.allclose(rounds0.identity, rounds0.identity_per_frame.mean(0))
    assert np.abs(fit.identity - params[0].identity).mean() < np.abs(rounds0.identity - params[0].identity).mean()


def test_smoothing_removes_jitter_and_keeps_rotations_orthonormal(video):
    mm, _, points = video
    noisy = points + np.random.default_rng(1).normal(0, 1.5, points.shape)
    raw = fit_sequence(mm, noisy, identity_frames=4)
    smooth = fit_sequence(mm, noisy, identity_frames=4, smooth_window=7)
    jitter = lambda values: np.abs(np.diff(values, 2, axis=0)).mean()  # noqa: E731
    assert jitter(smooth.expression) < 0.6 * jitter(raw.expression)
    assert jitter(smooth.offset) < 0.6 * jitter(raw.offset)
    for rotation in smooth.rotation:
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(rotation) > 0


def test_bad_input_is_one_error(video):
    mm, _, points = video
    with pytest.raises(ValueError, match=r"expected shape \(N >= 1, 68 or 70, 2\)"):
        fit_sequence(mm, points[:, :10])
    bad = points.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_sequence(mm, bad)


def test_used_points_leave_the_jaw_contour_out(video):
    mm, _, points = video
    shifted = points.copy()
    shifted[:, :17, 1] += 6.0  # a detector whose jawline sits 6 px low (a silhouette, not the model's points)
    inner = np.arange(68) >= 17
    clean, moved = (fit_sequence(mm, p, identity_frames=6, used_points=inner) for p in (points, shifted))
    np.testing.assert_allclose(moved.expression, clean.expression, atol=1e-9)  # the jaw is not looked at
    np.testing.assert_allclose(moved.identity, clean.identity, atol=1e-9)
    with_jaw = fit_sequence(mm, shifted, identity_frames=6)
    assert np.abs(with_jaw.expression - clean.expression).max() > 1e-3  # ... while the full fit moves with it
    with pytest.raises(ValueError, match="used_points"):
        fit_sequence(mm, points, used_points=np.zeros(68, bool))
