"""Lens model, raw calibration JSON and the capture modes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from src.capture.calibration import CameraIntrinsics, DeviceCalibration, kinect_like_calibration


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.c_[rng.uniform(-250, 250, (500, 2)), rng.uniform(400, 1200, 500)]


def test_projection_matches_opencv_rational_model(points):
    for camera in (kinect_like_calibration().color, kinect_like_calibration().depth):
        uv, valid = camera.project(points)
        reference, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), camera.matrix, camera.opencv_distortion)
        assert valid.all()
        np.testing.assert_allclose(uv, reference[:, 0], atol=1e-6)


def test_unproject_inverts_project(points):
    camera = kinect_like_calibration().depth  # strong rational distortion (k1 ~ 3)
    uv, _ = camera.project(points)
    back, valid = camera.unproject(uv, points[:, 2])
    assert valid.all()
    np.testing.assert_allclose(back, points, atol=1e-6)


def test_metric_radius_marks_points_outside_the_lens_model():
    camera = kinect_like_calibration().depth
    _, valid = camera.project(np.array([[0.0, 0.0, 500.0], [2000.0, 0.0, 500.0], [0, 0, -10.0]]))
    assert valid.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("color_mode", "depth_mode"), [("3072P", "NFOV_UNBINNED"), ("720P", "NFOV_2X2BINNED"), ("CUSTOM", "CUSTOM")]
)
def test_raw_json_round_trip(color_mode, depth_mode):
    sizes = {"3072P": (4096, 3072), "720P": (1280, 720), "NFOV_UNBINNED": (640, 576), "NFOV_2X2BINNED": (320, 288)}
    base = kinect_like_calibration(sizes.get(color_mode, (320, 240)), sizes.get(depth_mode, (160, 144)))
    calibration = DeviceCalibration(base.color, base.depth, base.rotation, base.translation_mm, color_mode, depth_mode)
    text = calibration.to_kinect_json()
    raw = json.loads(text)["CalibrationInformation"]
    depth_json = next(c for c in raw["Cameras"] if c["Location"] == "CALIBRATION_CameraLocationD0")
    color_json = next(c for c in raw["Cameras"] if c["Location"] == "CALIBRATION_CameraLocationPV0")
    if depth_mode == "NFOV_UNBINNED":
        # stored over the full 1024x1024 sensor with corner origin: cx_raw = (cx + 0.5 + crop_x) / 1024
        assert depth_json["SensorWidth"] == 1024
        assert depth_json["Intrinsics"]["ModelParameters"][0] == pytest.approx(
            (calibration.depth.cx + 0.5 + 192) / 1024
        )
    np.testing.assert_allclose(color_json["Rt"]["Translation"], calibration.translation_mm / 1000)
    back = DeviceCalibration.from_kinect_json(text, color_mode, depth_mode)
    assert back.allclose(calibration)


def test_recorder_colour_mode_tags_are_understood():
    base = kinect_like_calibration((1280, 720), (640, 576))
    calibration = DeviceCalibration(base.color, base.depth, base.rotation, base.translation_mm, "720P", "NFOV_UNBINNED")
    for tag in ("MJPG_720P", "BGRA_720P", "NV12_720P", "YUY2_720P", "720P"):
        parsed = DeviceCalibration.from_kinect_json(calibration.to_kinect_json(), tag, "NFOV_UNBINNED")
        assert parsed.color.width == 1280 and parsed.color.cy == pytest.approx(calibration.color.cy)


def test_bad_calibration_names_the_source():
    with pytest.raises(ValueError, match=r"rec\.mkv:calibration\.json"):
        DeviceCalibration.from_kinect_json("{}", "3072P", "NFOV_UNBINNED", source="rec.mkv:calibration.json")
    with pytest.raises(ValueError, match="unknown capture mode"):
        DeviceCalibration.from_kinect_json(kinect_like_calibration().to_kinect_json(), "999P", "NFOV_UNBINNED")


def test_crop_and_scale_move_the_principal_point():
    camera = CameraIntrinsics(400, 300, 300.0, 300.0, 199.5, 149.5)
    cropped = camera.cropped(100, 50, 200, 100)
    assert (cropped.cx, cropped.cy, cropped.width) == (99.5, 99.5, 200)
    half = camera.scaled(200, 150)
    assert (half.fx, half.cx, half.cy) == (150.0, 99.5, 74.5)
    with pytest.raises(ValueError, match="outside"):
        camera.cropped(300, 0, 200, 100)
