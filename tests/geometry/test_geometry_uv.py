"""UV rasterisation, keypoints and position maps (src.geometry.uv) against loops and FaceWorld's landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from src.geometry.uv import (
    interpolate_to_uv,
    position_map,
    rasterize_uv,
    resample_uv_box,
    texel_centers_uv,
    uv_coverage_mask,
    uv_grid_triangles,
    uv_keypoint_indices,
    uv_to_texels,
)


def _jittered_grid(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A UV grid chart over [0.1, 0.9]^2 with jittered inner vertices, both triangle windings present."""
    axis = np.linspace(0.1, 0.9, n)
    U, V = np.meshgrid(axis, axis)
    uv = np.stack([U.ravel(), V.ravel()], 1)
    inner = (U.ravel() > 0.1) & (U.ravel() < 0.9) & (V.ravel() > 0.1) & (V.ravel() < 0.9)
    uv[inner] += rng.uniform(-0.04, 0.04, (inner.sum(), 2))
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return uv, np.concatenate([np.stack([a, c, b], 1), np.stack([b, d, c], 1)])


def test_uv_rasterisation_and_interpolation_match_a_texel_loop():
    rng = np.random.default_rng(1)
    uv, triangles = _jittered_grid(5, rng)
    values = rng.normal(0, 10, (len(uv), 2))
    box = (0.05, 0.95, 0.0, 1.0)
    size = 24
    frags = rasterize_uv(uv, triangles, size, box)
    covered = uv_coverage_mask(frags)
    interpolated = interpolate_to_uv(frags, triangles, values)
    U, V = texel_centers_uv(size, box)
    expected = np.zeros((size, size, 2))
    expected_cover = np.zeros((size, size), bool)
    for row in range(size):
        for col in range(size):
            p = np.array([U[row, col], V[row, col]])
            for tri in triangles:
                a, b, c = uv[tri]
                weights = np.linalg.solve(np.array([b - a, c - a]).T, p - a)
                w = np.array([1 - weights.sum(), *weights])
                if w.min() >= -1e-9:
                    expected[row, col] = w @ values[tri]
                    expected_cover[row, col] = True
                    break
    assert expected_cover.sum() > 300
    np.testing.assert_array_equal(covered, expected_cover)
    np.testing.assert_allclose(interpolated[covered], expected[covered], atol=1e-3)
    assert not interpolated[~covered].any()


def test_texel_coordinates_follow_the_pixel_centre_convention():
    box = (0.2, 0.6, 0.1, 0.5)
    U, V = texel_centers_uv(8, box)
    texels = uv_to_texels(np.stack([U.ravel(), V.ravel()], 1), 8, box)
    rows, cols = np.mgrid[0:8, 0:8]
    np.testing.assert_allclose(texels, np.stack([cols.ravel(), rows.ravel()], 1), atol=1e-9)
    with pytest.raises(ValueError, match="UV box"):
        uv_to_texels(np.zeros((1, 2)), 8, (0.5, 0.5, 0.0, 1.0))


def test_uv_keypoints_take_the_nearest_texel_on_the_mask():
    size = 32
    rows, cols = np.mgrid[0:size, 0:size]
    mask = (rows - 15.5) ** 2 + (cols - 12.0) ** 2 < 10.0**2
    rng = np.random.default_rng(4)
    keypoints = rng.uniform(0.0, 1.0, (40, 2))
    got = uv_keypoint_indices(keypoints, mask)
    exact = keypoints[:, ::-1] * size - 0.5  # (row, col)
    on_rows, on_cols = np.nonzero(mask)
    for k in range(len(keypoints)):
        nearest = np.clip(np.round(exact[k]), 0, size - 1).astype(int)
        if not mask[nearest[0], nearest[1]]:
            best = np.argmin((on_rows - exact[k, 0]) ** 2 + (on_cols - exact[k, 1]) ** 2)
            nearest = np.array([on_rows[best], on_cols[best]])
        np.testing.assert_array_equal(got[k], nearest)
    assert mask[got[:, 0], got[:, 1]].all() and (~mask[np.clip(np.round(exact), 0, 31).astype(int).T[0], 0]).any()
    with pytest.raises(ValueError, match="empty"):
        uv_keypoint_indices(keypoints, np.zeros((8, 8), bool))


def test_grid_triangles_keep_only_quads_on_the_mask():
    mask = np.ones((6, 6), bool)
    assert len(uv_grid_triangles(mask)) == 2 * 5 * 5
    mask[2, 3] = False  # an inner texel belongs to six triangles
    tris = uv_grid_triangles(mask)
    assert len(tris) == 2 * 5 * 5 - 6 and not np.any(tris == 2 * 6 + 3)


def test_position_map_at_the_uv_keypoints_is_where_the_landmarks_are_drawn(world, frames):
    """PRNet's contract: position_map[uv_kpt_ind] gives the 68 landmarks in image pixels. FaceWorld's landmarks
    come from 3D barycentric landmark definitions projected by the camera, independent of any UV rasterisation."""
    mm = world.model
    keypoint_uv = np.einsum("lk,lkc->lc", mm.landmark_weights, mm.uv[mm.landmark_vertices])
    mask = world.uv_face_mask()
    kpt = uv_keypoint_indices(keypoint_uv, mask, world.prnet_uv_box())
    # FaceWorld's mouth and eyes are slits: lower inner-lip and lower-lid points share the upper ones' UV row, and
    # FaceWorld's uv_keypoint_indices shows them one texel lower, on the lower side. Otherwise the generic rule.
    lower_slit_points = [40, 41, 46, 47, 65, 66, 67]
    faceworld_kpt = world.uv_keypoint_indices()
    np.testing.assert_array_equal(np.delete(kpt, lower_slit_points, 0), np.delete(faceworld_kpt, lower_slit_points, 0))
    kpt = faceworld_kpt
    for frame in frames.values():
        head_depth = float(frame.camera.to_camera(frame.params.translation[None])[0, 2])
        pos = position_map(
            frame.face_vertices_world, mm.triangles, mm.uv, frame.camera, world.position_map_size,
            reference_depth_mm=head_depth, box=world.prnet_uv_box(), face_mask=mask,
        )  # fmt: skip
        np.testing.assert_array_equal(pos, frame.render["position_map"])
        error = np.linalg.norm(pos[kpt[:, 0], kpt[:, 1], :2] - frame.render["landmarks2d"][:68], axis=1)
        # A texel of the 128 map spans about 1.5 px of the 256 image: landmarks sit within about one texel.
        assert np.median(error) < 1.0 and error.max() < 4.0, (np.median(error), error.max())
        # z: the landmarks' depth towards the camera, in pixels at the head's depth.
        cam = frame.camera.to_camera(world.landmarks3d(frame.params))[:68]
        z = (head_depth - cam[:, 2]) * frame.camera.fx / head_depth
        assert np.median(np.abs(pos[kpt[:, 0], kpt[:, 1], 2] - z)) < 1.5


def test_resampling_a_uv_map_into_a_box():
    rng = np.random.default_rng(2)
    full = rng.uniform(0, 1, (16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(resample_uv_box(full, (0.0, 1.0, 0.0, 1.0), 16), full, atol=1e-6)
    # The box (0.25, 0.75) x (0.5, 1.0) at 16 texels: texel centres fall at quarter texels of the full map.
    box = (0.25, 0.75, 0.5, 1.0)
    out = resample_uv_box(full, box, 16)
    for row, col in [(0, 0), (5, 11), (15, 15), (8, 3)]:
        x = (0.25 + (col + 0.5) / 16 * 0.5) * 16 - 0.5
        y = (0.5 + (row + 0.5) / 16 * 0.5) * 16 - 0.5
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        x1, y1 = min(x0 + 1, 15), min(y0 + 1, 15)
        expected = (
            full[y0, x0] * (1 - fx) * (1 - fy) + full[y0, x1] * fx * (1 - fy)
            + full[y1, x0] * (1 - fx) * fy + full[y1, x1] * fx * fy
        )  # fmt: skip
        np.testing.assert_allclose(out[row, col], expected, atol=2e-3)
    with pytest.raises(ValueError, match="square"):
        resample_uv_box(np.zeros((4, 5)), box, 8)
