"""Capture sources behind one interface: live Azure Kinect, Kinect recordings, FaceWorld, plain video / webcam.

Every source yields `SourceFrame`s: colour RGB in the (cropped) colour camera, depth and IR registered into that
same camera (or None for RGB-only sources), the colour intrinsics of the crop, and a running index. Sources
whose frames are the same on every run (`deterministic`) let an interrupted capture resume by skipping.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from src.capture.calibration import CameraIntrinsics, DeviceCalibration
from src.capture.mkv import RecordingError
from src.capture.registration import DepthRegistration
from src.utils.errors import UserError

log = logging.getLogger(__name__)

# The original crops the 4096x3072 colour image to the area the depth camera lights: x, y, width, height.
ORIGINAL_CROP_3072P = (1050, 400, 1900, 2270)
PYK4A_INSTALL_HINT = (
    "the Azure Kinect source needs pyk4a and the Azure Kinect Sensor SDK: install the SDK "
    "(https://github.com/microsoft/Azure-Kinect-Sensor-SDK/blob/develop/docs/usage.md; on Ubuntu "
    "`sudo apt install libk4a1.4-dev k4a-tools`), then `pip install pyk4a`"
)


class KinectSDKMissingError(UserError, ImportError):
    """pyk4a or the SDK library it loads is missing. A UserError, so the entry points print the one line alone
    (Hydra's wrapper and the import error's own text would otherwise repeat it); an ImportError, so callers that
    fall back to another reader keep catching it."""


@dataclass
class SourceFrame:
    index: int  # position in the source (0-based), the unit of resume
    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray | None = None  # (H, W) uint16 mm in the colour camera, 0 = no data
    ir: np.ndarray | None = None  # (H, W) uint16 in the colour camera
    intrinsics: CameraIntrinsics | None = None  # of `color` (after the crop)
    timestamp_us: int = 0
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. FaceWorld ground truth


class FrameSource(abc.ABC):
    """An iterable of frames. `frames(start)` skips the first `start` frames as cheaply as the source allows."""

    name = "source"
    deterministic = False  # same frames in the same order on every run
    has_depth = False

    @abc.abstractmethod
    def frames(self, start: int = 0) -> Iterator[SourceFrame]: ...

    @property
    def frame_count(self) -> int | None:
        """How many frames `frames(0)` yields at most, when the source knows it up front (None: unknown / live).

        The capture checks it before any work, so a split that such a source can never reach is an error at once.
        """
        return None

    def describe(self) -> dict[str, object]:
        """Key facts for the dataset's config.txt."""
        return {"source": self.name}

    def close(self) -> None:
        return None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_crop(crop: Sequence[int] | str | None, width: int, height: int) -> tuple[int, int, int, int] | None:
    """'auto' = the original's crop for 4096x3072 colour, else none; or an explicit (x, y, w, h)."""
    if crop is None or crop == "none":
        return None
    if crop == "auto":
        return ORIGINAL_CROP_3072P if (width, height) == (4096, 3072) else None
    if isinstance(crop, str) or len(crop) != 4:
        raise ValueError(f"source.crop must be 'auto', null or [x, y, width, height], got {crop!r}")
    x, y, w, h = (int(v) for v in crop)
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
        raise ValueError(f"source.crop {list(crop)} is outside the {width}x{height} colour image")
    return x, y, w, h


class _RegisteredDepthSource(FrameSource):
    """Shared path of every depth source: register depth + IR into the colour camera and crop."""

    has_depth = True

    def _setup_registration(self, calibration: DeviceCalibration, crop: Sequence[int] | str | None) -> None:
        self.calibration = calibration
        self.crop = resolve_crop(crop, calibration.color.width, calibration.color.height)
        self.registration = DepthRegistration(calibration, self.crop)
        self.color_intrinsics = self.registration.color

    def _make_frame(
        self, index: int, color_rgb: np.ndarray, depth: np.ndarray, ir: np.ndarray, timestamp_us: int
    ) -> SourceFrame:
        registered_depth, registered_ir = self.registration.register(depth, ir)
        if self.crop is not None:
            x, y, w, h = self.crop
            color_rgb = color_rgb[y : y + h, x : x + w]
        return SourceFrame(
            index, np.ascontiguousarray(color_rgb), registered_depth, registered_ir, self.color_intrinsics, timestamp_us
        )

    def describe(self) -> dict[str, object]:
        c = self.color_intrinsics
        return {
            "source": self.name,
            "crop": list(self.crop) if self.crop else "none",
            "fx": c.fx, "fy": c.fy, "cx": c.cx, "cy": c.cy,
            "distortion_k1_k6_p1_p2": ",".join(f"{v:.8g}" for v in (*c.radial, *c.tangential)),
            "depth_registered_to": "colour",
        }  # fmt: skip


class MkvSource(_RegisteredDepthSource):
    """Playback of an Azure Kinect recording: through pyk4a (the SDK) when installed, else our PyAV reader."""

    name = "mkv"
    deterministic = True

    def __init__(
        self, path: str | os.PathLike, crop: Sequence[int] | str | None = "auto", backend: str = "auto"
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"source.path: recording {self.path} not found")
        if backend not in ("auto", "pyk4a", "pyav"):
            raise ValueError(f"source.backend must be auto, pyk4a or pyav, got {backend!r}")
        if backend == "auto":
            backend = "pyk4a" if _pyk4a_available() else "pyav"
        self.backend = backend
        if backend == "pyk4a":
            self._playback = _open_pyk4a_playback(self.path)
            calibration = _pyk4a_playback_calibration(self._playback, self.path)
        else:
            from src.capture.mkv import KinectRecordingReader

            self._reader = KinectRecordingReader(self.path)
            calibration = self._reader.calibration
        self._setup_registration(calibration, crop)

    def frames(self, start: int = 0) -> Iterator[SourceFrame]:
        captures = self._pyk4a_captures() if self.backend == "pyk4a" else iter(self._reader)
        for capture in captures:
            if capture.index < start:
                continue
            yield self._make_frame(capture.index, capture.color, capture.depth, capture.ir, capture.timestamp_us)

    def _pyk4a_captures(self) -> Iterator[Any]:
        from src.capture.mkv import KinectCapture

        self._playback.seek(0)
        index = 0
        while True:
            try:
                capture = self._playback.get_next_capture()
            except EOFError:
                return
            if capture.color is None or capture.depth is None or capture.ir is None:
                continue  # like synchronized_images_only
            color = capture.color
            if color.ndim == 1:  # MJPG bytes
                color = cv2.imdecode(color, cv2.IMREAD_COLOR)
                color = cv2.cvtColor(color, cv2.COLOR_BGR2RGB)
            else:  # BGRA32
                color = cv2.cvtColor(color, cv2.COLOR_BGRA2RGB)
            yield KinectCapture(index, int(capture.color_timestamp_usec), color, capture.depth, capture.ir)
            index += 1

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "recording": str(self.path), "reader": self.backend}

    def close(self) -> None:
        if self.backend == "pyk4a":
            self._playback.close()
        else:
            self._reader.close()


class KinectSource(_RegisteredDepthSource):
    """A live Azure Kinect through pyk4a, configured as the original (3072P BGRA32, NFOV unbinned, 15 fps)."""

    name = "kinect"
    deterministic = False

    def __init__(
        self,
        device_id: int = 0,
        color_resolution: str = "3072P",
        depth_mode: str = "NFOV_UNBINNED",
        fps: int = 15,
        crop: Sequence[int] | str | None = "auto",
        registration: str = "ours",
        max_frames: int | None = None,
    ) -> None:
        pyk4a = _import_pyk4a()
        if registration not in ("ours", "sdk"):
            raise ValueError(f"source.registration must be 'ours' or 'sdk', got {registration!r}")
        self.use_sdk_registration = registration == "sdk"
        self.max_frames = max_frames
        config = pyk4a.Config(
            color_resolution=getattr(pyk4a.ColorResolution, f"RES_{color_resolution.upper()}"),
            color_format=pyk4a.ImageFormat.COLOR_BGRA32,
            depth_mode=getattr(pyk4a.DepthMode, depth_mode.upper()),
            camera_fps=getattr(pyk4a.FPS, f"FPS_{int(fps)}"),
            synchronized_images_only=True,
        )
        self._device = pyk4a.PyK4A(config=config, device_id=device_id)
        self._device.start()
        calibration = DeviceCalibration.from_kinect_json(
            self._device.calibration_raw, color_resolution, depth_mode, source=f"Azure Kinect #{device_id}"
        )
        self._setup_registration(calibration, crop)

    def frames(self, start: int = 0) -> Iterator[SourceFrame]:
        index = start  # a live stream cannot replay: numbering continues where the last run stopped
        while self.max_frames is None or index < self.max_frames:
            capture = self._device.get_capture()
            color = cv2.cvtColor(capture.color, cv2.COLOR_BGRA2RGB)
            timestamp = int(capture.color_timestamp_usec)
            if not self.use_sdk_registration:
                yield self._make_frame(index, color, capture.depth, capture.ir, timestamp)
            else:
                depth, ir = capture.transformed_depth, capture.transformed_ir
                if self.crop is not None:
                    x, y, w, h = self.crop
                    color, depth, ir = (a[y : y + h, x : x + w] for a in (color, depth, ir))
                yield SourceFrame(index, np.ascontiguousarray(color), depth, ir, self.color_intrinsics, timestamp)
            index += 1

    @property
    def frame_count(self) -> int | None:
        return self.max_frames

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "registration": "sdk" if self.use_sdk_registration else "ours"}

    def close(self) -> None:
        self._device.stop()


class VideoSource(FrameSource):
    """A video file or a webcam (integer device index): colour only, no depth (RGB-only uses)."""

    name = "video"
    has_depth = False

    def __init__(self, path: str | int, max_frames: int | None = None, crop: Sequence[int] | None = None) -> None:
        self.path = path
        self.is_webcam = isinstance(path, int) or (isinstance(path, str) and path.isdigit())
        self.deterministic = not self.is_webcam
        if not self.is_webcam and not Path(str(path)).is_file():
            raise FileNotFoundError(f"source.path: video {path} not found")
        self._capture = cv2.VideoCapture(int(path) if self.is_webcam else str(path))
        if not self._capture.isOpened():
            what = "webcam" if self.is_webcam else "video (empty, truncated or in a format FFmpeg cannot read)"
            raise RecordingError(f"source.path: OpenCV cannot open {what} {path}")
        self.max_frames = max_frames
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.crop = resolve_crop(crop, width, height) if crop is not None else None

    def frames(self, start: int = 0) -> Iterator[SourceFrame]:
        index = 0 if self.deterministic else start
        if self.deterministic:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        while self.max_frames is None or index < self.max_frames:
            ok, bgr = self._capture.read()
            if not ok:
                return
            if index >= start:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                if self.crop is not None:
                    x, y, w, h = self.crop
                    rgb = rgb[y : y + h, x : x + w]
                yield SourceFrame(index, np.ascontiguousarray(rgb))
            index += 1

    @property
    def frame_count(self) -> int | None:
        return self.max_frames  # a file's own frame count (CAP_PROP_FRAME_COUNT) is an estimate for many codecs

    def describe(self) -> dict[str, object]:
        return {"source": self.name, "video": str(self.path), "crop": list(self.crop) if self.crop else "none"}

    def close(self) -> None:
        self._capture.release()


def _pyk4a_available() -> bool:
    try:
        import pyk4a  # noqa: F401
    except (ImportError, OSError):  # OSError: pyk4a installed but the SDK's shared library is missing
        return False
    return True


def _import_pyk4a() -> ModuleType:
    try:
        import pyk4a
    except ModuleNotFoundError as err:
        if err.name != "pyk4a":  # pyk4a is there but a module it imports is not: name that one
            raise KinectSDKMissingError(f"pyk4a cannot import {err.name!r}; {PYK4A_INSTALL_HINT}") from None
        raise KinectSDKMissingError(f"pyk4a is not installed; {PYK4A_INSTALL_HINT}") from None
    except (ImportError, OSError) as err:  # pyk4a is installed, the SDK's shared library (libk4a) is not loadable
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise KinectSDKMissingError(
            f"pyk4a cannot load the Azure Kinect SDK library ({reason}); {PYK4A_INSTALL_HINT}"
        ) from None
    return pyk4a


def _open_pyk4a_playback(path: Path) -> Any:  # pyk4a.PyK4APlayback
    pyk4a = _import_pyk4a()
    playback = pyk4a.PyK4APlayback(str(path))
    playback.open()
    return playback


def _pyk4a_playback_calibration(playback: Any, path: Path) -> DeviceCalibration:
    config = playback.configuration
    color_mode = getattr(config["color_resolution"], "name", str(config["color_resolution"])).removeprefix("RES_")
    depth_mode = getattr(config["depth_mode"], "name", str(config["depth_mode"]))
    return DeviceCalibration.from_kinect_json(
        playback.calibration_raw, color_mode, depth_mode, source=f"{path}:calibration"
    )
