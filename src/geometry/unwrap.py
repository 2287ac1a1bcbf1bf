"""Texture unwrapping (image -> UV texture) and its inverse (UV texture -> image), with visibility.

Two ways in, both used on real data: through a mesh and a camera (a fitted 3DMM with UV coordinates: DFDN's
texture, faces2one), or through a PRNet position map alone (PRNet's texture editing), where visibility comes from a
z-buffer of the position map's own grid mesh. A texel is visible when its 3D point is not behind the nearest
surface at its pixel (within a tolerance) and lies inside the image; hidden texels are `fill` in the texture and
False in the returned mask. Conventions (UV box, texel centres, position-map units) are those of src.geometry.uv.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.rasterizer import interpolate, rasterize
from src.geometry.uv import (
    FULL_UV_BOX,
    UVBox,
    interpolate_to_uv,
    rasterize_uv,
    sample_image,
    uv_coverage_mask,
    uv_grid_triangles,
    uv_to_texels,
)

Camera = PinholeCamera | OrthographicCamera


def _inside(x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
    return (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)


def _remap(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of `image` at the (S,S) float maps x, y; 0 outside the image."""
    return cv2.remap(
        image, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def _nearer_than_zbuffer(
    depth_image: np.ndarray, drawn: np.ndarray, x: np.ndarray, y: np.ndarray, depth: np.ndarray, tolerance: float
) -> np.ndarray:
    """depth <= z-buffer + tolerance at (x, y), the z-buffer interpolated bilinearly over DRAWN pixels only
    (nearest sampling errs by up to 0.7 px times the depth slope on slanted skin; letting empty pixels in would
    wave through the surface just behind a silhouette). No drawn pixel among the four: not visible."""
    weight = _remap(drawn.astype(np.float32), x, y)
    total = _remap(np.where(drawn, depth_image, 0.0).astype(np.float32), x, y)
    seen = total / np.maximum(weight, 1e-6)
    return (weight > 1e-6) & (depth <= seen + tolerance)


def position_map_visibility(
    position_map: np.ndarray, face_mask: np.ndarray, width: int, height: int, *, tolerance_px: float = 2.0
) -> np.ndarray:
    """(P,P) bool: the texels of `face_mask` whose point is in the (height, width) image and not hidden by another
    part of the position map's surface (z-buffer of its grid mesh, z towards the camera, `tolerance_px` slack)."""
    pos = np.asarray(position_map, dtype=np.float64)
    mask = np.asarray(face_mask, dtype=bool)
    if pos.ndim != 3 or pos.shape[2] != 3 or pos.shape[:2] != mask.shape:
        raise ValueError(f"position_map must be (P,P,3) matching face_mask {mask.shape}, got {pos.shape}")
    screen = np.stack([pos[..., 0].ravel(), pos[..., 1].ravel(), -pos[..., 2].ravel()], axis=1)
    frags = rasterize(screen, uv_grid_triangles(mask), width, height, perspective=False, cull_backfaces=False)
    zbuffer = frags.depth_image(background=0.0)
    drawn = frags.scatter(np.ones(len(frags.pixel), bool), False, bool)
    x, y = pos[..., 0], pos[..., 1]
    return mask & _inside(x, y, width, height) & _nearer_than_zbuffer(zbuffer, drawn, x, y, -pos[..., 2], tolerance_px)


def unwrap_position_map(
    image: np.ndarray,
    position_map: np.ndarray,
    face_mask: np.ndarray,
    *,
    visible: np.ndarray | None = None,
    tolerance_px: float = 2.0,
    fill: float = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Image (H,W[,C]) -> UV texture (P,P[,C]) of the image's dtype, sampled bilinearly at the position map's
    (x, y), and the (P,P) bool mask of visible texels (default: position_map_visibility). Hidden texels = fill."""
    image = np.asarray(image)
    if visible is None:
        visible = position_map_visibility(
            position_map, face_mask, image.shape[1], image.shape[0], tolerance_px=tolerance_px
        )
    texture = _remap(image, position_map[..., 0], position_map[..., 1])
    texture[~visible] = fill
    return texture, visible


def mesh_depth(vertices_world: np.ndarray, triangles: np.ndarray, camera: Camera) -> np.ndarray:
    """(H,W) float32 camera depth (mm) of the nearest front-facing triangle, 0 where nothing is drawn."""
    screen = camera.project_camera(camera.to_camera(vertices_world))
    frags = rasterize(screen, triangles, camera.width, camera.height, perspective=not camera.is_orthographic)
    return frags.depth_image(0.0)


def unwrap_mesh(
    image: np.ndarray,
    vertices_world: np.ndarray,
    triangles: np.ndarray,
    uv: np.ndarray,
    camera: Camera,
    size: int,
    *,
    box: UVBox = FULL_UV_BOX,
    face_mask: np.ndarray | None = None,
    depth_mm: np.ndarray | None = None,
    tolerance_mm: float = 2.0,
    fill: float = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Image (H,W[,C]) -> (S,S[,C]) UV texture through a posed mesh with UV coordinates, and the (S,S) visible mask.

    Each covered texel's 3D point (interpolated in UV, then projected: exact under perspective) samples the image
    bilinearly. Visibility compares the point's camera depth with `depth_mm` (H,W), e.g. a sensor's or a full
    scene's depth with eyes and hair as occluders; by default the mesh's own z-buffer (front faces). A texel whose
    nearest pixel has no depth is hidden (it faces away). `face_mask` (S,S) limits the texels (default: all the
    mesh covers)."""
    image = np.asarray(image)
    triangles = np.asarray(triangles)
    height, width = image.shape[:2]
    if (camera.width, camera.height) != (width, height):
        raise ValueError(f"image is {width}x{height} but the camera is {camera.width}x{camera.height}")
    frags = rasterize_uv(uv, triangles, size, box)
    covered = uv_coverage_mask(frags)
    if face_mask is not None:
        covered &= np.asarray(face_mask, dtype=bool)
    points = interpolate_to_uv(frags, triangles, camera.to_camera(vertices_world)).reshape(-1, 3)
    projected = camera.project_camera(points.astype(np.float64))
    x = projected[:, 0].reshape(size, size)
    y = projected[:, 1].reshape(size, size)
    z = points[:, 2].reshape(size, size)
    if depth_mm is None:
        depth_mm = mesh_depth(vertices_world, triangles, camera)
    elif np.shape(depth_mm) != (height, width):
        raise ValueError(f"depth_mm must be ({height}, {width}), got {np.shape(depth_mm)}")
    depth_mm = np.asarray(depth_mm, dtype=np.float32)
    drawn = depth_mm > 0
    # A texel whose nearest pixel shows nothing faces away (or is off the depth): not visible.
    drawn_there = cv2.remap(drawn.astype(np.uint8), x.astype(np.float32), y.astype(np.float32), cv2.INTER_NEAREST)
    visible = covered & _inside(x, y, width, height) & drawn_there.astype(bool)
    visible &= _nearer_than_zbuffer(depth_mm, drawn, x, y, z, tolerance_mm)
    texture = _remap(image, x, y)
    texture[~visible] = fill
    return texture, visible


def render_uv_texture(
    texture: np.ndarray,
    vertices_world: np.ndarray,
    triangles: np.ndarray,
    uv: np.ndarray,
    camera: Camera,
    *,
    box: UVBox = FULL_UV_BOX,
    nearest: bool = False,
    background: float = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A UV texture (S,S[,C]) drawn onto the posed mesh: the (H,W[,C]) image of the texture's dtype (bilinear, or
    nearest for label maps) and the (H,W) bool mask of covered pixels (front faces, z-buffered)."""
    texture = np.asarray(texture)
    if texture.ndim not in (2, 3) or texture.shape[0] != texture.shape[1]:
        raise ValueError(f"texture must be a square (S,S[,C]) map, got shape {texture.shape}")
    triangles = np.asarray(triangles)
    screen = camera.project_camera(camera.to_camera(vertices_world))
    frags = rasterize(screen, triangles, camera.width, camera.height, perspective=not camera.is_orthographic)
    texels = uv_to_texels(interpolate(frags, triangles, uv), texture.shape[0], box)
    values = sample_image(texture, texels[:, 0], texels[:, 1], nearest=nearest)
    image = frags.scatter(values, background, texture.dtype)
    return image, frags.scatter(np.ones(len(frags.pixel), bool), False, bool)
