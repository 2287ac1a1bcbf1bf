"""A FaceWorld "device": a talking head seen by a Kinect-like colour + depth camera pair.

The rig is a DeviceCalibration (kinect_like_calibration scaled to the requested sizes, without lens distortion
because FaceWorld renders pinhole images): the depth camera is the device frame, the colour camera sits where the
extrinsics put it. Depth and IR are rendered in the depth camera and passed through FaceWorld's
KinectSensorModel (noise, holes at grazing angles / dark IR / hair, flying-pixel removal), so the capture
pipeline meets the same registration step as with a real device. `write_faceworld_recording` stores such a
sequence as an Azure Kinect style .mkv (what the capture tests and the end-to-end chain play back).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from src.capture.calibration import DeviceCalibration, kinect_like_calibration
from src.capture.mkv import KinectRecordingConfig, KinectRecordingWriter
from src.capture.sources import ORIGINAL_CROP_3072P, SourceFrame, _RegisteredDepthSource
from src.faceworld.params import FaceParams
from src.geometry.pose import euler_to_rotation, rotation_to_euler


def scaled_original_crop(width: int, height: int) -> tuple[int, int, int, int]:
    """The original's 3072P crop (the depth-lit area) scaled to a smaller colour image of the same aspect."""
    sx, sy = width / 4096, height / 3072
    x, y, w, h = ORIGINAL_CROP_3072P
    return round(x * sx), round(y * sy), round(w * sx), round(h * sy)


def facing_camera(params: FaceParams, camera_rotation: np.ndarray) -> FaceParams:
    """`params` re-posed in the device frame so that its yaw / pitch / roll hold relative to a camera rotated by
    `camera_rotation` (device -> camera), e.g. the Kinect's colour camera, tilted ~6 degrees from the depth camera."""
    rotation = np.asarray(camera_rotation, dtype=np.float64).T @ euler_to_rotation(*params.head_rotation_deg)
    yaw, pitch, roll = rotation_to_euler(rotation)
    return params.replace(yaw=yaw, pitch=pitch, roll=roll)


class FaceWorldRig:
    """Renders raw captures (full colour image, depth + IR in the depth camera) of a FaceWorld sequence."""

    def __init__(
        self,
        num_frames: int = 60,
        identity_seed: int = 0,
        seed: int = 0,
        color_size: Sequence[int] = (640, 480),
        depth_size: Sequence[int] = (320, 288),
        fps: float = 15.0,
        distance_mm: float = 550.0,
        pose_amplitude_deg: float = 8.0,
        sensor_noise: bool = True,
    ) -> None:
        from src.faceworld import FaceWorld
        from src.faceworld.sensor import KinectSensorModel
        from src.faceworld.sequences import talking_head

        if num_frames <= 0:
            raise ValueError(f"source.num_frames must be positive, got {num_frames}")
        self.world = FaceWorld()
        self.calibration: DeviceCalibration = kinect_like_calibration(
            tuple(color_size), tuple(depth_size), distortion=False
        )
        self.fps = float(fps)
        trajectory = talking_head(
            self.world,
            identity_seed,
            num_frames,
            fps=fps,
            seed=seed,
            distance_mm=distance_mm,
            pose_amplitude_deg=pose_amplitude_deg,
        )
        # The subject faces the colour camera (the one the frame gate and the dataset see), as a person in front of
        # a Kinect does; the trajectory's angles are relative to it. Posed in the depth camera's frame instead, every
        # head would come out pitched by the rig's ~6 degree colour-camera tilt.
        self.sequence = [facing_camera(params, self.calibration.rotation) for params in trajectory]
        self.depth_camera = self.calibration.depth.to_pinhole()
        self.color_camera = self.calibration.color.to_pinhole(
            self.calibration.rotation, self.calibration.translation_mm
        )
        self.sensor = KinectSensorModel(seed=seed) if sensor_noise else None

    def __len__(self) -> int:
        return len(self.sequence)

    def capture(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(colour RGB, depth uint16 mm, IR uint16, truth) of frame `index`; truth: colour-camera landmarks and pose."""
        params = self.sequence[index]
        color = self.world.render(params, self.color_camera, modalities=("rgb", "landmarks"))
        depth = self.world.render(params, self.depth_camera, modalities=("depth", "ir", "mask"))
        if self.sensor is not None:
            sensed = self.sensor.apply(depth, camera=self.depth_camera, frame_index=index)
            depth_mm, ir = sensed["depth"], sensed["ir"]
        else:
            depth_mm, ir = depth["depth"], depth["ir"]
        pose_in_colour = rotation_to_euler(self.calibration.rotation @ euler_to_rotation(*params.head_rotation_deg))
        truth = {"landmarks2d": color["landmarks2d"], "pose_deg": np.array(pose_in_colour)}
        return color["rgb"], depth_mm, ir, truth


class FaceWorldSource(_RegisteredDepthSource):
    """FaceWorld through the Kinect-like rig, registered and cropped like a real capture."""

    name = "faceworld"
    deterministic = True

    def __init__(self, crop: Sequence[int] | str | None = "auto", **rig_options: object) -> None:
        self.rig = FaceWorldRig(**rig_options)  # type: ignore[arg-type]
        color = self.rig.calibration.color
        if crop == "auto":
            crop = scaled_original_crop(color.width, color.height) if color.width * 3 == color.height * 4 else None
        self._setup_registration(self.rig.calibration, crop)

    def frames(self, start: int = 0) -> Iterator[SourceFrame]:
        for index in range(start, len(self.rig)):
            color, depth, ir, truth = self.rig.capture(index)
            frame = self._make_frame(index, color, depth, ir, round(index * 1_000_000 / self.rig.fps))
            landmarks = truth["landmarks2d"] - (self.crop[:2] if self.crop else 0)
            frame.extras.update({"landmarks2d": landmarks, "pose_deg": truth["pose_deg"]})
            yield frame

    @property
    def frame_count(self) -> int:
        return len(self.rig)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "faceworld_frames": len(self.rig)}


def write_faceworld_recording(
    path: str | os.PathLike, jpeg_quality: int = 95, **rig_options: object
) -> DeviceCalibration:
    """Render a FaceWorld sequence and store it as an Azure Kinect style recording; returns its calibration."""
    rig = FaceWorldRig(**rig_options)  # type: ignore[arg-type]
    config = KinectRecordingConfig(color_mode="CUSTOM", depth_mode="CUSTOM", fps=round(rig.fps))
    with KinectRecordingWriter(Path(path), rig.calibration, config, jpeg_quality=jpeg_quality) as writer:
        for index in range(len(rig)):
            color, depth, ir, _ = rig.capture(index)
            writer.write_capture(color, depth, ir)
    return rig.calibration
