"""Fit a morphable model to the landmarks of a whole video: one identity for the video, pose and expression per frame.

Head2Head's preprocessing fits identity, expression and an orthographic camera per frame, then writes the identity
averaged over the video (id_coeffs/<id>.txt) and renders every NMFC with it. We do the same in two passes over
src.geometry.fitting.fit_landmarks:
1. identity: full fits (pose, identity, expression) on up to `identity_frames` frames spread evenly over the video;
   their mean starts the video's identity (per-frame fits of one face scatter; the mean is what every frame shares);
   then `identity_rounds` rounds of: pose + expression per identity frame with the identity fixed, and ONE identity
   solved jointly over all those frames (a stacked ridge regression). Expression moves over time while the identity
   does not, so the joint solve separates what a single frame confuses (a narrow mouth vs. pursed lips);
2. per frame: pose and expression with that identity fixed (cheaper, and the expression no longer absorbs shape).
Optionally the per-frame expression and camera are smoothed over time (Savitzky-Golay), which removes the landmark
detector's frame-to-frame jitter from the NMFC sequence; rotations are smoothed element-wise and projected back
onto rotation matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter

from src.geometry.fitting import fit_landmarks
from src.geometry.morphable import MorphableModel
from src.geometry.pose import rotation_to_euler

__all__ = ["SequenceFit", "fit_sequence", "identity_frame_indices"]


@dataclass
class SequenceFit:
    """Per-frame orthographic cameras (pixel = scale * (rotation @ X)[:2] + offset), expressions and one identity."""

    identity: np.ndarray  # (K_id,) the video's identity (joint fit over the identity frames)
    identity_frames: np.ndarray  # (M,) frame positions the identity was fitted on
    identity_per_frame: np.ndarray  # (M, K_id) the single-frame fits (their spread measures identity stability)
    expression: np.ndarray  # (N, K_exp)
    rotation: np.ndarray  # (N, 3, 3)
    scale: np.ndarray  # (N,)
    offset: np.ndarray  # (N, 2) pixels
    rotation_deg: np.ndarray  # (N, 3) yaw, pitch, roll (src.geometry.pose conventions)
    reprojection_error_px: np.ndarray  # (N,) mean distance of the fitted projection to the used landmarks


def _landmark_bases(mm: MorphableModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (68*3,) and identity / expression bases (68*3, K) of the 68 landmark points, in std units."""
    vertices, weights = mm.landmark_vertices, mm.landmark_weights.astype(np.float64)

    def at_landmarks(matrix: np.ndarray) -> np.ndarray:
        per_vertex = matrix.astype(np.float64).reshape(mm.num_vertices, 3, -1)
        return np.einsum("lk,lkcj->lcj", weights, per_vertex[vertices]).reshape(-1, matrix.shape[-1])

    mean = at_landmarks(mm.mean.reshape(-1, 1))[:, 0]
    return (
        mean,
        at_landmarks(mm.identity_basis) * mm.identity_std,
        at_landmarks(mm.expression_basis) * mm.expression_std,
    )


def identity_frame_indices(num_frames: int, count: int) -> np.ndarray:
    """Up to `count` frame positions spread evenly over [0, num_frames)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if count < 1:
        raise ValueError(f"identity_frames must be >= 1, got {count}")
    return np.unique(np.round(np.linspace(0, num_frames - 1, min(count, num_frames))).astype(np.int64))


def _project_rotation(matrix: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(matrix)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        rotation = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return rotation


def _smooth(values: np.ndarray, window: int, order: int) -> np.ndarray:
    """Savitzky-Golay along axis 0 with the window shrunk to the (odd) sequence length; short sequences unchanged."""
    n = len(values)
    win = min(window, n if n % 2 else n - 1)
    if win <= order:
        return values
    return savgol_filter(values, win, order, axis=0, mode="interp")


def fit_sequence(
    mm: MorphableModel,
    landmarks: np.ndarray,
    *,
    identity_frames: int = 32,
    identity_rounds: int = 2,
    iterations: int = 8,
    expression_iterations: int = 4,
    identity_regularization: float = 1.0,
    expression_regularization: float = 0.3,
    smooth_window: int = 0,
    smooth_order: int = 2,
    used_points: np.ndarray | None = None,
) -> SequenceFit:
    """Fit (N, 68 or 70, 2) landmarks of N consecutive frames (pixels; pupils ignored); see the module docstring.

    smooth_window: Savitzky-Golay window in frames for expression and camera (0 or 1: no smoothing).
    used_points: (68,) bool, the landmarks the fit uses (default all). Leaving the jaw contour (0-16) out helps when
    the detector's contour is a silhouette rather than fixed points on the face, as 2D jawlines of turned heads are."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] != 2 or points.shape[1] < 68 or len(points) < 1:
        raise ValueError(f"landmarks: expected shape (N >= 1, 68 or 70, 2), got {points.shape}")
    if not np.all(np.isfinite(points[:, :68])):
        raise ValueError("landmarks: NaN or infinite values (drop faceless frames before fitting)")
    if identity_rounds < 0:
        raise ValueError(f"identity_rounds must be >= 0, got {identity_rounds}")
    if smooth_window < 0 or smooth_order < 1:
        raise ValueError(f"smooth_window must be >= 0 and smooth_order >= 1, got {smooth_window}, {smooth_order}")
    use = np.ones(68, bool) if used_points is None else np.asarray(used_points, bool).reshape(-1)[:68]
    if use.shape != (68,) or use.sum() < 8:
        raise ValueError("used_points must be 68 booleans with at least 8 True")
    chosen = identity_frame_indices(len(points), identity_frames)
    identity_fits = np.stack(
        [
            fit_landmarks(
                mm, points[k], iterations=iterations, identity_regularization=identity_regularization,
                expression_regularization=expression_regularization, visible=use,
            ).identity
            for k in chosen
        ]
    )  # fmt: skip
    identity = identity_fits.mean(axis=0)
    mean, basis_id, basis_exp = _landmark_bases(mm)
    for _ in range(identity_rounds):
        rows, targets = [], []
        for k in chosen:
            f = fit_landmarks(
                mm, points[k], iterations=expression_iterations, fit_identity=False, identity=identity,
                expression_regularization=expression_regularization, visible=use,
            )  # fmt: skip
            projection = f.scale * f.rotation[:2]  # (2, 3)
            fixed = (mean + basis_exp @ f.expression).reshape(-1, 3) @ projection.T + f.offset
            rows.append(np.einsum("ij,ljk->lik", projection, basis_id.reshape(-1, 3, basis_id.shape[1])).reshape(
                -1, basis_id.shape[1]))  # fmt: skip
            targets.append((points[k, :68] - fixed).reshape(-1))
        keep = np.tile(np.repeat(use, 2), len(chosen))
        J, r = np.concatenate(rows)[keep], np.concatenate(targets)[keep]
        lhs = J.T @ J + identity_regularization * len(chosen) * np.eye(J.shape[1])
        identity = np.clip(np.linalg.solve(lhs, J.T @ r), -mm.identity_range, mm.identity_range)
    fits = [
        fit_landmarks(
            mm, frame, iterations=expression_iterations, fit_identity=False, identity=identity,
            expression_regularization=expression_regularization, visible=use,
        )
        for frame in points
    ]  # fmt: skip
    expression = np.stack([f.expression for f in fits])
    rotation = np.stack([f.rotation for f in fits])
    scale = np.array([f.scale for f in fits])
    offset = np.stack([f.offset for f in fits])
    if smooth_window > 1:
        lo, hi = mm.expression_ranges[:, 0], mm.expression_ranges[:, 1]
        expression = np.clip(_smooth(expression, smooth_window, smooth_order), lo, hi)
        scale = _smooth(scale, smooth_window, smooth_order)
        offset = _smooth(offset, smooth_window, smooth_order)
        smoothed = _smooth(rotation.reshape(len(rotation), 9), smooth_window, smooth_order).reshape(-1, 3, 3)
        rotation = np.stack([_project_rotation(r) for r in smoothed])
    # The reprojection error of what is returned (after smoothing, if any).
    errors = []
    for k in range(len(points)):
        shape = mm.landmarks(mm.shape(identity, expression[k])).astype(np.float64)
        projected = scale[k] * (shape @ rotation[k].T)[:, :2] + offset[k]
        errors.append(float(np.linalg.norm(projected - points[k, :68], axis=1)[use].mean()))
    return SequenceFit(
        identity=identity,
        identity_frames=chosen,
        identity_per_frame=identity_fits,
        expression=expression,
        rotation=rotation,
        scale=scale,
        offset=offset,
        rotation_deg=np.array([rotation_to_euler(r) for r in rotation]),
        reprojection_error_px=np.array(errors),
    )
