"""Face-region masks in image space: from 68 iBUG landmarks (any detector), from per-vertex labels of a mesh, from
a UV label map, or from a position map's face mask.

Landmark regions (iBUG 68 indices; "right" is the subject's right, image left for a frontal face):
    face            jaw line 0-16 closed along the brows 26-17 (no forehead: landmarks stop at the brows)
    eye_right 36-41, eye_left 42-47, eyes (both)
    brows           the brow polylines 17-21 and 22-26 drawn with a thickness of `brow_thickness` x eye width
    nose            bridge top 27 down to the nostrils 31-35
    mouth           outer lip contour 48-59 (lips and what is between them)
    mouth_interior  inner lip contour 60-67
    lips            mouth minus mouth_interior
    skin            face minus eyes, brows and mouth
Polygons are filled with cv2.fillPoly at 1/16-pixel precision (pixel centres at integer coordinates): a region is
the pixels whose centre lies inside plus the pixels its edges pass through (a rim of at most one pixel), which
suits masks that must not miss the region's border.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.rasterizer import rasterize
from src.geometry.uv import uv_grid_triangles

Camera = PinholeCamera | OrthographicCamera
LANDMARK_REGIONS = (
    "face",
    "skin",
    "brows",
    "eyes",
    "eye_right",
    "eye_left",
    "nose",
    "mouth",
    "lips",
    "mouth_interior",
)
_JAW = list(range(0, 17))
_BROW_RIGHT = list(range(17, 22))
_BROW_LEFT = list(range(22, 27))
_NOSE = [27, 31, 32, 33, 34, 35]
_EYE_RIGHT = list(range(36, 42))
_EYE_LEFT = list(range(42, 48))
_MOUTH_OUTER = list(range(48, 60))
_MOUTH_INNER = list(range(60, 68))
_SHIFT = 4  # cv2 fixed-point bits: polygon corners at 1/16 pixel


def _fill(points: np.ndarray, height: int, width: int) -> np.ndarray:
    canvas = np.zeros((height, width), np.uint8)
    # fillPoly's fixed-point grid has pixel centres at integers, like the rest of the project.
    corners = np.round(np.asarray(points, np.float64) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [corners], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


def _polyline(points: np.ndarray, height: int, width: int, thickness: int) -> np.ndarray:
    canvas = np.zeros((height, width), np.uint8)
    corners = np.round(np.asarray(points, np.float64) * (1 << _SHIFT)).astype(np.int32)
    cv2.polylines(canvas, [corners], False, 1, thickness=thickness, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


def landmark_region_masks(
    landmarks: np.ndarray,
    height: int,
    width: int,
    regions: tuple[str, ...] = LANDMARK_REGIONS,
    *,
    brow_thickness: float = 0.3,
) -> dict[str, np.ndarray]:
    """{region: (H,W) bool} for the requested regions (module docstring) from (68+,2) pixel landmarks (x, y)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 68 or pts.shape[1] < 2:
        raise ValueError(f"landmarks must have shape (68+, 2) in the iBUG order, got {pts.shape}")
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    unknown = sorted(set(regions) - set(LANDMARK_REGIONS))
    if unknown:
        raise ValueError(f"unknown region {unknown[0]!r}; known: {', '.join(LANDMARK_REGIONS)}")
    pts = pts[:68, :2]
    h, w = int(height), int(width)
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name in cache:
            return cache[name]
        if name == "face":
            mask = _fill(pts[_JAW + _BROW_LEFT[::-1] + _BROW_RIGHT[::-1]], h, w)
        elif name == "eye_right":
            mask = _fill(pts[_EYE_RIGHT], h, w)
        elif name == "eye_left":
            mask = _fill(pts[_EYE_LEFT], h, w)
        elif name == "eyes":
            mask = get("eye_right") | get("eye_left")
        elif name == "brows":
            eye_width = 0.5 * (np.linalg.norm(pts[39] - pts[36]) + np.linalg.norm(pts[45] - pts[42]))
            thickness = max(1, round(float(brow_thickness * eye_width)))
            mask = _polyline(pts[_BROW_RIGHT], h, w, thickness) | _polyline(pts[_BROW_LEFT], h, w, thickness)
        elif name == "nose":
            mask = _fill(pts[_NOSE], h, w)
        elif name == "mouth":
            mask = _fill(pts[_MOUTH_OUTER], h, w)
        elif name == "mouth_interior":
            mask = _fill(pts[_MOUTH_INNER], h, w)
        elif name == "lips":
            mask = get("mouth") & ~get("mouth_interior")
        else:  # skin
            mask = get("face") & ~get("eyes") & ~get("brows") & ~get("mouth")
        cache[name] = mask
        return mask

    return {name: get(name) for name in regions}


def render_vertex_labels(
    vertices_world: np.ndarray, triangles: np.ndarray, vertex_labels: np.ndarray, camera: Camera, background: int = 0
) -> np.ndarray:
    """(H,W) int32 label image of a posed mesh with integer labels per vertex (e.g. a 3DMM's segmentation): each
    visible pixel takes the label of its triangle's corner with the largest barycentric weight (no blending)."""
    labels = np.asarray(vertex_labels)
    vertices_world = np.asarray(vertices_world, dtype=np.float64)
    if labels.shape != (len(vertices_world),):
        raise ValueError(f"vertex_labels must have shape ({len(vertices_world)},), got {labels.shape}")
    triangles = np.asarray(triangles)
    screen = camera.project_camera(camera.to_camera(vertices_world))
    frags = rasterize(screen, triangles, camera.width, camera.height, perspective=not camera.is_orthographic)
    corner = np.argmax(frags.bary, axis=1)
    nearest_vertex = triangles[frags.triangle, corner]
    return frags.scatter(labels[nearest_vertex].astype(np.int32), background, np.int32)


def position_map_footprint(position_map: np.ndarray, face_mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H,W) bool: the image pixels the face mask's surface covers, from a position map's x, y (the face region
    of a PRNet prediction, e.g. where faces2one pastes a transferred texture)."""
    pos = np.asarray(position_map, dtype=np.float64)
    mask = np.asarray(face_mask, dtype=bool)
    if pos.ndim != 3 or pos.shape[2] < 2 or pos.shape[:2] != mask.shape:
        raise ValueError(f"position_map must be (P,P,3) matching face_mask {mask.shape}, got {pos.shape}")
    count = mask.size
    screen = np.concatenate([pos[..., :2].reshape(count, 2), np.full((count, 1), 1000.0)], axis=1)
    frags = rasterize(screen, uv_grid_triangles(mask), width, height, perspective=False, cull_backfaces=False)
    return frags.scatter(np.ones(len(frags.pixel), bool), False, bool)
