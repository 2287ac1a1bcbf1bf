"""The landmark detector contract: one image in, every face found out, each as 70 points in our scheme.

Capture (frame gate), conversion and any tool that needs landmarks call detectors only through this
interface, so a backend (mediapipe, the classical OpenCV path, face_alignment or dlib when a user has
their weights) is a config choice (`conf/landmarks/<name>.yaml`), never a code change.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from src.landmarks.scheme import NUM_LANDMARKS


@dataclass(frozen=True)
class FaceDetection:
    """One face: 70 landmarks (68 iBUG + pupils 68/69) in image pixels, a box and a confidence.

    `box` is (x, y, width, height) in pixels; `score` is in [0, 1] (see each detector for its meaning).
    """

    landmarks: np.ndarray  # (70, 2) float32, pixel centres at integers (OpenCV)
    box: tuple[float, float, float, float]
    score: float

    def __post_init__(self) -> None:
        points = np.asarray(self.landmarks, dtype=np.float32)
        if points.shape != (NUM_LANDMARKS, 2):
            raise ValueError(f"FaceDetection.landmarks: expected shape ({NUM_LANDMARKS}, 2), got {points.shape}")
        object.__setattr__(self, "landmarks", points)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "score", float(self.score))


def box_around(points: np.ndarray) -> tuple[float, float, float, float]:
    """The tight (x, y, width, height) box of a point set."""
    lo, hi = np.min(points, axis=0), np.max(points, axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


def check_rgb_image(image_rgb: np.ndarray, who: str) -> np.ndarray:
    """Detectors take HxWx3 uint8 RGB; anything else is a caller bug worth one clear message."""
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{who}: expected an HxWx3 uint8 RGB image, got {image.dtype} array of shape {image.shape}")
    return np.ascontiguousarray(image)


class LandmarkDetector(abc.ABC):
    """Finds faces and their 70 landmarks in an RGB image. Implementations must be deterministic per image."""

    name: str = "detector"

    @abc.abstractmethod
    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        """All faces in `image_rgb` (HxWx3 uint8 RGB), largest first; an empty list when there is none."""

    def close(self) -> None:
        """Release backend resources (graphs, sessions). Safe to call twice."""
        return None

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sort_largest_first(detections: list[FaceDetection]) -> list[FaceDetection]:
    return sorted(detections, key=lambda d: -d.box[2] * d.box[3])


# Short names -> "module:Class". Users add their own backend by giving a full "package.module:Class" (or a
# Hydra `_target_` config) without touching this table.
DETECTORS: dict[str, str] = {
    "mediapipe": "src.landmarks.detectors.mediapipe:MediaPipeDetector",
    "classical": "src.landmarks.detectors.classical:ClassicalDetector",
    "face_alignment": "src.landmarks.detectors.external:FaceAlignmentDetector",
    "dlib": "src.landmarks.detectors.external:DlibDetector",
}


def build_detector(name: str, **kwargs: Any) -> LandmarkDetector:
    """Instantiate a detector by short name (see DETECTORS) or by "package.module:Class"."""
    target = DETECTORS.get(name, name)
    if ":" not in target:
        raise ValueError(
            f"unknown landmark detector {name!r}: use one of {sorted(DETECTORS)} or 'package.module:Class'"
        )
    module_name, class_name = target.split(":", 1)
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if cls is None:
        raise ValueError(f"landmark detector {name!r}: {module_name} has no class {class_name!r}")
    detector = cls(**kwargs)
    if not isinstance(detector, LandmarkDetector):
        raise TypeError(f"landmark detector {name!r}: {target} is not a LandmarkDetector")
    return detector
