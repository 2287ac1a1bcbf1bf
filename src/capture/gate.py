"""The original's frame gate: keep a frame only with exactly one face, looking at the camera within a limit.

Head pose comes from the detected landmarks (PnP against FaceWorld's mean-face template, in
src.geometry.pose), so the gate works for every source, with or without depth. Faces are counted by a detector
made for small faces (src/capture/face_count.py) together with the landmark model: the landmark model alone misses
faces a few percent of the frame wide, so a bystander would pass as "exactly one face".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from src.capture.calibration import CameraIntrinsics
from src.capture.face_count import SAME_FACE_OVERLAP, FaceCounter
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
    """Accept a frame when exactly one face is found and |yaw|, |pitch|, |roll| <= max_angle_deg.

    `face_counter`: the detector that counts faces besides the landmark model ("default": a FaceCounter for faces
    of 40 px and more; None: the landmark model's own count, which misses small faces). A face seen by either
    counts, so the landmark model's subject and the counter's boxes of it are one face.
    """

    def __init__(
        self,
        detector: LandmarkDetector,
        max_angle_deg: float = 10.0,
        face_counter: FaceCounter | Literal["default"] | None = "default",
    ) -> None:
        if not max_angle_deg > 0:
            raise ValueError(f"gate.max_angle_deg must be positive, got {max_angle_deg}")
        self.detector = detector
        self.max_angle_deg = float(max_angle_deg)
        self.face_counter = FaceCounter() if face_counter == "default" else face_counter

    def count_faces(self, color_rgb: np.ndarray, landmark_faces: list[FaceDetection]) -> int:
        """Distinct faces seen by the landmark model or the face counter."""
        if self.face_counter is None:
            return len(landmark_faces)
        boxes = self.face_counter.find(color_rgb)
        extra = [b for b in boxes if all(b.overlap(f.box) < SAME_FACE_OVERLAP for f in landmark_faces)]
        return len(landmark_faces) + len(extra)  # the counter's boxes are already one per face

    def close(self) -> None:
        """Release the landmark detector and the face counter (both safe to close twice)."""
        self.detector.close()
        if self.face_counter is not None:
            self.face_counter.close()

    def __call__(self, color_rgb: np.ndarray, intrinsics: CameraIntrinsics | None = None) -> GateDecision:
        from src.geometry.pose import estimate_pose_2d

        faces = self.detector.detect(color_rgb)
        count = len(faces) if len(faces) > 1 else self.count_faces(color_rgb, faces)
        if count > 1:  # also when the landmark model saw none of them (a group of small faces)
            return GateDecision(MULTIPLE_FACES, faces[0] if faces else None, num_faces=count)
        if not faces:
            return GateDecision(NO_FACE, num_faces=count)
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
