"""Adapters for detectors whose weights users bring themselves: face_alignment (FAN) and dlib.

Neither package nor its weights can be installed here, so these adapters load lazily and fail with one clear
message; they return the same FaceDetection as every other backend (pupils by the gradient eye-centre
locator, as the original did).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from src.landmarks.detectors.base import (
    FaceDetection,
    LandmarkDetector,
    box_around,
    check_rgb_image,
    sort_largest_first,
)
from src.landmarks.eye_centre import add_pupils


class FaceAlignmentDetector(LandmarkDetector):
    """2D-FAN from `pip install face-alignment` (weights come from its own cache or first-use download)."""

    name = "face_alignment"

    def __init__(self, device: str = "cpu", face_detector: str = "sfd") -> None:
        try:
            import face_alignment
        except ImportError:
            raise ImportError("landmark detector 'face_alignment' needs `pip install face-alignment`") from None
        landmarks_type = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
        self._model = face_alignment.FaceAlignment(landmarks_type, device=device, face_detector=face_detector)

    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        image = check_rgb_image(image_rgb, "FaceAlignmentDetector.detect")
        found = self._model.get_landmarks_from_image(image, return_landmark_score=True)
        landmarks, scores = (found[0], found[1]) if found and found[0] is not None else ([], [])
        detections = []
        for points, point_scores in zip(landmarks, scores):
            points70 = add_pupils(image, np.asarray(points)[:, :2])
            detections.append(FaceDetection(points70, box_around(points70), float(np.mean(point_scores))))
        return sort_largest_first(detections)


class DlibDetector(LandmarkDetector):
    """dlib's HOG face detector + 68-point shape predictor (`shape_predictor_68_face_landmarks.dat`)."""

    name = "dlib"

    def __init__(self, predictor_path: str | os.PathLike, upsample: int = 1) -> None:
        path = Path(predictor_path)
        if not path.is_file():
            raise FileNotFoundError(f"dlib shape predictor not found: {path} (set landmarks.predictor_path)")
        try:
            import dlib
        except ImportError:
            raise ImportError("landmark detector 'dlib' needs `pip install dlib`") from None
        self._faces = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self._upsample = int(upsample)

    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        image = check_rgb_image(image_rgb, "DlibDetector.detect")
        rects, scores, _ = self._faces.run(image, self._upsample, 0.0)
        detections = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(image, rect)
            points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], dtype=np.float64)
            box = (rect.left(), rect.top(), rect.width(), rect.height())
            # dlib's HOG score is an SVM margin; the logistic maps it into [0, 1] for a comparable score.
            detections.append(FaceDetection(add_pupils(image, points), box, 1.0 / (1.0 + np.exp(-score))))
        return sort_largest_first(detections)
