"""Fit a morphable model to 2D landmarks: weak-perspective pose + identity + expression coefficients.

What Head2Head's preprocessing does per frame (orthographic camera, NMFC from the fitted shape), done with
alternating linear least squares on the 68 landmark points only:
1. pose: an affine camera from the current 3D landmarks to the 2D ones, projected onto scale x rotation;
2. shape: with the pose fixed, the identity and expression coefficients (in std units) by ridge regression,
   then clipped to the model's valid ranges.
Works on any MorphableModel (FaceWorld's own or a loaded BFM / eos model). For a pinhole camera the image
points are first normalised by the intrinsics, so `scale` is 1 / depth and the translation is in mm.

DFDN's proxy estimation (`fit_proxy`) is the same fit, 10 iterations by default, with an optional expression
prior: the expression's ridge term pulls towards prior coefficients instead of towards neutral. The prior comes
from `ExpressionDictionary.lookup`: the nearest neighbour (L1) of a feature vector (DFDN: a 128-d emotion
feature of the face) among the keys of known expressions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.morphable import NUM_MODEL_LANDMARKS, MorphableModel
from src.geometry.pose import rotation_to_euler


@dataclass
class LandmarkFit:
    """Result of `fit_landmarks`. Image points ~ scale * (rotation @ X)[:2] + offset (pixels, or normalised
    coordinates for a pinhole camera); for a pinhole camera `translation` is the head position in mm."""

    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    scale: float
    offset: np.ndarray
    translation: np.ndarray
    yaw: float
    pitch: float
    roll: float
    landmarks3d: np.ndarray  # (68,3) model-space landmarks of the fitted shape
    reprojection_error_px: float


def _model_landmark_system(mm: MorphableModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (68*3,) and bases (68*3, K) of the landmark points (barycentric mixes of vertex rows)."""
    w = mm.landmark_weights.astype(np.float64)

    def rows(matrix: np.ndarray) -> np.ndarray:
        m = matrix.reshape(mm.num_vertices, 3, -1)
        return np.einsum("lk,lkcj->lcj", w, m[mm.landmark_vertices]).reshape(NUM_MODEL_LANDMARKS * 3, -1)

    mean = rows(mm.mean.astype(np.float64)[..., None])[:, 0]
    ident = rows(mm.identity_basis.astype(np.float64)) * mm.identity_std[None, :]
    expr = rows(mm.expression_basis.astype(np.float64)) * mm.expression_std[None, :]
    return mean, ident, expr


def _weak_perspective(points3d: np.ndarray, points2d: np.ndarray, weights: np.ndarray):
    """Scale, rotation and 2D offset with points2d ~ s * (R @ X)[:2] + offset (least squares, then projected)."""
    X = np.concatenate([points3d, np.ones((len(points3d), 1))], axis=1) * weights[:, None]
    A, *_ = np.linalg.lstsq(X, points2d * weights[:, None], rcond=None)  # (4,2)
    M = A[:3].T  # (2,3) = s * R[:2]
    offset = A[3]
    U, S, Vt = np.linalg.svd(M, full_matrices=False)
    scale = float(S.mean())
    r12 = U @ Vt
    r3 = np.cross(r12[0], r12[1])
    R = np.stack([r12[0], r12[1], r3])
    if np.linalg.det(R) < 0:
        R[2] *= -1
    return scale, R, offset


def fit_landmarks(
    mm: MorphableModel,
    landmarks2d: np.ndarray,
    camera: PinholeCamera | OrthographicCamera | None = None,
    *,
    visible: np.ndarray | None = None,
    iterations: int = 8,
    identity_regularization: float = 1.0,
    expression_regularization: float = 0.3,
    fit_identity: bool = True,
    identity: np.ndarray | None = None,
) -> LandmarkFit:
    """Fit pose, identity and expression to 68 (or 70, pupils ignored) 2D landmarks; see the module docstring.

    Regularisation weights are in squared pixels (normalised units are rescaled) per squared std. Pass a known
    `identity` with fit_identity=False to fit only pose and expression (per-frame fitting of a video).
    """
    return _fit(
        mm, landmarks2d, camera, visible=visible, iterations=iterations,
        identity_regularization=identity_regularization, expression_regularization=expression_regularization,
        fit_identity=fit_identity, identity=identity, expression_prior=None,
    )  # fmt: skip


def fit_proxy(
    mm: MorphableModel,
    landmarks2d: np.ndarray,
    camera: PinholeCamera | OrthographicCamera | None = None,
    *,
    expression_prior: np.ndarray | None = None,
    visible: np.ndarray | None = None,
    iterations: int = 10,
    identity_regularization: float = 1.0,
    expression_regularization: float = 300.0,
) -> LandmarkFit:
    """DFDN's proxy: pose + identity + expression from 68 landmarks, regularised least squares, 10 iterations;
    with `expression_prior` (K expression coefficients) the expression is pulled towards it, not to neutral.

    The expression's ridge weight defaults to 300 px^2 per squared unit (fit_landmarks: 0.3): on FaceWorld photos
    with 3 px landmark noise it gave the lowest expression error both without a prior and with one
    (bench/dfdn_proxy.py)."""
    prior = None
    if expression_prior is not None:
        prior = np.asarray(expression_prior, np.float64).reshape(-1)
        if prior.shape != (mm.num_expression,):
            raise ValueError(f"expression_prior: expected {mm.num_expression} coefficients, got {prior.shape}")
    return _fit(
        mm, landmarks2d, camera, visible=visible, iterations=iterations,
        identity_regularization=identity_regularization, expression_regularization=expression_regularization,
        fit_identity=True, identity=None, expression_prior=prior,
    )  # fmt: skip


class ExpressionDictionary:
    """Known expressions keyed by feature vectors; `lookup(feature)` returns the expression of the key nearest in
    L1 distance (DFDN's expression prior). keys (N,F), expressions (N,K)."""

    def __init__(self, keys: np.ndarray, expressions: np.ndarray) -> None:
        self.keys = np.asarray(keys, np.float32)
        self.expressions = np.asarray(expressions, np.float64)
        if self.keys.ndim != 2 or self.expressions.ndim != 2 or len(self.keys) != len(self.expressions):
            raise ValueError(f"keys (N,F) and expressions (N,K) must pair up, got {self.keys.shape} and "
                             f"{self.expressions.shape}")  # fmt: skip
        if not len(self.keys):
            raise ValueError("an expression dictionary needs at least one entry")

    def nearest(self, feature: np.ndarray) -> int:
        """Index of the key nearest `feature` in L1 distance."""
        query = np.asarray(feature, np.float32).reshape(1, -1)
        if query.shape[1] != self.keys.shape[1]:
            raise ValueError(f"feature: expected {self.keys.shape[1]} values, got {query.shape[1]}")
        return int(np.abs(self.keys - query).sum(axis=1).argmin())

    def lookup(self, feature: np.ndarray) -> np.ndarray:
        return self.expressions[self.nearest(feature)].copy()

    def save(self, path: str) -> None:
        np.savez(path, keys=self.keys, expressions=self.expressions)

    @classmethod
    def load(cls, path: str) -> ExpressionDictionary:
        with np.load(path) as data:
            return cls(data["keys"], data["expressions"])


def _fit(
    mm: MorphableModel,
    landmarks2d: np.ndarray,
    camera: PinholeCamera | OrthographicCamera | None = None,
    *,
    visible: np.ndarray | None = None,
    iterations: int = 8,
    identity_regularization: float = 1.0,
    expression_regularization: float = 0.3,
    fit_identity: bool = True,
    identity: np.ndarray | None = None,
    expression_prior: np.ndarray | None = None,
) -> LandmarkFit:
    """The alternating pose / coefficient fit behind fit_landmarks and fit_proxy (expression_prior None = neutral)."""
    pts = np.asarray(landmarks2d, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < NUM_MODEL_LANDMARKS:
        raise ValueError(f"landmarks2d: expected shape (68 or 70, 2), got {pts.shape}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    pts = pts[:NUM_MODEL_LANDMARKS]
    use = np.ones(NUM_MODEL_LANDMARKS, bool) if visible is None else np.asarray(visible, bool)[:NUM_MODEL_LANDMARKS]
    if use.sum() < 8:
        raise ValueError(f"fit_landmarks needs at least 8 visible landmarks, got {int(use.sum())}")
    unit = 1.0
    if isinstance(camera, PinholeCamera):
        unit = camera.fx
        pts = np.stack([(pts[:, 0] - camera.cx) / camera.fx, (pts[:, 1] - camera.cy) / camera.fy], axis=1)
    weights = use.astype(np.float64)

    mean, B_id, B_exp = _model_landmark_system(mm)
    k_id, k_exp = B_id.shape[1], B_exp.shape[1]
    alpha = np.zeros(k_id) if identity is None else np.asarray(identity, np.float64).copy()
    beta = np.zeros(k_exp) if expression_prior is None else np.asarray(expression_prior, np.float64).copy()
    lo, hi = mm.expression_ranges[:, 0].astype(np.float64), mm.expression_ranges[:, 1].astype(np.float64)
    for _ in range(iterations):
        shape = (mean + B_id @ alpha + B_exp @ beta).reshape(-1, 3)
        scale, R, offset = _weak_perspective(shape, pts, weights)
        # Linear system for the coefficients: residual = s * P R (B c) for the visible points.
        P = scale * R[:2]  # (2,3)
        target = (pts - offset - (shape @ P.T)).reshape(-1)  # current residual, (136,)
        basis = B_id if fit_identity else np.zeros((B_id.shape[0], 0))
        basis = np.concatenate([basis, B_exp], axis=1)
        J = np.einsum("ij,ljk->lik", P, basis.reshape(NUM_MODEL_LANDMARKS, 3, -1)).reshape(-1, basis.shape[1])
        w2 = np.repeat(weights, 2)
        n_id = k_id if fit_identity else 0
        reg = (
            np.concatenate([np.full(n_id, identity_regularization), np.full(k_exp, expression_regularization)])
            / unit**2
        )
        current = np.concatenate([alpha if fit_identity else np.zeros(0), beta])
        lhs = (J * w2[:, None]).T @ J + np.diag(reg)
        rhs = (J * w2[:, None]).T @ (target + J @ current) * 1.0
        if expression_prior is not None:  # ridge towards the prior: reg * ||beta - prior||^2
            rhs[n_id:] += reg[n_id:] * expression_prior
        solution = np.linalg.solve(lhs, rhs)
        if fit_identity:
            alpha = np.clip(solution[:k_id], -mm.identity_range, mm.identity_range)
        beta = np.clip(solution[n_id:], lo, hi)
    shape = (mean + B_id @ alpha + B_exp @ beta).reshape(-1, 3)
    scale, R, offset = _weak_perspective(shape, pts, weights)
    projected = shape @ (scale * R[:2]).T + offset
    error = float(np.sqrt(((projected - pts) ** 2).sum(1))[use].mean() * unit)
    if isinstance(camera, PinholeCamera):
        depth = 1.0 / scale
        translation = np.array([offset[0] * depth, offset[1] * depth, depth])
    else:
        translation = np.array([offset[0], offset[1], 0.0])
    yaw, pitch, roll = rotation_to_euler(R)
    return LandmarkFit(alpha, beta, R, scale, offset, translation, yaw, pitch, roll, shape, error)
