"""Gradient-based eye-centre localisation (Timm & Barth, VISAPP 2011), the pupil finder the original used.

The centre c of a dark circular iris is the point whose displacement vectors d_i = (x_i - c) / |x_i - c| to
the strong-gradient pixels x_i best align with the (normalised) gradients g_i there: maximise
mean_i (d_i . g_i)^2, weighted by how dark c is (pupils are dark). We evaluate every candidate of a small,
fixed-size eye patch at once with numpy (patch 40 px wide: ~1e6 pairs, a few ms).
"""

from __future__ import annotations

import cv2
import numpy as np

PATCH_WIDTH = 40


def locate_eye_centre(
    gray: np.ndarray, box: tuple[float, float, float, float], patch_width: int = PATCH_WIDTH
) -> tuple[float, float]:
    """Eye centre (x, y) in `gray` image pixels, searched inside `box` = (x, y, w, h).

    The box is clipped to the image; an empty box raises ValueError naming it.
    """
    height, width = gray.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(width, int(np.ceil(box[0] + box[2]))), min(height, int(np.ceil(box[1] + box[3])))
    if x1 - x0 < 3 or y1 - y0 < 3:
        raise ValueError(f"eye box {tuple(round(v, 1) for v in box)} is empty inside a {width}x{height} image")
    patch = gray[y0:y1, x0:x1].astype(np.float32)
    scale = patch_width / patch.shape[1]
    patch_height = max(3, round(patch.shape[0] * scale))
    patch = cv2.resize(patch, (patch_width, patch_height), interpolation=cv2.INTER_AREA)
    cx, cy = _centre_in_patch(patch)
    # patch pixel centres -> source pixel centres (pixel centres at integers on both sides)
    return x0 + (cx + 0.5) / scale - 0.5, y0 + (cy + 0.5) * (y1 - y0) / patch_height - 0.5


def _centre_in_patch(patch: np.ndarray) -> tuple[float, float]:
    gx = cv2.Sobel(patch, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(patch, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(gx, gy)
    # Keep only strong gradients (the limbus and eyelid edges), as the paper's authors recommend.
    threshold = magnitude.mean() + 0.3 * magnitude.std()
    ys, xs = np.nonzero((magnitude > threshold) & (magnitude > 1e-6))
    h, w = patch.shape
    if xs.size == 0:
        return (w - 1) / 2, (h - 1) / 2
    g = np.stack([gx[ys, xs], gy[ys, xs]], axis=1) / magnitude[ys, xs, None]
    cy_grid, cx_grid = np.mgrid[0:h, 0:w]
    centres = np.stack([cx_grid.ravel(), cy_grid.ravel()], axis=1).astype(np.float32)  # (C, 2)
    d = np.stack([xs, ys], axis=1)[None, :, :].astype(np.float32) - centres[:, None, :]  # (C, N, 2)
    norm = np.linalg.norm(d, axis=2)
    norm[norm == 0] = np.inf  # a gradient pixel says nothing about itself as a centre
    dot = (d[..., 0] * g[None, :, 0] + d[..., 1] * g[None, :, 1]) / norm
    # Gradients point from dark to bright: at the true centre, d and g agree in sign; negative dots are other edges.
    objective = np.mean(np.maximum(dot, 0.0) ** 2, axis=1).reshape(h, w)
    darkness = 255.0 - cv2.GaussianBlur(patch, (5, 5), 0)
    objective *= darkness
    # Ignore the patch border, where the search is cut off and eyelid shadows dominate.
    margin = max(1, min(h, w) // 10)
    inner = objective[margin : h - margin, margin : w - margin]
    iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return float(ix + margin), float(iy + margin)


def eye_search_box(eye_contour: np.ndarray) -> tuple[float, float, float, float]:
    """The box to search a pupil in: the eye contour's box widened to cover a half-closed or misplaced lid."""
    lo, hi = eye_contour.min(axis=0), eye_contour.max(axis=0)
    eye_width = max(float(hi[0] - lo[0]), 1.0)
    centre_y = float(lo[1] + hi[1]) / 2
    return float(lo[0]), centre_y - 0.35 * eye_width, eye_width, 0.7 * eye_width


def add_pupils(image_rgb: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
    """68 iBUG points -> our 70 by locating each pupil inside its eye (for detectors without iris output)."""
    from src.landmarks.scheme import EYE_LEFT, EYE_RIGHT, NUM_IBUG

    points = np.asarray(landmarks68, dtype=np.float64)[:NUM_IBUG]
    if points.shape != (NUM_IBUG, 2):
        raise ValueError(f"add_pupils: expected ({NUM_IBUG}, 2) landmarks, got {points.shape}")
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY) if image_rgb.ndim == 3 else image_rgb
    pupils = [locate_eye_centre(gray, eye_search_box(points[list(eye)])) for eye in (EYE_RIGHT, EYE_LEFT)]
    return np.concatenate([points, np.array(pupils)], axis=0).astype(np.float32)
