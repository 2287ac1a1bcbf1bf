"""Small recordings the capture tests write themselves, in the Azure Kinect recorder's track layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data

from src.capture.calibration import DeviceCalibration, kinect_like_calibration
from src.capture.mkv import KinectRecordingConfig, KinectRecordingWriter

COLOR_SIZE = (256, 192)
DEPTH_SIZE = (128, 96)


def astronaut_face(roll_deg: float = 0.0, shift: int = 0) -> np.ndarray:
    """The astronaut photo's head and shoulders in a 256x192 RGB frame, optionally rolled about the face."""
    photo = skimage.data.astronaut()[20:260, 100:420]  # 240x320 around the face
    frame = cv2.resize(photo, COLOR_SIZE, interpolation=cv2.INTER_AREA)
    if roll_deg or shift:
        centre = (COLOR_SIZE[0] * 0.38, COLOR_SIZE[1] * 0.45)
        matrix = cv2.getRotationMatrix2D(centre, roll_deg, 1.0)
        matrix[0, 2] += shift
        frame = cv2.warpAffine(frame, matrix, COLOR_SIZE, borderMode=cv2.BORDER_REFLECT)
    return frame


def plane_depth(
    calibration: DeviceCalibration, distance_mm: float = 700.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Depth of a slanted plane seen by the depth camera (+ an IR image with texture), uint16."""
    depth_cam = calibration.depth
    v, u = np.mgrid[0 : depth_cam.height, 0 : depth_cam.width]
    rays, ok = depth_cam.pixel_rays(np.stack([u, v], -1).reshape(-1, 2).astype(float))
    # plane z = distance + 0.3 x  ->  along a ray (x = rx z): z = distance / (1 - 0.3 rx)
    z = distance_mm / (1 - 0.3 * rays[:, 0])
    depth = np.where(ok, np.round(z), 0).reshape(depth_cam.height, depth_cam.width).astype(np.uint16)
    rng = np.random.default_rng(seed)
    ir = rng.integers(100, 4000, depth.shape).astype(np.uint16)
    return depth, ir


def write_test_recording(
    path: Path, colours: list[np.ndarray], calibration: DeviceCalibration | None = None
) -> DeviceCalibration:
    calibration = calibration or kinect_like_calibration(COLOR_SIZE, DEPTH_SIZE)
    config = KinectRecordingConfig(color_mode="CUSTOM", depth_mode="CUSTOM")
    with KinectRecordingWriter(path, calibration, config) as writer:
        for i, colour in enumerate(colours):
            depth, ir = plane_depth(calibration, 650.0 + 5 * i, seed=i)
            writer.write_capture(colour, depth, ir)
    return calibration


def gate_sequence() -> tuple[list[np.ndarray], list[str]]:
    """Frames with known gate outcomes: frontal faces, no face, a strongly rolled face."""
    blank = np.full((COLOR_SIZE[1], COLOR_SIZE[0], 3), 120, np.uint8)
    frames = [astronaut_face(), blank, astronaut_face(shift=4), astronaut_face(roll_deg=40), astronaut_face(shift=-4)]
    frames += [
        astronaut_face(shift=2),
        blank,
        astronaut_face(shift=-2),
        astronaut_face(shift=6),
        astronaut_face(shift=-6),
    ]
    outcomes = [
        "accepted",
        "no_face",
        "accepted",
        "pose",
        "accepted",
        "accepted",
        "no_face",
        "accepted",
        "accepted",
        "accepted",
    ]
    return frames, outcomes
