"""Head2Head's eye-gaze image, drawn the original's way from 70 landmarks (or its 14-row eye-only files).

Black canvas; each eye's closed 6-point lid outline as white 2x2-pixel dots along the straight segments between
consecutive points; each pupil a filled red disc whose radius is a quarter of the sum of the two upper-to-lower lid
distances (points 1-5 and 2-4 of the eye), so a closing eye shrinks its pupil to nothing, as in the original.
The converter, the FaceWorld Head2Head writer and the datamodules all draw through `draw_eye_image`, so the image the
model is conditioned on is the same for real, synthetic and released data (which ships no eye images).
"""

from __future__ import annotations

import cv2
import numpy as np

from src.landmarks.scheme import EYE_LEFT, EYE_RIGHT, NUM_LANDMARKS, PUPIL_LEFT, PUPIL_RIGHT

# Rows of the 14-row files the original's reenactment writes (source_landmarks70): 36-41, 42-47, pupil 68, pupil 69.
EYE_ROWS_70 = (*EYE_RIGHT, *EYE_LEFT, PUPIL_RIGHT, PUPIL_LEFT)


def eye_landmarks(landmarks: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """([right lid (6,2), left lid (6,2)], [right pupil (2,), left pupil (2,)]) from 70 or 14 rows."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) not in (NUM_LANDMARKS, len(EYE_ROWS_70)):
        raise ValueError(f"eye landmarks: expected (70, 2) or (14, 2) points, got shape {points.shape}")
    if len(points) == NUM_LANDMARKS:
        points = points[list(EYE_ROWS_70)]
    return [points[0:6], points[6:12]], [points[12], points[13]]


def pupil_radius(lid: np.ndarray) -> float:
    """A quarter of the summed upper-to-lower lid distances (points 1-5 and 2-4 of the 6-point outline)."""
    return float((np.linalg.norm(lid[1] - lid[5]) + np.linalg.norm(lid[2] - lid[4])) / 4.0)


def _dots_along(image: np.ndarray, start: np.ndarray, stop: np.ndarray) -> None:
    """White 2x2 dots at every pixel step along the segment start -> stop (inclusive)."""
    steps = int(np.ceil(np.abs(stop - start).max())) + 1
    xy = np.round(np.linspace(start, stop, steps)).astype(np.int64)
    height, width = image.shape[:2]
    for dx in (0, 1):
        for dy in (0, 1):
            x, y = xy[:, 0] + dx, xy[:, 1] + dy
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            image[y[inside], x[inside]] = 255


def draw_eye_image(landmarks: np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB eye-gaze image of one frame (see the module docstring)."""
    height = width if height is None else height
    image = np.zeros((height, width, 3), np.uint8)
    lids, pupils = eye_landmarks(landmarks)
    for lid in lids:
        for k in range(6):
            _dots_along(image, lid[k], lid[(k + 1) % 6])
    for lid, pupil in zip(lids, pupils):
        radius = round(pupil_radius(lid))
        if radius > 0 and np.all(np.isfinite(pupil)):
            centre = tuple(int(v) for v in np.round(pupil))
            cv2.circle(image, centre, radius, (255, 0, 0), thickness=-1, lineType=cv2.LINE_8)
    return image
