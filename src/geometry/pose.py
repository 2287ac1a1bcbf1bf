"""Head pose: Euler angles <-> rotation, rigid 3D alignment (Kabsch / Umeyama) and 2D PnP pose.

Convention (camera space x right, y down, z forward; a frontal face looks along -z):
    R = Rz(roll) @ Ry(yaw) @ Rx(pitch), angles in degrees.
    positive yaw   -> the nose turns towards the image's right (+x),
    positive pitch -> the nose turns up (-y, chin forward),
    positive roll  -> the head tilts clockwise in the image (top of the head towards +x).
A posed model point is X_cam = R @ X_model + t.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.geometry.camera import PinholeCamera


def euler_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation from yaw, pitch, roll in degrees (see module docstring)."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    Ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    Rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    Rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return Rz @ Ry @ Rx


def rotation_to_euler(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a rotation built by `euler_to_rotation` (|yaw| < 90)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        raise ValueError(f"rotation must be 3x3, got shape {R.shape}")
    yaw = np.arcsin(np.clip(R[2, 0], -1.0, 1.0))
    pitch = np.arctan2(-R[2, 1], R[2, 2])
    roll = np.arctan2(R[1, 0], R[0, 0])
    return tuple(float(v) for v in np.rad2deg([yaw, pitch, roll]))  # type: ignore[return-value]


def estimate_rigid_transform(
    source: np.ndarray, target: np.ndarray, *, with_scale: bool = False, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares R, t (and scale s) with target ~ s * R @ source + t (Umeyama 1991)."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"point sets must both be (N, 3), got {src.shape} and {dst.shape}")
    if src.shape[0] < 3:
        raise ValueError(f"need at least 3 point pairs for a rigid fit, got {src.shape[0]}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    cs, cd = src - mu_s, dst - mu_d
    cov = (cd * w[:, None]).T @ cs
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D) / (w @ (cs**2).sum(1))) if with_scale else 1.0
    t = mu_d - scale * R @ mu_s
    return R, t, scale


def estimate_pose_3d(
    model_points: np.ndarray, camera_points: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """Pose of a rigid model from 3D correspondences: (yaw, pitch, roll, R, t), camera = R @ model + t."""
    R, t, _ = estimate_rigid_transform(model_points, camera_points, weights=weights)
    yaw, pitch, roll = rotation_to_euler(R)
    return yaw, pitch, roll, R, t


# Landmarks PnP uses by default: brows, nose, eyes and mouth (iBUG 17..67). The jaw contour (0..16) is left out:
# a detector puts it on the face's silhouette, which slides over the skin as the head turns or nods, while the
# template holds fixed mesh points. Measured with mediapipe on 30 FaceWorld frames (pitch in [-20, 20]): with the
# jaw the estimated pitch is ~0.5x the true one (mean error 5.4 deg), without it ~0.9x (mean error 3.8 deg).
POSE_LANDMARKS = np.arange(17, 68)
JAW_LANDMARKS = np.arange(0, 17)


def estimate_pose_2d(
    landmarks2d: np.ndarray,
    camera: PinholeCamera,
    template3d: np.ndarray | None = None,
    visible: np.ndarray | None = None,
    *,
    use_jaw: bool = False,
) -> tuple[float, float, float]:
    """Head pose (yaw, pitch, roll) from 2D landmarks by PnP against a 3D template.

    The default template is FaceWorld's mean-face landmarks in model space (68 iBUG points; pupils are left
    out because they move with gaze). Accepts (68, 2) or (70, 2) landmarks; `visible` masks points out.
    The jaw contour is used only with `use_jaw=True`: right for landmarks that are fixed surface points (a
    renderer's true landmarks, where the jaw adds a long vertical baseline), wrong for detections (see
    POSE_LANDMARKS).
    """
    pts = np.asarray(landmarks2d, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 68:
        raise ValueError(f"landmarks2d: expected shape (68 or 70, 2), got {pts.shape}")
    if template3d is None:
        from src.faceworld.model import default_landmark_template  # local import: geometry must not need it

        template3d = default_landmark_template()
    tpl = np.asarray(template3d, dtype=np.float64)
    if tpl.ndim != 2 or tpl.shape[1] != 3 or tpl.shape[0] < 68:
        raise ValueError(f"template3d: expected shape (68 or more, 3), got {tpl.shape}")
    use = np.ones(68, dtype=bool) if visible is None else np.asarray(visible, dtype=bool)[:68].copy()
    if not use_jaw:
        use[JAW_LANDMARKS] = False
    use &= np.all(np.isfinite(pts[:68]), axis=1)
    if use.sum() < 6:
        raise ValueError(f"estimate_pose_2d needs at least 6 usable landmarks, got {int(use.sum())}")
    obj = np.ascontiguousarray(tpl[:68][use])
    img = np.ascontiguousarray(pts[:68][use])
    ok, rvec, tvec = cv2.solvePnP(obj, img, camera.matrix, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        raise RuntimeError("estimate_pose_2d: cv2.solvePnP found no pose for these landmarks")
    ok, rvec, tvec = cv2.solvePnP(
        obj, img, camera.matrix, None, rvec=rvec, tvec=tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    R_cam, _ = cv2.Rodrigues(rvec)
    # The pose relative to the world: undo the camera's own extrinsic rotation.
    R_world = camera.rotation.T @ R_cam
    return rotation_to_euler(R_world)
