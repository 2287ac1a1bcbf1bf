"""The per-frame steps of faces2one on position maps in frame pixels: texture remap into UV, z-buffer render of a
UV texture onto another position map's surface, mask erosion and Poisson blending, temporal smoothing of vertices,
exposure adjustment, and PRNet's crop tracking.

A position map here is (P,P,3) float32 in the frame's pixels (x right, y down, z towards the camera); its surface is
the grid mesh of the UV face mask (src.geometry.uv.uv_grid_triangles), as PRNet's own renderer draws it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from src.geometry.rasterizer import interpolate, rasterize
from src.geometry.unwrap import unwrap_position_map
from src.geometry.uv import sample_image, uv_grid_triangles
from src.models.components.prnet_crop import crop_to_frame, frame_to_crop, landmark_box, prnet_crop_box
from src.models.components.prnet_uv import UVData


@dataclass(frozen=True)
class UVSurface:
    """The UV face mask's grid mesh: triangles over flat texel indices and each texel's (col, row)."""

    uv: UVData
    triangles: np.ndarray
    texel_xy: np.ndarray

    @classmethod
    def from_uv(cls, uv: UVData) -> UVSurface:
        size = uv.size
        cols, rows = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
        return cls(uv, uv_grid_triangles(uv.face_mask), np.stack([cols.ravel(), rows.ravel()], 1))

    def keypoints(self, position_map: np.ndarray) -> np.ndarray:
        """(68, 2) x, y of the keypoints of a position map."""
        return position_map.reshape(-1, 3)[self.uv.keypoint_flat, :2]

    def face_size(self, position_map: np.ndarray) -> float:
        """sqrt(width x height) of the keypoints' box."""
        x0, y0, x1, y1 = landmark_box(self.keypoints(position_map))
        return float(np.sqrt(max(x1 - x0, 1e-3) * max(y1 - y0, 1e-3)))


def take_texture(frame: np.ndarray, position_map: np.ndarray, surface: UVSurface) -> tuple[np.ndarray, np.ndarray]:
    """UV texture (P,P,3) uint8 of `frame` at the position map's x, y and its visible texels; hidden face texels
    are filled from their visible neighbours (cv2.inpaint) so the far cheek of a turned head is not the near one."""
    texture, visible = unwrap_position_map(frame, position_map, surface.uv.face_mask)
    hidden = surface.uv.face_mask & ~visible
    if hidden.any() and visible.any():
        texture = cv2.inpaint(texture, hidden.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return texture, visible


def render_texture(
    texture: np.ndarray, position_map: np.ndarray, surface: UVSurface, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The UV texture drawn on the position map's surface (nearest surface wins: z-buffer), rasterised only over
    the surface's bounding box. Returns (image (h,w,3) uint8, covered (h,w) bool, (x0, y0) of the box)."""
    points = position_map.reshape(-1, 3)
    used = points[np.unique(surface.triangles)]
    x0 = int(np.clip(np.floor(used[:, 0].min()), 0, width - 1))
    y0 = int(np.clip(np.floor(used[:, 1].min()), 0, height - 1))
    x1 = int(np.clip(np.ceil(used[:, 0].max()), x0, width - 1))
    y1 = int(np.clip(np.ceil(used[:, 1].max()), y0, height - 1))
    w, h = x1 - x0 + 1, y1 - y0 + 1
    screen = np.stack([points[:, 0] - x0, points[:, 1] - y0, -points[:, 2]], 1)
    fragments = rasterize(screen, surface.triangles, w, h, perspective=False, cull_backfaces=False)
    texels = interpolate(fragments, surface.triangles, surface.texel_xy)
    colours = sample_image(texture, texels[:, 0], texels[:, 1])
    image = fragments.scatter(colours, 0, np.uint8)
    covered = fragments.scatter(np.ones(len(fragments.pixel), bool), False, bool)
    return image, covered, (x0, y0)


def blend(
    kept: np.ndarray,
    rendered: np.ndarray,
    covered: np.ndarray,
    origin: tuple[int, int],
    erosion_px: int,
    poisson: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste the render into the kept frame inside its eroded mask, then Poisson-blend it (cv2.seamlessClone,
    NORMAL_CLONE) so its colours meet the kept frame's at the seam. Returns (frame, the frame-size mask used)."""
    height, width = kept.shape[:2]
    x0, y0 = origin
    h, w = covered.shape
    mask = np.zeros((height, width), np.uint8)
    mask[y0 : y0 + h, x0 : x0 + w] = covered
    if erosion_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erosion_px + 1, 2 * erosion_px + 1))
        mask = cv2.erode(mask, kernel)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0  # seamlessClone needs a margin
    if not mask.any():
        return kept.copy(), mask.astype(bool)
    composite = kept.copy()
    region = composite[y0 : y0 + h, x0 : x0 + w]
    inside = mask[y0 : y0 + h, x0 : x0 + w] > 0
    region[inside] = rendered[inside]
    if not poisson:
        return composite, mask > 0
    bx, by, bw, bh = cv2.boundingRect(mask)
    centre = (bx + bw // 2, by + bh // 2)
    out = cv2.seamlessClone(
        np.ascontiguousarray(composite[..., ::-1]), np.ascontiguousarray(kept[..., ::-1]), mask * 255, centre,
        cv2.NORMAL_CLONE,
    )  # fmt: skip
    inside_all = mask > 0
    result = kept.copy()  # seamlessClone also retouches a rim around the mask: keep the kept frame there
    result[inside_all] = out[..., ::-1][inside_all]
    return result, inside_all


class VertexSmoother:
    """Causal exponentially weighted mean of the last `window` position maps (weights decay^0, decay^1, ...):
    vertices jitter less from frame to frame. window 1 = no smoothing."""

    def __init__(self, window: int = 3, decay: float = 0.5) -> None:
        if window < 1 or not 0.0 < decay <= 1.0:
            raise ValueError(f"smoothing window must be >= 1 and decay in (0, 1], got {window}, {decay}")
        self.weights = decay ** np.arange(window, dtype=np.float32)
        self.history: deque[np.ndarray] = deque(maxlen=window)

    def reset(self) -> None:
        self.history.clear()

    def __call__(self, position_map: np.ndarray) -> np.ndarray:
        self.history.appendleft(position_map)
        weights = self.weights[: len(self.history)]
        total = np.zeros_like(position_map)
        for weight, past in zip(weights, self.history):
            total += weight * past
        return total / weights.sum()


def exposure_adjusted(frame: np.ndarray, target: float = 0.45, darkest_gamma: float = 0.35) -> np.ndarray:
    """A dark frame brightened by a gamma that maps its mean luminance to `target` (the original's optional exposure
    adjustment, which helps detection in dark frames); frames already brighter are returned unchanged."""
    luma = float(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).mean()) / 255.0
    if luma >= target or luma <= 0.0:
        return frame
    gamma = max(np.log(target) / np.log(max(luma, 1e-3)), darkest_gamma)
    table = np.round(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return cv2.LUT(frame, table)


class CropTracker:
    """Where to crop each frame of one video: a face detector on the first frame, every `redetect_every` frames and
    after losing the face; in between, PRNet's crop rule on the keypoints predicted for the previous frame."""

    def __init__(self, detector, size: int, redetect_every: int = 10) -> None:
        self.detector = detector
        self.size = size
        self.redetect_every = max(1, int(redetect_every))
        self.box: tuple[float, float, float] | None = None
        self.since_detection = 0
        self.detections = 0

    def crop_box(self, frame: np.ndarray) -> tuple[float, float, float] | None:
        """(x0, y0, side) for this frame, or None when no face is known (the frame passes through)."""
        if self.box is None or self.since_detection >= self.redetect_every:
            found = self.detector.detect(frame)
            self.detections += 1
            self.since_detection = 0
            if found:
                self.box = prnet_crop_box(landmark_box(found[0].landmarks))
            # else: keep the previous valid box (the original's retry on the previous valid frame), or None
        return self.box

    def crop(self, frame: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
        matrix = frame_to_crop(*box, self.size)
        size = (self.size, self.size)
        return cv2.warpAffine(frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def update(self, crop_map: np.ndarray, box: tuple[float, float, float], surface: UVSurface) -> np.ndarray | None:
        """The crop's position map in frame pixels, and the next frame's crop from its keypoints; None (and the
        face forgotten) when the keypoints do not look like a face of this crop's size."""
        frame_map = crop_to_frame(crop_map, *box)
        keypoints = surface.keypoints(frame_map)
        next_box = prnet_crop_box(landmark_box(keypoints))
        self.since_detection += 1
        if not 0.5 < next_box[2] / box[2] < 2.0 or not np.isfinite(keypoints).all():
            self.box = None
            return None
        self.box = next_box
        return frame_map
