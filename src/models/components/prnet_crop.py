"""PRNet's face crop, shared by the FaceWorld writer (training crops) and the faces2one app (inference crops), so
a network sees at inference the framing it was trained on.

The crop of a 68-landmark box (x0, y0, x1, y1): a square of side 1.58 x mean(box width, height) (the original's
dlib-box rule) around the box centre, raised by 0.1 x side (the landmark box stops at the brows, the UV face region
covers the forehead). Crop pixel (u, v) of an S x S crop at (x0, y0, side) sees frame pixel
x = x0 + (u + 0.5) side / S - 0.5 (pixel centres at integers); position-map z scales by side / S as well.
"""

from __future__ import annotations

import numpy as np

CROP_SCALE = 1.58
CROP_RAISE = 0.1


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of the first 68 points."""
    pts = np.asarray(points, np.float64)[:68, :2]
    return np.concatenate([pts.min(0), pts.max(0)])


def prnet_crop_box(box: np.ndarray, jitter: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> tuple[float, float, float]:
    """(x0, y0, side) of PRNet's crop of a 68-landmark box; jitter = (dx, dy, scale): centre shifted by (dx, dy) x
    mean(width, height), side x scale (face3d's 300W-LP augmentation)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    mean_extent = 0.5 * ((x1 - x0) + (y1 - y0))
    side = CROP_SCALE * mean_extent * jitter[2]
    cx = 0.5 * (x0 + x1) + jitter[0] * mean_extent
    cy = 0.5 * (y0 + y1) + jitter[1] * mean_extent - CROP_RAISE * side
    return cx - side / 2, cy - side / 2, side


def frame_to_crop(x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """(2,3) affine matrix frame pixel -> crop pixel (cv2.warpAffine convention, pixel centres at integers)."""
    s = size / side
    return np.array([[s, 0.0, s * (0.5 - x0) - 0.5], [0.0, s, s * (0.5 - y0) - 0.5]])


def crop_to_frame(position_map: np.ndarray, x0: float, y0: float, side: float) -> np.ndarray:
    """A position map in crop pixels (P,P,3) -> frame pixels (x, y, and z scaled by side / P)."""
    scale = side / position_map.shape[0]
    out = position_map.astype(np.float32) * np.float32(scale)
    out[..., 0] += np.float32(x0 - 0.5 + 0.5 * scale)
    out[..., 1] += np.float32(y0 - 0.5 + 0.5 * scale)
    return out
