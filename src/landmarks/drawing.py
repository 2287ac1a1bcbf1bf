"""Landmark rasterisers: the RGBD feature image (70 points) and DG's landmark drawing (68 points, half faces).

The RGBD feature image (draw_feature_image):

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


# ---------------------------------------------------------------------------------------------------- DG
# The landmark drawing of DG (dual-generator reenactment, demo.py `show_map`): white 1-px-wide-at-256 scaled lines on
# black, 68 iBUG points, coordinates truncated to integers as `int(x * 256)` does. Each entry is (first, last,
# closed): a chain first..last, closed with a last->first segment when `closed`; a (a, b, False) pair with b < a
# or b not a neighbour is one segment. At large yaw (the eyes closer than 30 px at 256) only the visible half is
# drawn, as the original does.
DG_REFERENCE_SIZE = 256
DG_REFERENCE_THICKNESS = 2  # demo.py; the training utilities used 1 (core_IDSG) or 3 (core)
DG_HALF_FACE_GAP = 30.0  # px at 256
DG_FULL_FACE: tuple[tuple[int, int, bool], ...] = (
    (0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False), (31, 35, False),
    (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True),
)  # fmt: skip
# Face turned so that the nose tip is right of the left eye's inner corner (x30 > x42): the image-left half.
DG_LEFT_HALF: tuple[tuple[int, int, bool], ...] = (
    (0, 12, False), (17, 21, False), (27, 30, False), (31, 33, False), (36, 41, True), (48, 51, False),
    (60, 62, False), (57, 59, False),
)  # fmt: skip
DG_LEFT_HALF_SEGMENTS: tuple[tuple[int, int], ...] = ((51, 62), (60, 67), (67, 66), (66, 57), (48, 59))
# Nose tip left of point 42 and the right eye foreshortened: the image-right half.
DG_RIGHT_HALF: tuple[tuple[int, int, bool], ...] = (
    (4, 16, False), (22, 26, False), (27, 30, False), (33, 35, False), (42, 47, True), (51, 57, False),
    (62, 66, False),
)  # fmt: skip
DG_RIGHT_HALF_SEGMENTS: tuple[tuple[int, int], ...] = ((51, 62), (66, 57))


HALF_FACE_RULES = ("symmetric", "show_map", "off")


def dg_face_part(points: np.ndarray, size: int, rule: str = "symmetric") -> str:
    """Which drawing DG uses for these 68 points at image side `size`: "full", "left" or "right" (half faces).

    Coordinates are truncated on a 256 canvas (the original's int(x * 256)); the 30 px gap scales with `size`.
    rule "show_map" is demo.py's test bit for bit: left half when x42 - x36 <= 30 and x30 > x42, right half when
    x45 - x39 <= 30 and x30 < x42. Each branch measures the NEAR eye's gap, which stays wide, so on FaceWorld faces
    (and any face filling the crop) neither branch fires even at +-60 degrees of yaw. rule "symmetric" (default)
    measures the FAR eye's gap (x45 - x39 when the nose points right, x42 - x36 when it points left), so the half
    the camera sees is drawn at large yaw either way, as the paper describes. "off": always the full face."""
    if rule not in HALF_FACE_RULES:
        raise ValueError(f"half-face rule must be one of {HALF_FACE_RULES}, got {rule!r}")
    if rule == "off":
        return "full"
    xs = np.trunc(np.asarray(points, dtype=np.float64)[:, 0] * (DG_REFERENCE_SIZE / size)).astype(np.int64)
    nose_right = xs[30] > xs[42]
    nose_left = xs[30] < xs[42]
    if rule == "show_map":
        left_gap, right_gap = xs[42] - xs[36], xs[45] - xs[39]
    else:
        left_gap, right_gap = xs[45] - xs[39], xs[42] - xs[36]
    if left_gap <= DG_HALF_FACE_GAP and nose_right:
        return "left"
    if right_gap <= DG_HALF_FACE_GAP and nose_left:
        return "right"
    return "full"


def dg_segments(points: np.ndarray, size: int, half_face: str = "symmetric") -> list[tuple[int, int]]:
    """The (a, b) point pairs DG joins with a line for these points (see dg_face_part for `half_face`)."""
    part = dg_face_part(points, size, half_face)
    chains, extra = {
        "full": (DG_FULL_FACE, ()),
        "left": (DG_LEFT_HALF, DG_LEFT_HALF_SEGMENTS),
        "right": (DG_RIGHT_HALF, DG_RIGHT_HALF_SEGMENTS),
    }[part]
    pairs: list[tuple[int, int]] = []
    for first, last, closed in chains:
        pairs += [(n, n + 1) for n in range(first, last)]
        if closed:
            pairs.append((first, last))
    return pairs + list(extra)


def draw_dg_landmarks(
    landmarks: np.ndarray, size: int = DG_REFERENCE_SIZE, thickness: int | None = None, half_face: str = "symmetric"
) -> np.ndarray:
    """DG's landmark image (uint8 size x size, 0 background, 255 lines) of 68 (or 70: the first 68 are used)
    points in pixel coordinates of the size x size crop. Thickness defaults to the demo's 2 px at 256, scaled."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 68 or pts.shape[1] < 2:
        raise ValueError(f"landmarks: expected shape (68, 2), got {tuple(pts.shape)}")
    pts = pts[:68, :2]
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks: contains NaN or infinite coordinates")
    if size <= 0:
        raise ValueError(f"landmark image size must be positive, got {size}")
    if thickness is None:
        thickness = max(1, round(DG_REFERENCE_THICKNESS * size / DG_REFERENCE_SIZE))
    ipts = np.trunc(pts).astype(np.int64)  # int(x * 256) in the original: truncation, not rounding
    image = np.zeros((size, size), dtype=np.uint8)
    for a, b in dg_segments(pts, size, half_face):
        cv2.line(image, (int(ipts[a, 0]), int(ipts[a, 1])), (int(ipts[b, 0]), int(ipts[b, 1])), 255, thickness)
    return image
