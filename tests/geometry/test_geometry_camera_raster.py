"""Cameras and the z-buffer rasteriser against closed-form answers."""

from __future__ import annotations

import numpy as np
import pytest

from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.rasterizer import interpolate, rasterize
from src.geometry.sh import irradiance_basis, sh_light


def _sphere_mesh(radius: float, center: np.ndarray, n: int = 90) -> tuple[np.ndarray, np.ndarray]:
    th = np.linspace(-np.pi * 0.9, np.pi * 0.9, n)
    ph = np.linspace(-1.4, 1.4, n)
    T, P = np.meshgrid(th, ph)
    pts = np.stack([np.sin(T) * np.cos(P), np.sin(P), -np.cos(T) * np.cos(P)], -1).reshape(-1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return pts * radius + center, tris


def test_pinhole_projection_roundtrip_and_kinect_intrinsics():
    cam = PinholeCamera.kinect_color(1024, 768)
    assert cam.fx == pytest.approx(1955.0 / 4, rel=1e-6) and cam.fx / cam.width == pytest.approx(0.477, abs=0.01)
    pts = np.array([[10.0, -20.0, 600.0], [-50.0, 30.0, 900.0]])
    px = cam.project(pts)
    back = cam.unproject(px, pts[:, 2])
    np.testing.assert_allclose(back, pts, atol=1e-9)
    # Extrinsics: a camera moved 50 mm to the right sees points shifted left.
    moved = cam.with_extrinsics(np.eye(3), np.array([-50.0, 0.0, 0.0]))
    assert moved.project(pts)[0, 0] < px[0, 0]
    np.testing.assert_allclose(moved.center, [50.0, 0.0, 0.0])


@pytest.mark.parametrize("bad", [dict(width=0, height=10), dict(width=10, height=-1)])
def test_zero_size_camera_is_rejected(bad):
    with pytest.raises(ValueError, match="size must be positive"):
        PinholeCamera(100.0, 100.0, 5.0, 5.0, **bad)


def test_rasterised_sphere_depth_matches_ray_intersection():
    center = np.array([5.0, -3.0, 500.0])
    verts, tris = _sphere_mesh(80.0, center, n=120)
    cam = PinholeCamera(300.0, 300.0, 63.5, 63.5, 128, 128)
    frags = rasterize(cam.project_camera(verts), tris, 128, 128)
    depth = frags.depth_image()
    ys, xs = np.nonzero(depth > 0)
    rays = np.stack([(xs - cam.cx) / cam.fx, (ys - cam.cy) / cam.fy, np.ones_like(xs, float)], 1)
    b = rays @ center
    a = (rays**2).sum(1)
    disc = b * b - a * (center @ center - 80.0**2)
    inner = disc > 0.19 * 80.0**2 * a  # rays within 0.9 radius of the centre: away from the silhouette
    t = (b - np.sqrt(np.maximum(disc, 0))) / a
    err = np.abs(depth[ys, xs] - t)[inner]
    assert err.max() < 0.5, err.max()
    # Every pixel whose ray hits the true sphere well inside the outline is covered (no cracks).
    all_y, all_x = np.mgrid[0:128, 0:128]
    rays = np.stack([(all_x - cam.cx) / cam.fx, (all_y - cam.cy) / cam.fy, np.ones_like(all_x, float)], -1)
    b = rays @ center
    disc = b * b - (rays**2).sum(-1) * (center @ center - 78.0**2)
    assert np.all(depth[disc > 0] > 0)


def test_backfaces_are_culled_and_nearest_surface_wins():
    # Two parallel squares facing the camera at 400 and 600 mm: only the near one is visible.
    quad = np.array([[-50, -50, 0], [50, -50, 0], [-50, 50, 0], [50, 50, 0]], float)
    tris = np.array([[0, 2, 1], [1, 2, 3]])
    verts = np.concatenate([quad + np.array([0.0, 0.0, 600.0]), quad + np.array([0.0, 0.0, 400.0])])
    all_tris = np.concatenate([tris, tris + 4])
    cam = PinholeCamera(100.0, 100.0, 31.5, 31.5, 64, 64)
    frags = rasterize(cam.project_camera(verts), all_tris, 64, 64)
    depth = frags.depth_image()
    assert np.allclose(depth[depth > 0], 400.0, atol=1e-3)
    assert (frags.triangle >= 2).all()
    # Reversed winding faces away: culled.
    assert len(rasterize(cam.project_camera(verts), all_tris[:, [0, 2, 1]], 64, 64).pixel) == 0
    # Each covered pixel appears once.
    assert len(np.unique(frags.pixel)) == len(frags.pixel)


def test_interpolation_reproduces_linear_attributes_orthographic():
    quad = np.array([[-30, -30, 100], [30, -30, 100], [-30, 30, 160], [30, 30, 160]], float)
    tris = np.array([[0, 2, 1], [1, 2, 3]])
    cam = OrthographicCamera(scale=1.0, cx=31.5, cy=31.5, width=64, height=64)
    frags = rasterize(cam.project_camera(quad), tris, 64, 64, perspective=False)
    values = interpolate(frags, tris, quad)
    np.testing.assert_allclose(values[:, 0], frags.xs - 31.5, atol=1e-3)
    np.testing.assert_allclose(values[:, 2], frags.depth, atol=1e-3)


def test_sh_light_shades_a_facing_normal_brightest():
    light = sh_light(ambient=0.4, direction=(0.0, 0.0, -1.0), intensity=0.6)
    normals = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    shade = irradiance_basis(normals) @ light
    assert shade[0, 0] == pytest.approx(1.0, abs=0.1)
    assert shade[0, 0] > shade[1, 0] > shade[2, 0]
