"""The conversion's per-frame steps, one fact of the original's order each (shared/reference/rgbd-face.md)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from convert_testdata import synthetic_frame

from src.capture.calibration import CameraIntrinsics
from src.capture.gate import FrameGate
from src.convert.depth_fill import FillSettings
from src.convert.settings import ConvertSettings
from src.convert.steps import (
    ConversionPlan,
    Measurement,
    crop_transform,
    detect_and_gate,
    landmark_box,
    nose_box,
    nose_depth,
    output_encoding,
    plan_conversion,
    render_frame,
)
from src.io.rgbd_layout import DepthEncoding, parse_landmark_file
from src.landmarks.detectors.base import FaceDetection, LandmarkDetector, box_around
from src.landmarks.drawing import draw_feature_image


def _settings(**kw) -> ConvertSettings:
    base = dict(input=Path("in"), output=Path("out"), max_pose_deg=None, detect_max_side=None)
    base.update(kw)
    return ConvertSettings(**base)


def _measurement(frame, fill: FillSettings | None = None) -> Measurement:
    from src.convert.steps import fill_face_depth

    filled, origin = fill_face_depth(frame.depth_u16, frame.landmarks, fill or FillSettings(), 0.08)
    nose = nose_depth(filled, frame.landmarks, origin)
    return Measurement(frame.landmarks, landmark_box(frame.landmarks), nose, None)


def test_nose_depth_is_the_minimum_valid_depth_inside_the_nose_box():
    frame = synthetic_frame(320, 400, seed=3)
    r0, r1, c0, c1 = nose_box(frame.landmarks)
    # x from landmark 32 to 34, y from landmark 29 to 32, truncated like the original's excerpt.
    assert (c0, c1) == (int(frame.landmarks[32, 0]), int(frame.landmarks[34, 0]))
    assert (r0, r1) == (int(frame.landmarks[29, 1]), int(frame.landmarks[32, 1]))
    depth = np.full((400, 320), 700.0, np.float32)
    depth[r0:r1, c0:c1] = 650.0
    depth[r0 + 1, c0 + 1] = 0.0  # a hole is not the nearest point
    depth[r0 + 2, c0 + 2] = 640.0
    depth[r0 - 1, c0] = 500.0  # nearer, but outside the box
    assert nose_depth(depth, frame.landmarks) == 640.0
    depth[r0:r1, c0:c1] = 0
    assert nose_depth(depth, frame.landmarks) is None


def test_plan_uses_the_first_nose_depth_and_fits_the_largest_depth_scaled_box():
    settings = _settings(size=512, padding=20)
    pts = np.zeros((70, 2))
    m = [
        Measurement(pts, (0, 0, 300, 400), 600.0, None),
        Measurement(pts, (0, 0, 350, 380), 660.0, None),  # farther away: its box counts 660/600 bigger
        Measurement(pts, (0, 0, 420, 300), 540.0, None),
    ]
    plan = plan_conversion(m, settings)
    assert plan.desired_nose_depth_mm == 600.0
    max_w = max(300 * 1.0, 350 * 1.1, 420 * 0.9)
    max_h = max(400 * 1.0, 380 * 1.1, 300 * 0.9)
    assert plan.global_scale == pytest.approx(min(472 / max_w, 472 / max_h))
    assert plan.frame_scale(m[1]) == pytest.approx(1.1 * plan.global_scale)


def test_crop_is_size_square_and_centred_on_the_scaled_landmark_box():
    box = (100.0, 50.0, 200.0, 260.0)
    transform = crop_transform(box, 1.7, 512)
    centre = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
    mapped = transform[:, :2] @ centre + transform[:, 2]
    assert np.all(np.abs(mapped - 255.5) <= 0.5 + 1e-9)
    # Pixel-centre convention: the scale is about pixel edges, like cv2.resize.
    assert transform[0, 0] == 1.7
    assert (transform[0, 2] - (0.5 * 1.7 - 0.5)) == pytest.approx(round(transform[0, 2] - (0.5 * 1.7 - 0.5)))


def test_depth_range_is_mapped_to_levels_with_zero_background_and_sub_mm_16_bit():
    frame = synthetic_frame(320, 400, seed=5, nose_mm=620.0)
    clean = frame.true_depth_mm.copy()
    clean[clean > 1000] = 0  # the wall is background
    depth_u16 = np.round(clean).astype(np.uint16)
    settings = _settings(size=256, padding=16, face_depth=80, depth_bits=16, erosion=False)
    measurement = Measurement(frame.landmarks, landmark_box(frame.landmarks), nose_depth(clean, frame.landmarks), None)
    plan = ConversionPlan(desired_nose_depth_mm=600.0, global_scale=0.9)
    out = render_frame(frame.colour_bgr, depth_u16, measurement, plan, settings)
    encoding = output_encoding(plan, settings)
    assert encoding == DepthEncoding(580.0, 680.0, 16)
    levels = out.depth_levels
    assert levels.dtype == np.uint16 and out.colour_bgr.shape == (256, 256, 3)
    # The nose (nearest point) sits at the desired depth: min decoded depth in the nose box == 600 mm.
    landmarks = parse_landmark_file_text(out.landmark_text)
    decoded = encoding.decode(levels)
    assert nose_depth(decoded, landmarks) == pytest.approx(600.0, abs=encoding.mm_per_level)
    # Against the hidden true depth, sampled at the same output pixels: sub-millimetre everywhere on the face.
    inverse = cv2.invertAffineTransform(out.crop_transform)
    gx, gy = np.meshgrid(np.arange(256, dtype=np.float32), np.arange(256, dtype=np.float32))
    src_x = inverse[0, 0] * gx + inverse[0, 1] * gy + inverse[0, 2]
    src_y = inverse[1, 0] * gx + inverse[1, 1] * gy + inverse[1, 2]
    truth = cv2.remap(frame.true_depth_mm, src_x, src_y, cv2.INTER_LINEAR)
    wall = cv2.erode((truth > 1000).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert wall.sum() > 1000 and levels[wall].max() == 0  # no depth there (the wall is out of range): level 0
    assert levels.max() <= encoding.max_level and levels[levels > 0].min() >= 1
    face = cv2.erode((levels > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    error = decoded[face] - truth[face]
    error -= np.median(error)  # the nose shift (desired - measured nose) is the same for every pixel
    assert face.sum() > 10000
    assert np.sqrt(np.mean(error**2)) < 0.5
    # 8-bit keeps the original's coarse levels: ~0.39 mm / level at face_depth 80.
    assert output_encoding(plan, _settings(face_depth=80, depth_bits=8)).mm_per_level == pytest.approx(100 / 254)


def parse_landmark_file_text(text: str) -> np.ndarray:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write(text)
    try:
        return parse_landmark_file(handle.name).points
    finally:
        Path(handle.name).unlink()


def test_erosion_uses_a_square_of_two_floor_scale_plus_one():
    frame = synthetic_frame(320, 400, seed=7)
    measurement = _measurement(frame)
    plan = ConversionPlan(measurement.nose_depth_mm, 2.6 / 1.0)  # this frame's scale is 2.6 -> 5x5 kernel
    size = 512
    kept = render_frame(frame.colour_bgr, frame.depth_u16, measurement, plan, _settings(size=size, erosion=False))
    eroded = render_frame(frame.colour_bgr, frame.depth_u16, measurement, plan, _settings(size=size, erosion=True))
    kernel = np.ones((2 * math.floor(2.6) + 1,) * 2, np.uint8)
    expected = cv2.erode((kept.depth_levels > 0).astype(np.uint8), kernel) > 0
    assert np.array_equal(eroded.depth_levels > 0, expected)
    assert np.array_equal(eroded.depth_levels[expected], kept.depth_levels[expected])


def test_feature_image_is_the_exact_binary_drawing_of_the_written_landmarks_at_512():
    frame = synthetic_frame(320, 400, seed=9)
    measurement = _measurement(frame)
    plan = plan_conversion([measurement], _settings())
    out = render_frame(frame.colour_bgr, frame.depth_u16, measurement, plan, _settings(size=512, padding=20))
    assert out.feature.shape == (512, 512) and out.feature.dtype == np.uint8
    assert set(np.unique(out.feature)) == {0, 255}  # value 255 lines, no antialiasing
    landmarks = parse_landmark_file_text(out.landmark_text)
    assert np.array_equal(out.feature, draw_feature_image(landmarks, 512))
    # The largest (only) face box fits 512 - 2 * 20.
    _, _, w, h = landmark_box(landmarks)
    assert max(w, h) == pytest.approx(472, abs=0.01)


class _RecordingDetector(LandmarkDetector):
    def __init__(self, points: np.ndarray) -> None:
        self.points = points
        self.seen: list[tuple[int, int]] = []

    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        self.seen.append(image_rgb.shape[:2])
        return [FaceDetection(self.points, box_around(self.points), 1.0)]


def test_detection_runs_on_a_shrunken_copy_and_landmarks_come_back_in_full_resolution():
    colour = np.zeros((2270, 1900, 3), np.uint8)
    frame = synthetic_frame(670, 800, seed=2)  # a face in the coordinates of the shrunken copy
    detector = _RecordingDetector(frame.landmarks.astype(np.float32))
    gate = FrameGate(detector, max_angle_deg=math.inf)
    intrinsics = CameraIntrinsics(1900, 2270, 1955.0, 1954.0, 994.0, 1157.0)
    decision, landmarks = detect_and_gate(colour, gate, intrinsics, max_side=800)
    assert detector.seen == [(800, 670)] and decision.accepted
    scale_x, scale_y = 1900 / 670, 2270 / 800
    assert landmarks[0] == pytest.approx((frame.landmarks[0] + 0.5) * (scale_x, scale_y) - 0.5)
    # The pose does not depend on the working resolution (the intrinsics are scaled with the image).
    full = FrameGate(_RecordingDetector(landmarks.astype(np.float32)), max_angle_deg=math.inf)
    full_decision, _ = detect_and_gate(colour, full, intrinsics, max_side=None)
    assert full_decision.pose_deg == pytest.approx(decision.pose_deg, abs=0.05)
    detect_and_gate(colour[:600, :500], gate, None, max_side=800)
    assert detector.seen[-1] == (600, 500)  # small images are not resized
