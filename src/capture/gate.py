"""The original's frame gate: keep a frame only with exactly one face, looking at the camera within a limit.

Head pose comes from the detected landmarks (PnP against FaceWorld's mean-face template, in
src.geometry.pose), so the gate works for every source, with or without depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.capture.calibration import CameraIntrinsics
from src.landmarks.detectors.base import FaceDetection, LandmarkDetector

ACCEPTED = "accepted"
NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
POSE = "pose"
POSE_FAILED = "pose_failed"
REASONS = (ACCEPTED, NO_FACE, MULTIPLE_FACES, POSE, POSE_FAILED)


@dataclass(frozen=True)
class GateDecision:
    reason: str  # one of REASONS
    detection: FaceDetection | None = None
    pose_deg: tuple[float, float, float] | None = None  # yaw, pitch, roll
    num_faces: int = 0

    @property
    def accepted(self) -> bool:
        return self.reason == ACCEPTED


def default_intrinsics(width: int, height: int) -> CameraIntrinsics:
    """For sources without a calibration (plain video, webcams): a ~53 degree horizontal field of view.

    PnP angles depend only weakly on the focal length for a face filling part of the image.
    """
    focal = float(max(width, height))
    return CameraIntrinsics(width, height, focal, focal, (width - 1) / 2, (height - 1) / 2)


class FrameGate:
    """Accept a frame when exactly one face is found and |yaw|, |pitch|, |roll| <= max_angle_deg."""

    def __init__(self, detector: LandmarkDetector, max_angle_deg: float = 10.0) -> None:
        if not max_angle_deg > 0:
            raise ValueError(f"gate.max_angle_deg must be positive, got {max_angle_deg}")
        self.detector = detector
        self.max_angle_deg = float(max_angle_deg)

    def __call__(self, color_rgb: np.ndarray, intrinsics: CameraIntrinsics | None = None) -> GateDecision:
        from src.geometry.pose import estimate_pose_2d

        faces = self.detector.detect(color_rgb)
        if not faces:
            return GateDecision(NO_FACE)
        if len(faces) > 1:
            return GateDecision(MULTIPLE_FACES, faces[0], num_faces=len(faces))
        face = faces[0]
        camera = intrinsics or default_intrinsics(color_rgb.shape[1], color_rgb.shape[0])
        points = face.landmarks.astype(np.float64)
        if camera.has_distortion:
            # PnP assumes a pinhole: move the landmarks to where an undistorted lens would have imaged them.
            rays, ok = camera.pixel_rays(points)
            points = np.where(ok[:, None], rays * (camera.fx, camera.fy) + (camera.cx, camera.cy), np.nan)
        try:
            pose = tuple(float(a) for a in estimate_pose_2d(points, camera.to_pinhole()))
        except (ValueError, RuntimeError):
            return GateDecision(POSE_FAILED, face, num_faces=1)
        if max(abs(a) for a in pose) > self.max_angle_deg:
            return GateDecision(POSE, face, pose, 1)  # type: ignore[arg-type]
        return GateDecision(ACCEPTED, face, pose, 1)  # type: ignore[arg-type]
