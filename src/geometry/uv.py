"""UV-space geometry shared by FaceWorld and real data: UV rasterisation, face masks, keypoints, position maps.

Conventions (PRNet's): a UV map of size S covers the UV box (u0, u1, v0, v1) of a mesh's texture coordinates;
texel (row, col) has its centre at u = u0 + (col + 0.5) / S * (u1 - u0), v = v0 + (row + 0.5) / S * (v1 - v0)
(v grows downwards, like image rows). A position map is an (S,S,3) float32 UV map of 3D positions in image
coordinates: x, y in pixels (centres at integers) and z in pixels towards the camera; PRNet's uv_kpt_ind are the
(row, col) texels of the 68 landmarks (stored by PRNet as two lines: columns, then rows).

Everything here takes numpy arrays (vertices, triangles, UV coordinates, cameras of src.geometry.camera) and
returns arrays, so a fitted 3DMM on real video and FaceWorld's procedural mesh go through the same code.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.rasterizer import Fragments, interpolate, rasterize

UVBox = tuple[float, float, float, float]
FULL_UV_BOX: UVBox = (0.0, 1.0, 0.0, 1.0)
Camera = PinholeCamera | OrthographicCamera


def _check_box(box: UVBox) -> tuple[float, float, float, float]:
    u0, u1, v0, v1 = (float(v) for v in box)
    if not (u1 > u0 and v1 > v0):
        raise ValueError(f"UV box (u0, u1, v0, v1) must have u1 > u0 and v1 > v0, got {box}")
    return u0, u1, v0, v1


def _check_size(size: int) -> int:
    if int(size) < 2:
        raise ValueError(f"UV map size must be >= 2, got {size}")
    return int(size)


def uv_to_texels(uv: np.ndarray, size: int, box: UVBox = FULL_UV_BOX) -> np.ndarray:
    """(N,2) UV coordinates -> (N,2) float texel coordinates (column x, row y), texel centres at integers."""
    u0, u1, v0, v1 = _check_box(box)
    size = _check_size(size)
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([(uv[:, 0] - u0) / (u1 - u0) * size - 0.5, (uv[:, 1] - v0) / (v1 - v0) * size - 0.5], axis=1)


def texel_centers_uv(size: int, box: UVBox = FULL_UV_BOX) -> tuple[np.ndarray, np.ndarray]:
    """(S,S) arrays U, V of every texel centre's UV coordinates (for region predicates defined in UV)."""
    u0, u1, v0, v1 = _check_box(box)
    c = (np.arange(_check_size(size)) + 0.5) / size
    return np.meshgrid(u0 + c * (u1 - u0), v0 + c * (v1 - v0))


def resample_uv_box(uv_map: np.ndarray, box: UVBox, size: int) -> np.ndarray:
    """A map over the full UV square (S,S[,C]) resampled to the UV box at size x size (bilinear at texel centres,
    borders replicated): e.g. a 3DMM's texture or FaceWorld's albedo in a position map's UV box."""
    uv_map = np.asarray(uv_map)
    if uv_map.ndim not in (2, 3) or uv_map.shape[0] != uv_map.shape[1]:
        raise ValueError(f"uv_map must be a square (S,S[,C]) map, got shape {uv_map.shape}")
    full = uv_map.shape[0]
    U, V = texel_centers_uv(size, box)
    mx, my = (U * full - 0.5).astype(np.float32), (V * full - 0.5).astype(np.float32)
    return cv2.remap(uv_map, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def rasterize_uv(uv: np.ndarray, triangles: np.ndarray, size: int, box: UVBox = FULL_UV_BOX) -> Fragments:
    """The mesh drawn in UV space: one fragment per covered texel, with the triangle and barycentrics that map
    the texel back onto the mesh (both windings kept: UV charts may be mirrored)."""
    texels = uv_to_texels(uv, size, box)
    screen = np.concatenate([texels, np.ones((len(texels), 1))], axis=1)
    return rasterize(screen, np.asarray(triangles), size, size, perspective=False, cull_backfaces=False)


def uv_coverage_mask(fragments: Fragments) -> np.ndarray:
    """(S,S) bool: the texels a UV rasterisation covers."""
    return fragments.scatter(np.ones(len(fragments.pixel), bool), False, bool)


def interpolate_to_uv(
    fragments: Fragments, triangles: np.ndarray, vertex_values: np.ndarray, fill: float = 0.0
) -> np.ndarray:
    """Per-vertex values (V,) or (V,C) -> (S,S[,C]) float32 UV map (barycentric at each covered texel centre)."""
    values = interpolate(fragments, np.asarray(triangles), vertex_values)
    return fragments.scatter(values.astype(np.float32), fill, np.float32)


def uv_keypoint_indices(keypoint_uv: np.ndarray, face_mask: np.ndarray, box: UVBox = FULL_UV_BOX) -> np.ndarray:
    """(K,2) UV coordinates of keypoints -> (K,2) int (row, col) texels (PRNet's uv_kpt_ind, as row / col).

    Each keypoint takes the texel whose centre is nearest; a keypoint whose texel falls off `face_mask` (jaw points
    sit on the mask's edge) takes the nearest texel ON the mask instead, so every keypoint indexes face data."""
    mask = np.asarray(face_mask, dtype=bool)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"face_mask must be a square (S,S) array, got shape {mask.shape}")
    if not mask.any():
        raise ValueError("face_mask is empty: no texel to put the keypoints on")
    size = mask.shape[0]
    exact = uv_to_texels(keypoint_uv, size, box)[:, ::-1]  # (row, col)
    rc = np.clip(np.round(exact), 0, size - 1).astype(np.int64)
    off = ~mask[rc[:, 0], rc[:, 1]]
    if off.any():
        on_rows, on_cols = np.nonzero(mask)
        for k in np.nonzero(off)[0]:
            nearest = np.argmin((on_rows - exact[k, 0]) ** 2 + (on_cols - exact[k, 1]) ** 2)
            rc[k] = (on_rows[nearest], on_cols[nearest])
    return rc


def image_space_vertices(vertices_world: np.ndarray, camera: Camera, reference_depth_mm: float) -> np.ndarray:
    """(V,3) world mm -> (V,3) image coordinates: x, y in pixels and z in pixels towards the camera, 0 at
    `reference_depth_mm` (e.g. the head centre's depth): z = (reference - z_cam) * pixels per mm at the reference
    (PRNet's position-map z; larger z = nearer the camera)."""
    if not reference_depth_mm > 0 and not camera.is_orthographic:
        raise ValueError(f"reference depth must be positive, got {reference_depth_mm}")
    cam = camera.to_camera(vertices_world)
    screen = camera.project_camera(cam)
    px_per_mm = camera.scale if camera.is_orthographic else camera.fx / reference_depth_mm
    return np.stack([screen[:, 0], screen[:, 1], (reference_depth_mm - cam[:, 2]) * px_per_mm], axis=1)


def position_map(
    vertices_world: np.ndarray,
    triangles: np.ndarray,
    uv: np.ndarray,
    camera: Camera,
    size: int,
    *,
    reference_depth_mm: float,
    box: UVBox = FULL_UV_BOX,
    face_mask: np.ndarray | None = None,
    fragments: Fragments | None = None,
) -> np.ndarray:
    """(S,S,3) float32 PRNet position map of a posed mesh seen by `camera` (see image_space_vertices for the
    units); 0 outside `face_mask` (default: the texels the mesh covers). Pass `fragments` (rasterize_uv of the
    same UV, triangles, size and box) to reuse a cached UV rasterisation."""
    frags = rasterize_uv(uv, triangles, size, box) if fragments is None else fragments
    out = interpolate_to_uv(frags, triangles, image_space_vertices(vertices_world, camera, reference_depth_mm))
    if face_mask is not None:
        out[~np.asarray(face_mask, bool)] = 0.0
    return out


def uv_grid_triangles(face_mask: np.ndarray) -> np.ndarray:
    """(F,3) triangles over the texel grid (two per texel quad, indices row * S + col) whose three texels all lie
    on `face_mask`: the mesh a position map describes (PRNet's triangles.txt, built from the mask)."""
    mask = np.asarray(face_mask, dtype=bool)
    rows, cols = mask.shape
    idx = np.arange(rows * cols).reshape(rows, cols)
    tl, tr, bl, br = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = np.concatenate([np.stack([tl, bl, tr], 1), np.stack([tr, bl, br], 1)])
    return tris[mask.reshape(-1)[tris].all(axis=1)]


def sample_image(image: np.ndarray, x: np.ndarray, y: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """Sample an (H,W[,C]) image at float pixel coordinates (M,) -> (M[,C]) with cv2.remap (bilinear or nearest,
    borders replicated). The points are laid out as a (rows, 1024) map because remap limits each side to 32767."""
    m = len(x)
    cols = 1024
    rows = max(1, -(-m // cols))
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:m], my[:m] = x, y
    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = cv2.remap(image, mx.reshape(rows, cols), my.reshape(rows, cols), mode, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * cols, *out.shape[2:])[:m]
