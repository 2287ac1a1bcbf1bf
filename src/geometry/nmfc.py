"""NMFC images (Head2Head's normalised mean face coordinates) for any mesh seen by any camera.

Each vertex is coloured by its position on the model's MEAN shape, normalised to [0, 1] per axis, so a colour
names a point of the face whatever the identity, expression or pose. Head2Head's preprocessing fits a 3DMM to
each video frame with an orthographic camera and renders the fitted mesh with these colours; FaceWorld renders
its frames the same way. Both call `render_nmfc`.
"""

from __future__ import annotations

import numpy as np

from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.rasterizer import interpolate, rasterize

Camera = PinholeCamera | OrthographicCamera


def nmfc_vertex_colors(mean_vertices: np.ndarray) -> np.ndarray:
    """(V,3) mean-shape vertices -> (V,3) float32 colours in [0, 1]: each axis min-max normalised."""
    mean = np.asarray(mean_vertices, dtype=np.float64)
    if mean.ndim != 2 or mean.shape[1] != 3 or len(mean) < 2:
        raise ValueError(f"mean_vertices must have shape (V>=2, 3), got {mean.shape}")
    lo, hi = mean.min(0), mean.max(0)
    return ((mean - lo) / np.maximum(hi - lo, 1e-9)).astype(np.float32)


def render_nmfc(
    vertices_world: np.ndarray, triangles: np.ndarray, vertex_colors: np.ndarray, camera: Camera
) -> np.ndarray:
    """(H,W,3) uint8 NMFC image: the posed mesh (world mm) rasterised by `camera` with its per-vertex colours in
    [0, 1] interpolated (perspective-correct for a pinhole camera), 0 where no triangle is drawn."""
    vertices_world = np.asarray(vertices_world, dtype=np.float64)
    colors = np.asarray(vertex_colors)
    if colors.shape != vertices_world.shape:
        raise ValueError(f"vertex_colors {colors.shape} must match vertices {vertices_world.shape}")
    screen = camera.project_camera(camera.to_camera(vertices_world))
    frags = rasterize(screen, triangles, camera.width, camera.height, perspective=not camera.is_orthographic)
    values = interpolate(frags, np.asarray(triangles), colors)
    return frags.scatter(np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8), 0, np.uint8)


def orthographic_camera_from_misc(
    scale: float, rotation: np.ndarray, translation: np.ndarray, width: int, height: int
) -> OrthographicCamera:
    """The orthographic camera of a fitted frame given as Head2Head's misc values: a model-space point X (mm)
    lands at pixel scale * (R @ X)[:2] + translation[:2]; translation[2] is the depth of the model origin."""
    t = np.asarray(translation, dtype=np.float64).reshape(-1)
    if t.shape != (3,):
        raise ValueError(f"translation must have 3 values, got shape {t.shape}")
    return OrthographicCamera(
        scale=float(scale),
        cx=float(t[0]),
        cy=float(t[1]),
        width=int(width),
        height=int(height),
        rotation=np.asarray(rotation, dtype=np.float64),
        translation=np.array([0.0, 0.0, t[2]]),
    )
