"""The per-frame steps against FaceWorld's truth and naive references."""

from __future__ import annotations

import numpy as np
import pytest

from src.apps.faces2one.pipeline import TransferSettings, compose_frame, texture_index
from src.apps.faces2one.transfer import (
    UVSurface,
    VertexSmoother,
    blend,
    exposure_adjusted,
    render_texture,
    take_texture,
)
from src.faceworld.writers.common import world_for
from src.faceworld.writers.videos import video_camera_for
from src.geometry.regions import position_map_footprint
from src.models.components.prnet_uv import build_uv_data


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def scene() -> dict:
    """A's texture onto B: another identity, expression, position and a slightly turned head, same light, so the
    truth (FaceWorld's render of B with A's appearance) differs from the transfer only by shading on B's normals."""
    world = world_for(256, 128)
    camera = video_camera_for(320, 240)
    a = world.sample_params(3, pose_range_deg=10).replace(translation=np.array([0.0, 0.0, 700.0]), background=None)
    other = world.sample_params(9)
    b = a.replace(
        translation=np.array([25.0, 10.0, 720.0]), albedo_seed=other.albedo_seed, skin_tone=other.skin_tone,
        hair=other.hair, background=77, identity=other.identity, expression=other.expression, yaw=a.yaw + 8,
    )  # fmt: skip
    surface = UVSurface.from_uv(build_uv_data(world.uv_face_mask(), world.uv_keypoint_indices()))
    return {
        "a": world.render(a, camera, ("rgb", "position_map")),
        "b": world.render(b, camera, ("rgb", "position_map")),
        "truth": world.render(b, camera, ("rgb",), appearance=a)["rgb"],
        "surface": surface,
    }


def test_true_position_maps_transfer_the_texture(scene: dict):
    texture, visible = take_texture(scene["a"]["rgb"], scene["a"]["position_map"], scene["surface"])
    assert 0.6 < visible.sum() / scene["surface"].uv.face_mask.sum() <= 1.0
    rendered, covered, origin = render_texture(texture, scene["b"]["position_map"], scene["surface"], 320, 240)
    out, mask = blend(scene["b"]["rgb"], rendered, covered, origin, erosion_px=2, poisson=False)
    kept = scene["b"]["rgb"]
    assert _psnr(out[mask], scene["truth"][mask]) > 27.0  # measured 28.0 dB
    assert _psnr(out[mask], scene["truth"][mask]) > _psnr(kept[mask], scene["truth"][mask]) + 8.0
    np.testing.assert_array_equal(out[~mask], kept[~mask])
    poisson, _ = blend(kept, rendered, covered, origin, erosion_px=2, poisson=True)
    np.testing.assert_array_equal(poisson[~mask], kept[~mask])


def test_compose_frame_on_true_maps_is_close_to_the_truth_and_poisson_pulls_to_the_kept_colours(scene: dict):
    """The app's last steps (what the quality bench feeds TRUE maps): a paste inside the face region is far closer
    to the truth than the kept frame; Poisson blending keeps the kept frame outside its mask and moves the pasted
    colours towards the kept face's border, so it lands between the paste and the unchanged frame."""
    surface, kept, truth = scene["surface"], scene["b"]["rgb"], scene["truth"]
    texture, _ = take_texture(scene["a"]["rgb"], scene["a"]["position_map"], surface)
    region = position_map_footprint(scene["b"]["position_map"], surface.uv.face_mask, 320, 240)
    outputs = {}
    for poisson in (False, True):
        settings = TransferSettings(source="-", reference="-", output="-.mp4", prnet="-", poisson=poisson)
        outputs[poisson] = compose_frame(kept, texture, scene["b"]["position_map"], surface, settings)
    paste, poisson = _psnr(outputs[False][region], truth[region]), _psnr(outputs[True][region], truth[region])
    unchanged = _psnr(kept[region], truth[region])
    assert paste > unchanged + 3.0  # measured 21.0 vs 16.7 dB (the eroded rim keeps the kept skin)
    assert unchanged < poisson < paste, (unchanged, poisson, paste)
    np.testing.assert_array_equal(outputs[True][~region], kept[~region])


def test_render_covers_the_position_maps_footprint(scene: dict):
    surface = scene["surface"]
    flat = np.full((128, 128, 3), 200, np.uint8)
    rendered, covered, (x0, y0) = render_texture(flat, scene["b"]["position_map"], surface, 320, 240)
    footprint = position_map_footprint(scene["b"]["position_map"], surface.uv.face_mask, 320, 240)
    full = np.zeros((240, 320), bool)
    full[y0 : y0 + covered.shape[0], x0 : x0 + covered.shape[1]] = covered
    assert (full == footprint).mean() > 0.999
    assert (rendered[covered] == 200).all()


def test_smoother_is_the_weighted_mean_of_the_last_frames():
    smoother = VertexSmoother(window=3, decay=0.5)
    maps = [np.full((2, 2, 3), float(v), np.float32) for v in (1, 2, 4, 8)]
    got = [smoother(m)[0, 0, 0] for m in maps]
    assert got == pytest.approx([1.0, (2 + 0.5) / 1.5, (4 + 1 + 0.25) / 1.75, (8 + 2 + 0.5) / 1.75])
    assert VertexSmoother(window=1)(maps[3])[0, 0, 0] == 8.0


def test_texture_frames_follow_time_and_loop():
    assert [texture_index(i, 25.0, 25.0, 4) for i in range(6)] == [0, 1, 2, 3, 0, 1]
    assert [texture_index(i, 25.0, 12.5, 10) for i in range(5)] == [0, 0, 1, 1, 2]
    assert [texture_index(i, 10.0, 30.0, 100) for i in range(3)] == [0, 3, 6]


def test_exposure_brightens_only_dark_frames():
    dark = np.full((8, 8, 3), 30, np.uint8)
    bright = np.full((8, 8, 3), 180, np.uint8)
    assert exposure_adjusted(dark).mean() == pytest.approx(0.45 * 255, abs=3)
    assert exposure_adjusted(bright) is bright
