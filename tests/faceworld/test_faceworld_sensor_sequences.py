"""The Kinect-like sensor model and talking-head sequences."""

from __future__ import annotations

import numpy as np
import pytest

from src.faceworld import FaceWorld
from src.faceworld.sensor import KinectSensorModel
from src.faceworld.sequences import blink_curve, talking_head, viseme_track


@pytest.fixture(scope="module")
def world():
    return FaceWorld()


def test_noise_grows_with_distance_and_is_deterministic():
    sensor = KinectSensorModel(seed=4, grazing_start_deg=89.0, grazing_end_deg=90.0)
    near = np.full((64, 64), 500.0, np.float32)
    far = np.full((64, 64), 2500.0, np.float32)
    err_near = sensor.apply(near)["depth"].astype(float) - 500.0
    err_far = sensor.apply(far)["depth"].astype(float)[2:-2, 2:-2] - 2500.0
    assert err_far.std() > 3 * err_near[2:-2, 2:-2].std()
    np.testing.assert_array_equal(sensor.apply(far, frame_index=3)["depth"], sensor.apply(far, frame_index=3)["depth"])
    assert not np.array_equal(sensor.apply(far, frame_index=3)["depth"], sensor.apply(far, frame_index=4)["depth"])


def test_holes_at_grazing_angles_edges_hair_and_dark_surfaces(world):
    p = world.neutral_params(0, hair=True, yaw=30.0)
    cam = world.framing_camera(p, 192, fill=0.5)
    frame = world.render(p, cam, ("depth", "ir", "mask"))
    out = KinectSensorModel(seed=1).apply(frame, camera=cam)
    truth = frame["depth"] > 0
    holes = truth & (out["depth"] == 0)
    assert 0.02 < holes.mean() / truth.mean() < 0.5
    hair = frame["mask"] == 2
    skin = frame["mask"] == 1
    assert holes[hair].mean() > 3 * holes[skin].mean()
    assert np.abs(out["depth"][~holes & truth].astype(float) - frame["depth_mm"][~holes & truth]).mean() < 2.0
    # Silhouette pixels (flying pixels) are removed.
    edge = truth & ~np.roll(truth, 1, axis=1)
    assert (out["depth"][edge] == 0).all()
    # A dark (low IR) surface loses its depth.
    dark = KinectSensorModel(seed=1).apply(frame, camera=cam, ir=np.zeros_like(frame["ir"]))
    assert (dark["depth"] > 0).mean() < 0.2 * (out["depth"] > 0).mean()


def test_sensor_rejects_bad_input():
    with pytest.raises(ValueError, match="depth"):
        KinectSensorModel().apply({"rgb": np.zeros((4, 4, 3))})
    with pytest.raises(ValueError, match="non-empty"):
        KinectSensorModel().apply(np.zeros((0, 5)))


def test_talking_head_is_smooth_deterministic_and_talks(world):
    fps = 30.0
    seq = talking_head(world, identity_seed=3, num_frames=120, fps=fps, seed=5)
    again = talking_head(world, identity_seed=3, num_frames=120, fps=fps, seed=5)
    assert len(seq) == 120
    assert all(np.array_equal(a.expression, b.expression) and a.yaw == b.yaw for a, b in zip(seq, again))
    yaw = np.array([p.yaw for p in seq])
    assert np.abs(np.diff(yaw)).max() < 1.0  # degrees per frame at 30 fps
    names = world.expression_names
    jaw = np.array([p.expression[names.index("jaw_open")] for p in seq])
    assert jaw.max() > 0.3 and jaw.min() < 0.05  # the mouth opens and closes
    assert len({tuple(p.identity) for p in seq}) == 1
    shaky = talking_head(world, identity_seed=3, num_frames=120, fps=fps, seed=5, camera_shake=True)
    assert np.abs(np.diff(np.diff([p.yaw for p in shaky]))).mean() > np.abs(np.diff(np.diff(yaw))).mean()
    with pytest.raises(ValueError, match="num_frames"):
        talking_head(world, 1, 0)


def test_blinks_and_visemes():
    rng = np.random.default_rng(0)
    blinks = blink_curve(30 * 20, 30.0, rng)
    closed_runs = np.sum(np.diff((blinks > 0.9).astype(int)) == 1)
    assert 2 <= closed_runs <= 12  # every 2-6 s over 20 s
    track = viseme_track(100, 25.0, rng)
    assert len(track) == 100 and len(set(track)) > 3


def test_explicit_normals_and_albedo():
    depth = np.full((32, 32), 800.0, np.float32)
    grazing = np.zeros((32, 32, 3), np.float32)
    grazing[..., 0] = 1.0  # normals perpendicular to the view axis
    sensor = KinectSensorModel(seed=2)
    assert (sensor.apply(depth, normals=grazing)["depth"] == 0).all()
    dark = sensor.apply(depth, albedo=np.zeros((32, 32, 3), np.uint8))["depth"]
    assert (dark[2:-2, 2:-2] == 0).mean() > 0.7
    with pytest.raises(ValueError, match="normals must have shape"):
        sensor.apply(depth, normals=np.zeros((3, 3, 3)))
