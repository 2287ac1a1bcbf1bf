"""mediapipe FaceMesh (with iris refinement) mapped to the 70-point scheme; runs offline (models ship in the wheel)."""

from __future__ import annotations

import logging

import numpy as np

from src.landmarks.detectors.base import (
    FaceDetection,
    LandmarkDetector,
    box_around,
    check_rgb_image,
    sort_largest_first,
)
from src.landmarks.detectors.mediapipe_mapping import mapping_matrix

log = logging.getLogger(__name__)

MESH_POINTS_WITH_IRIS = 478


class MediaPipeDetector(LandmarkDetector):
    """Face mesh -> 70 points via the documented table in mediapipe_mapping.py.

    `static_image_mode=True` (default) detects afresh in every image, so a result depends on that image only:
    the capture gate relies on this to resume deterministically. Tracking mode (False) is faster on video but
    its output depends on the frames before. The legacy FaceMesh graph drops faces below
    `min_detection_confidence` and reports no per-face confidence, so `score` is that threshold: a lower bound.
    """

    name = "mediapipe"

    def __init__(
        self,
        max_num_faces: int = 4,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        static_image_mode: bool = True,
    ) -> None:
        if max_num_faces < 1:
            raise ValueError(f"max_num_faces must be >= 1, got {max_num_faces}")
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as err:
            raise ImportError(f"the mediapipe landmark detector needs `pip install mediapipe` ({err})") from None
        self.min_detection_confidence = float(min_detection_confidence)
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=max_num_faces,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._to70 = mapping_matrix(num_mesh_points=MESH_POINTS_WITH_IRIS)

    def detect_mesh(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """The raw (478, 2) pixel meshes, for callers that want more than 70 points."""
        image = check_rgb_image(image_rgb, "MediaPipeDetector.detect")
        if self._mesh is None:
            raise RuntimeError("MediaPipeDetector: used after close()")
        height, width = image.shape[:2]
        result = self._mesh.process(image)
        meshes = []
        for face in result.multi_face_landmarks or []:
            normalised = np.array([(p.x, p.y) for p in face.landmark], dtype=np.float64)
            if normalised.shape[0] != MESH_POINTS_WITH_IRIS:
                raise RuntimeError(
                    f"mediapipe returned {normalised.shape[0]} mesh points, expected 478 (iris refinement)"
                )
            # mediapipe's normalised coordinates run over pixel edges (0 = left edge of the image); ours put pixel
            # centres at integers, hence the half-pixel shift.
            meshes.append(normalised * (width, height) - 0.5)
        return meshes

    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        detections = []
        for mesh in self.detect_mesh(image_rgb):
            points = (self._to70 @ mesh).astype(np.float32)
            detections.append(FaceDetection(points, box_around(mesh[:468]), self.min_detection_confidence))
        return sort_largest_first(detections)

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
