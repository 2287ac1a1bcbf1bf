"""Rasterise 70 landmarks into the one-channel feature image the RGBD generator takes as input.

Faithful to the original: black background, lines of value 255, no antialiasing, thickness 4 at
512 px, lines between consecutive points of each contour, closed loops for eyes and lips, pupils
as circles of radius 2. At other sizes the thickness and radius scale with the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.landmarks.scheme import CLOSED_CONTOURS, NUM_LANDMARKS, OPEN_CONTOURS, PUPILS

REFERENCE_SIZE = 512
REFERENCE_THICKNESS = 4
REFERENCE_PUPIL_RADIUS = 2


def check_landmarks(landmarks: np.ndarray, name: str = "landmarks") -> np.ndarray:
    """Return landmarks as a (70, 2) float array, or raise one clear error."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] != NUM_LANDMARKS or pts.shape[1] < 2:
        raise ValueError(f"{name}: expected shape ({NUM_LANDMARKS}, 2), got {tuple(pts.shape)}")
    if not np.all(np.isfinite(pts[:, :2])):
        raise ValueError(f"{name}: contains NaN or infinite coordinates")
    return pts[:, :2]


def draw_feature_image(
    landmarks: np.ndarray,
    size: int | tuple[int, int] = REFERENCE_SIZE,
    thickness: int | None = None,
    pupil_radius: int | None = None,
) -> np.ndarray:
    """Draw the landmark feature image (uint8, HxW, 0 background, 255 lines).

    `size` is an int (square) or (height, width). Thickness and pupil radius default to the
    original's values scaled by width / 512 (at least 1 px).
    """
    pts = check_landmarks(landmarks)
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0:
        raise ValueError(f"feature image size must be positive, got {height}x{width}")
    scale = width / REFERENCE_SIZE
    if thickness is None:
        thickness = max(1, round(REFERENCE_THICKNESS * scale))
    if pupil_radius is None:
        pupil_radius = max(1, round(REFERENCE_PUPIL_RADIUS * scale))
    image = np.zeros((height, width), dtype=np.uint8)
    ipts = np.round(pts).astype(np.int32)
    for contour in OPEN_CONTOURS:
        cv2.polylines(image, [ipts[list(contour)]], False, 255, thickness, lineType=cv2.LINE_8)
    for contour in CLOSED_CONTOURS:
        cv2.polylines(image, [ipts[list(contour)]], True, 255, thickness, lineType=cv2.LINE_8)
    for index in PUPILS:
        x, y = ipts[index]
        cv2.circle(image, (int(x), int(y)), pupil_radius, 255, thickness, lineType=cv2.LINE_8)
    return image
