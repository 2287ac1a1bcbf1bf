"""Geometry ground truth of FaceWorld renders: landmarks, depth, NMFC and position maps agree exactly."""

from __future__ import annotations

import numpy as np
import pytest

from src.faceworld import FaceWorld
from src.geometry.camera import OrthographicCamera


@pytest.fixture(scope="module")
def world():
    return FaceWorld()


@pytest.fixture(scope="module")
def frames(world):
    out = []
    for seed in (0, 1, 2):
        p = world.sample_params(seed, pose_range_deg=20)
        cam = world.framing_camera(p, 256, fill=0.6)
        out.append((p, cam, world.render(p, cam, ("rgb", "depth", "landmarks", "mask", "nmfc", "position_map"))))
    return out


def test_landmark_2d_is_projection_of_3d(frames):
    for _, cam, f in frames:
        np.testing.assert_allclose(cam.project_camera(f["landmarks3d"])[:, :2], f["landmarks2d"], atol=1e-3)


def test_depth_at_visible_landmarks_agrees_within_1mm(frames):
    checked = 0
    # Lid-margin and inner-lip points lie exactly on the depth step between the lid / lip and the eyeball /
    # mouth interior seen through the opening, so a pixel neighbourhood mixes two surfaces: not tested here.
    on_step = set(range(36, 48)) | set(range(60, 68))
    for _, _, f in frames:
        depth = f["depth_mm"]
        for k in np.nonzero(f["landmarks_visible"])[0]:
            if k in on_step:
                continue
            x, y = f["landmarks2d"][k]
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            patch = depth[y0 : y0 + 2, x0 : x0 + 2]
            # Landmarks on a lid or lip edge sit on a depth step; test where the surface is continuous.
            if patch.shape != (2, 2) or (patch <= 0).any() or np.ptp(patch) > 1.5:
                continue
            fx, fy = x - x0, y - y0
            z = (
                patch[0, 0] * (1 - fx) * (1 - fy)
                + patch[0, 1] * fx * (1 - fy)
                + patch[1, 0] * (1 - fx) * fy
                + patch[1, 1] * fx * fy
            )
            assert abs(z - f["landmarks3d"][k, 2]) < 1.0, (k, z, f["landmarks3d"][k, 2])
            checked += 1
    assert checked > 70


def test_occluded_landmarks_are_flagged(world):
    p = world.neutral_params(2, yaw=60.0)
    f = world.render(p, world.framing_camera(p, 256), ("landmarks",))
    vis = f["landmarks_visible"]
    # Positive yaw turns the nose to the image's right: the subject's left side (jaw 9-16, eye 42-47 and its
    # pupil) turns away, the right side stays in view.
    assert vis[[0, 1, 2, 3, 8, 30, 33, 36, 68]].all()
    assert not vis[12:17].any() and not vis[[44, 45, 69]].any()


def test_nmfc_colours_are_mean_face_coordinates(world, frames):
    p, cam, f = frames[0]
    scene = world.build_scene(p)
    ortho = world.nmfc_camera(scene, cam)
    assert isinstance(ortho, OrthographicCamera)
    nf = scene.num_face_vertices
    screen = ortho.project_camera(ortho.to_camera(scene.vertices[:nf]))
    mean = world.model.mean
    expected = (mean - mean.min(0)) / (mean.max(0) - mean.min(0))
    # Vertices on the front of the face (normal towards the camera, so nothing occludes them).
    facing = (world.mean_normals @ scene.rotation.T)[:, 2] < -0.8
    px = np.round(screen[:, :2]).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < 256) & (px[:, 1] >= 0) & (px[:, 1] < 256) & facing
    nmfc = f["nmfc"].astype(float) / 255.0
    idx = np.nonzero(inside)[0][::7]
    got = nmfc[px[idx, 1], px[idx, 0]]
    diff = np.abs(got - expected[idx]).max(1)
    # Within half a pixel of the vertex the colour differs by at most the local colour gradient (+ 8-bit step).
    assert len(idx) > 200
    assert np.median(diff) < 0.006
    assert np.quantile(diff, 0.95) < 0.02


def test_position_map_samples_the_rendered_image(world, frames):
    p, cam, f = frames[1]
    pos = f["position_map"]
    mask = world.uv_face_mask()
    assert pos.shape == (256, 256, 3) and mask.mean() > 0.5
    # Where the face is visible, the position map's x, y point at pixels whose depth is that point's depth.
    xy = pos[..., :2][mask]
    z_img = pos[..., 2][mask]
    head_depth = p.translation[2]
    z_cam = head_depth - z_img * head_depth / cam.fx
    px = np.round(xy).astype(int)
    ok = (px[:, 0] >= 0) & (px[:, 0] < 256) & (px[:, 1] >= 0) & (px[:, 1] < 256)
    depth = f["depth_mm"][px[ok, 1], px[ok, 0]]
    visible = np.abs(depth - z_cam[ok]) < 2.0
    assert visible.mean() > 0.7  # most of the face region faces the camera
    assert np.all(f["mask"][px[ok][visible, 1], px[ok][visible, 0]] > 0)
    # The keypoint texels hold the landmarks.
    kpt = world.uv_keypoint_indices()
    assert mask[kpt[:, 0], kpt[:, 1]].all()
    assert (pos[~mask] == 0).all()
    at_kpt = pos[kpt[:, 0], kpt[:, 1], :2]
    err = np.linalg.norm(at_kpt - f["landmarks2d"][:68], axis=1)
    assert np.median(err) < 1.5


def test_masks_and_depth_cover_the_same_pixels(frames):
    for _, _, f in frames:
        assert np.array_equal(f["mask"] > 0, f["depth"] > 0)
        assert f["depth"].dtype == np.uint16 and f["rgb"].dtype == np.uint8


def test_depth_camera_with_baseline_registers_onto_colour_camera(world):
    """Render from a depth camera offset by a known baseline, reproject its depth into the colour camera."""
    p = world.neutral_params(3, yaw=10.0)
    colour = world.framing_camera(p, 160, fill=0.5)
    baseline = np.array([-32.0, 2.0, 1.5])  # depth camera centre in colour-camera (world) coordinates
    depth_cam = colour.with_extrinsics(np.eye(3), -baseline)
    d = world.render(p, depth_cam, ("depth",))["depth_mm"]
    ref = world.render(p, colour, ("depth",))["depth_mm"]
    ys, xs = np.nonzero(d > 0)
    pts = depth_cam.unproject(np.stack([xs, ys], 1).astype(float), d[ys, xs]) + baseline  # -> colour frame
    uvz = colour.project_camera(pts)
    u, v = np.round(uvz[:, 0]).astype(int), np.round(uvz[:, 1]).astype(int)
    ok = (u >= 0) & (u < 160) & (v >= 0) & (v < 160)
    target = ref[v[ok], u[ok]]
    close = target > 0
    err = np.abs(target[close] - uvz[ok, 2][close])
    assert np.median(err) < 0.5 and np.mean(err < 3.0) > 0.9  # the rest: occlusion seams and silhouettes


def test_contact_sheet_command(tmp_path):
    from src.faceworld.contact_sheet import main

    out = main(["--out", str(tmp_path / "sheet.png"), "--tile", "48", "--identities", "1"])
    from src.io.images import read_image

    sheet = read_image(out)
    assert sheet.shape == (48, 48 * 15, 3) and sheet.std() > 10


def test_fast_landmarks_match_the_render(world, frames):
    for p, cam, f in frames:
        np.testing.assert_allclose(cam.to_camera(world.landmarks3d(p)), f["landmarks3d"], atol=1e-3)


@pytest.mark.parametrize("size", [64, 128, 256])
def test_uv_keypoints_lie_on_the_face_mask_at_every_size(size):
    """The jaw keypoints sit on the face region's edge; rounding their UV to the nearest texel put some just off the
    mask below 256 (points 2 and 14 at 64, 1 and 15 at 128). Every keypoint must index a face texel, and no closer
    mask texel may exist than the one chosen (the snap is to the nearest one, not just any)."""
    world = FaceWorld(position_map_size=size)
    kpt = world.uv_keypoint_indices()
    mask = world.uv_face_mask()
    assert kpt.shape == (68, 2)
    assert mask[kpt[:, 0], kpt[:, 1]].all(), np.nonzero(~mask[kpt[:, 0], kpt[:, 1]])[0].tolist()
    # Points on the mask after rounding stay where rounding put them (within one texel of the exact UV point).
    mm = world.model
    uv = np.einsum("lk,lkc->lc", mm.landmark_weights, mm.uv[mm.landmark_vertices])
    u0, u1, v0, v1 = world.prnet_uv_box()
    exact = np.stack([(uv[:, 1] - v0) / (v1 - v0) * size - 0.5, (uv[:, 0] - u0) / (u1 - u0) * size - 0.5], 1)
    assert np.abs(kpt - exact).max() < 2.0


def test_appearance_of_one_face_on_the_geometry_of_another(world):
    """faces2one's truth: render(B, appearance=A) keeps every geometric output of B (hair volume included) and
    takes A's texture; transplanting A's albedo_seed instead would also move B's hair surface."""
    a = world.sample_params(21, pose_range_deg=10).replace(hair=True)
    b = world.sample_params(22, pose_range_deg=10).replace(hair=True)
    assert world._identity_appearance(a).hair_volume_mm != world._identity_appearance(b).hair_volume_mm
    cam = world.framing_camera(b, 96)
    mods = ("rgb", "depth", "landmarks", "mask", "position_map", "uv_texture", "displacement")
    own = world.render(b, cam, mods)
    swapped = world.render(b, cam, mods, appearance=a)
    for key in ("depth_mm", "landmarks2d", "landmarks3d", "mask", "position_map", "displacement"):
        np.testing.assert_array_equal(swapped[key], own[key], err_msg=key)
    np.testing.assert_array_equal(swapped["uv_texture"], world.render(a, cam, ("uv_texture",))["uv_texture"])
    face = own["mask"] == 1
    assert np.abs(swapped["rgb"][face].astype(int) - own["rgb"][face]).mean() > 3.0
    seed_swap = world.render(b.replace(albedo_seed=a.albedo_seed), cam, ("depth",))
    assert not np.array_equal(seed_swap["depth_mm"], own["depth_mm"])
    with pytest.raises(TypeError, match="appearance"):
        world.render(b, cam, ("rgb",), appearance="A")
