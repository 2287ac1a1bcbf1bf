"""NMFC rendering (src.geometry.nmfc) against a per-pixel loop and against FaceWorld's NMFC frames, reached the way
Head2Head's preprocessing reaches real video: model-space vertices plus the misc file's orthographic camera."""

from __future__ import annotations

import numpy as np
import pytest

from src.faceworld.writers.head2head import misc_lines
from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.nmfc import nmfc_vertex_colors, orthographic_camera_from_misc, render_nmfc


def _naive_render(screen: np.ndarray, triangles: np.ndarray, colors: np.ndarray, width: int, height: int, persp: bool):
    """Per pixel, per triangle: barycentrics of the pixel centre, front faces only (negative signed pixel area),
    the nearest surface wins; colours interpolated (perspective-correct when persp)."""
    image = np.zeros((height, width, 3))
    covered = np.zeros((height, width), bool)
    zbuf = np.full((height, width), np.inf)
    for tri in triangles:
        (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = screen[tri]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area >= 0:
            continue
        for py in range(height):
            for px in range(width):
                w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
                w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
                w2 = 1.0 - w0 - w1
                if min(w0, w1, w2) < 0:
                    continue
                w = np.array([w0, w1, w2])
                z = np.array([z0, z1, z2])
                if persp:
                    w = w / z / np.sum(w / z)
                depth = w @ z
                if depth < zbuf[py, px]:
                    zbuf[py, px] = depth
                    image[py, px] = w @ colors[tri]
                    covered[py, px] = True
    return np.round(np.clip(image, 0, 1) * 255), covered


@pytest.mark.parametrize("perspective", [False, True])
def test_render_nmfc_matches_a_pixel_loop(perspective):
    rng = np.random.default_rng(3)
    # Two overlapping triangles at different depths and a tilted quad, in front of the camera, with front winding.
    vertices = np.array(
        [[-30, -20, 400], [30, -25, 420], [0, 25, 380], [-10, -30, 350], [25, 0, 360], [-25, 10, 340],
         [-40, 15, 450], [-5, 15, 430], [-5, 40, 470], [-40, 40, 490]], float,
    )  # fmt: skip
    triangles = np.array([[0, 2, 1], [3, 5, 4], [6, 8, 7], [6, 9, 8]])
    colors = rng.uniform(0, 1, (len(vertices), 3))
    if perspective:
        camera = PinholeCamera(fx=180.0, fy=180.0, cx=19.3, cy=14.6, width=40, height=30)
    else:
        camera = OrthographicCamera(scale=0.45, cx=19.3, cy=14.6, width=40, height=30)
    image = render_nmfc(vertices, triangles, colors, camera)
    screen = camera.project_camera(camera.to_camera(vertices))
    expected, covered = _naive_render(screen, triangles, colors, 40, 30, perspective)
    assert covered.sum() > 150 and (image.sum(-1) > 0).sum() == covered.sum()
    np.testing.assert_allclose(image[covered], expected[covered], atol=1.0)
    assert not image[~covered].any()


def test_nmfc_colours_normalise_the_mean_shape():
    mean = np.random.default_rng(0).normal(0, 50, (200, 3))
    colors = nmfc_vertex_colors(mean)
    np.testing.assert_allclose(colors.min(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(colors.max(0), 1.0, atol=1e-6)
    for axis in range(3):
        assert colors[np.argmin(mean[:, axis]), axis] == 0.0 and colors[np.argmax(mean[:, axis]), axis] == 1.0
    # Any scale and offset of the model gives the same colours: they name points of the face, not millimetres.
    np.testing.assert_allclose(nmfc_vertex_colors(mean * 2.5 + 40.0), colors, atol=1e-6)
    with pytest.raises(ValueError, match="mean_vertices"):
        nmfc_vertex_colors(mean[:, :2])


def test_nmfc_from_misc_camera_equals_faceworld_nmfc(world, frames):
    """The Head2Head path on 'real' inputs (model-space mesh + misc scale / rotation / translation) draws
    FaceWorld's NMFC frame, which FaceWorld renders from its posed scene through the pinhole camera's twin."""
    colors = nmfc_vertex_colors(world.model.mean)
    for frame in frames.values():
        lines = [np.array(line.split(), float) for line in misc_lines(frame.params, frame.camera).splitlines()]
        scale, rotation, translation = float(lines[0][0]), np.stack(lines[1:4]), np.concatenate(lines[4:7])
        camera = orthographic_camera_from_misc(scale, rotation, translation, frame.camera.width, frame.camera.height)
        image = render_nmfc(frame.face_vertices_model, world.model.triangles, colors, camera)
        truth = frame.render["nmfc"]
        assert (truth.sum(-1) > 0).mean() > 0.2
        same = np.all(image == truth, axis=-1).mean()
        assert same > 0.998, same
        assert np.abs(image.astype(int) - truth).mean() < 0.1


def test_nmfc_pixel_colours_name_the_vertex_drawn_there(world, frames):
    """Independent of the rasteriser: at the projection of a visible mesh vertex the NMFC colour is that vertex's
    normalised mean-shape position (up to the colour change across one pixel)."""
    frame = frames[10.0]
    colors = nmfc_vertex_colors(world.model.mean)
    ortho = OrthographicCamera.matching(frame.camera, float(frame.params.translation[2]))
    image = render_nmfc(frame.face_vertices_world, world.model.triangles, colors, ortho)
    screen = ortho.project_camera(ortho.to_camera(frame.face_vertices_world))
    lm = world.model.landmark_vertices[:, 0]
    px, py = np.round(screen[lm, 0]).astype(int), np.round(screen[lm, 1]).astype(int)
    drawn = image[py, px].astype(float) / 255.0
    error = np.abs(drawn - colors[lm]).max(axis=1)
    assert np.median(error) < 0.01 and np.mean(error < 0.03) > 0.8
