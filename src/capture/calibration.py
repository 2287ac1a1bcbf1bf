"""Azure Kinect device calibration: Brown-Conrady lenses, depth -> colour extrinsics, the raw JSON format.

The lens model is the SDK's (and OpenCV's rational model): with x, y the normalised image-plane coordinates,
r2 = x^2 + y^2,
    d  = (1 + k1 r2 + k2 r2^2 + k3 r2^3) / (1 + k4 r2 + k5 r2^2 + k6 r2^3)
    xd = x d + (r2 + 2 x^2) p2 + 2 x y p1,    yd = y d + (r2 + 2 y^2) p1 + 2 x y p2
    u  = fx xd + cx,                          v  = fy yd + cy
and a point is projectable only while r2 <= metric_radius^2 (outside that the polynomial folds back).
Intrinsics here are per capture mode, in pixels, with pixel centres at integers (OpenCV, as the SDK hands
them out). The device stores them normalised over the full sensor with (0, 0) at the corner of the first
pixel; `from_kinect_json` / `to_kinect_json` convert with the SDK's mode table (crop offsets, binning).
Extrinsics: x_colour = R x_depth + t, t in mm (the file stores metres).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from src.geometry.camera import PinholeCamera

# Capture modes: name -> (sensor resolution the calibration is normalised over, crop offset, output size).
# Values from the Azure Kinect SDK's mode-specific calibration (depth sensor 1024x1024, colour 4096x3072).
DEPTH_MODES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "NFOV_2X2BINNED": ((512, 512), (96, 90), (320, 288)),
    "NFOV_UNBINNED": ((1024, 1024), (192, 180), (640, 576)),
    "WFOV_2X2BINNED": ((512, 512), (0, 0), (512, 512)),
    "WFOV_UNBINNED": ((1024, 1024), (0, 0), (1024, 1024)),
    "PASSIVE_IR": ((1024, 1024), (0, 0), (1024, 1024)),
}
COLOR_MODES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "720P": ((1280, 960), (0, 120), (1280, 720)),
    "1080P": ((1920, 1440), (0, 180), (1920, 1080)),
    "1440P": ((2560, 1920), (0, 240), (2560, 1440)),
    "1536P": ((2048, 1536), (0, 0), (2048, 1536)),
    "2160P": ((3840, 2880), (0, 360), (3840, 2160)),
    "3072P": ((4096, 3072), (0, 0), (4096, 3072)),
}
COLOR_FORMATS = ("MJPG", "BGRA", "BGRA32", "NV12", "YUY2")
DEPTH_SENSOR_SIZE = (1024, 1024)
COLOR_SENSOR_SIZE = (4096, 3072)
CUSTOM_MODE = "CUSTOM"  # our own small test recordings: intrinsics normalised over the image itself

BROWN_CONRADY = "CALIBRATION_LensDistortionModelBrownConrady"
DEPTH_LOCATION = "CALIBRATION_CameraLocationD0"
COLOR_LOCATION = "CALIBRATION_CameraLocationPV0"


@dataclass(frozen=True)
class CameraIntrinsics:
    """One camera in one capture mode: size, pinhole part (pixels) and Brown-Conrady distortion."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    radial: tuple[float, float, float, float, float, float] = (0.0,) * 6  # k1..k6
    tangential: tuple[float, float] = (0.0, 0.0)  # p1, p2
    metric_radius: float = 1.7  # the SDK's default when a calibration does not estimate it (~120 degrees)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if len(self.radial) != 6 or len(self.tangential) != 2:
            raise ValueError("distortion needs 6 radial (k1..k6) and 2 tangential (p1, p2) coefficients")
        object.__setattr__(self, "radial", tuple(float(k) for k in self.radial))
        object.__setattr__(self, "tangential", tuple(float(p) for p in self.tangential))

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def opencv_distortion(self) -> np.ndarray:
        """The same model in OpenCV's coefficient order (k1, k2, p1, p2, k3, k4, k5, k6)."""
        k1, k2, k3, k4, k5, k6 = self.radial
        p1, p2 = self.tangential
        return np.array([k1, k2, p1, p2, k3, k4, k5, k6], dtype=np.float64)

    @property
    def has_distortion(self) -> bool:
        return any(self.radial) or any(self.tangential)

    def distort(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised undistorted (N, 2) -> normalised distorted (N, 2), and validity (inside metric radius)."""
        x, y = xy[..., 0], xy[..., 1]
        k1, k2, k3, k4, k5, k6 = self.radial
        p1, p2 = self.tangential
        r2 = x * x + y * y
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + (r2 + 2 * x * x) * p2 + 2 * x * y * p1
        yd = y * radial + (r2 + 2 * y * y) * p1 + 2 * x * y * p2
        return np.stack([xd, yd], axis=-1), r2 <= self.metric_radius**2

    def _distort_jacobian(self, xy: np.ndarray) -> np.ndarray:
        """d(xd, yd) / d(x, y) as (N, 2, 2), for the Newton inversion."""
        x, y = xy[..., 0], xy[..., 1]
        k1, k2, k3, k4, k5, k6 = self.radial
        p1, p2 = self.tangential
        r2 = x * x + y * y
        a = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        b = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
        d = a / b
        da = k1 + r2 * (2 * k2 + 3 * k3 * r2)
        db = k4 + r2 * (2 * k5 + 3 * k6 * r2)
        dd_dr2 = (da * b - a * db) / (b * b)
        jac = np.empty((*xy.shape[:-1], 2, 2))
        jac[..., 0, 0] = d + 2 * x * x * dd_dr2 + 6 * x * p2 + 2 * y * p1
        jac[..., 0, 1] = 2 * x * y * dd_dr2 + 2 * y * p2 + 2 * x * p1
        jac[..., 1, 0] = 2 * x * y * dd_dr2 + 2 * x * p1 + 2 * y * p2
        jac[..., 1, 1] = d + 2 * y * y * dd_dr2 + 6 * y * p1 + 2 * x * p2
        return jac

    def undistort(self, xy_distorted: np.ndarray, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Invert `distort` by Newton's method (vectorised); valid where it converged inside the metric radius."""
        target = np.asarray(xy_distorted, dtype=np.float64)
        if not self.has_distortion:
            return target.copy(), np.ones(target.shape[:-1], dtype=bool)
        xy = target.copy()
        for _ in range(iterations):
            current, _ = self.distort(xy)
            residual = target - current
            step = np.linalg.solve(self._distort_jacobian(xy), residual[..., None])[..., 0]
            xy += step
            if np.nanmax(np.abs(step)) < 1e-12:
                break
        reprojected, inside = self.distort(xy)
        error_px = np.hypot(
            (reprojected[..., 0] - target[..., 0]) * self.fx, (reprojected[..., 1] - target[..., 1]) * self.fy
        )
        return xy, inside & (error_px < 1e-3) & np.all(np.isfinite(xy), axis=-1)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space points (N, 3) mm -> pixels (N, 2) and validity (in front, inside the metric radius)."""
        p = np.asarray(points, dtype=np.float64)
        z = p[..., 2]
        in_front = z > 0
        safe_z = np.where(in_front, z, 1.0)
        xy = p[..., :2] / safe_z[..., None]
        xyd, inside = self.distort(xy)
        uv = np.stack([xyd[..., 0] * self.fx + self.cx, xyd[..., 1] * self.fy + self.cy], axis=-1)
        return uv, in_front & inside

    def pixel_rays(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) -> undistorted normalised rays (N, 2) (x/z, y/z) and validity."""
        uv = np.asarray(uv, dtype=np.float64)
        xyd = np.stack([(uv[..., 0] - self.cx) / self.fx, (uv[..., 1] - self.cy) / self.fy], axis=-1)
        return self.undistort(xyd)

    def unproject(self, uv: np.ndarray, depth_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) + depth (N,) (z, mm) -> camera-space points (N, 3) and validity (depth > 0, ray found)."""
        rays, valid = self.pixel_rays(uv)
        z = np.asarray(depth_mm, dtype=np.float64)
        points = np.concatenate([rays * z[..., None], z[..., None]], axis=-1)
        return points, valid & (z > 0)

    def cropped(self, x: int, y: int, width: int, height: int) -> CameraIntrinsics:
        """The intrinsics of the sub-image [x, x + width) x [y, y + height)."""
        if x < 0 or y < 0 or width <= 0 or height <= 0 or x + width > self.width or y + height > self.height:
            raise ValueError(
                f"crop (x={x}, y={y}, w={width}, h={height}) is outside the {self.width}x{self.height} image"
            )
        return replace(self, width=width, height=height, cx=self.cx - x, cy=self.cy - y)

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """The intrinsics after resizing the image to (width, height) (pixel-centre convention kept)."""
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            width=width,
            height=height,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
        )

    def to_pinhole(self, rotation: np.ndarray | None = None, translation: np.ndarray | None = None) -> PinholeCamera:
        """The undistorted part as a FaceWorld PinholeCamera (for rendering scenes with this camera's geometry)."""
        return PinholeCamera(
            self.fx, self.fy, self.cx, self.cy, self.width, self.height,
            rotation=np.eye(3) if rotation is None else rotation,
            translation=np.zeros(3) if translation is None else translation,
        )  # fmt: skip


@dataclass(frozen=True)
class DeviceCalibration:
    """Both cameras of one device in one capture configuration, and the depth -> colour rigid transform."""

    color: CameraIntrinsics
    depth: CameraIntrinsics
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # depth -> colour
    translation_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    color_mode: str = CUSTOM_MODE
    depth_mode: str = CUSTOM_MODE

    def __post_init__(self) -> None:
        R = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(self.translation_mm, dtype=np.float64).reshape(3)
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
            raise ValueError("depth -> colour rotation is not a proper rotation matrix")
        object.__setattr__(self, "rotation", R)
        object.__setattr__(self, "translation_mm", t)

    def depth_to_color(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation_mm

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceCalibration):
            return NotImplemented
        return (
            self.color == other.color
            and self.depth == other.depth
            and np.array_equal(self.rotation, other.rotation)
            and np.array_equal(self.translation_mm, other.translation_mm)
            and (self.color_mode, self.depth_mode) == (other.color_mode, other.depth_mode)
        )

    __hash__ = None  # type: ignore[assignment]

    def allclose(self, other: DeviceCalibration, tolerance: float = 1e-9) -> bool:
        """Equal up to float round-off (a JSON round trip divides and multiplies by the sensor size)."""

        def numbers(cal: DeviceCalibration) -> np.ndarray:
            cams = [
                (c.width, c.height, c.fx, c.fy, c.cx, c.cy, *c.radial, *c.tangential, c.metric_radius)
                for c in (cal.color, cal.depth)
            ]
            return np.concatenate([np.ravel(cams), cal.rotation.ravel(), cal.translation_mm])

        same_modes = (self.color_mode, self.depth_mode) == (other.color_mode, other.depth_mode)
        return same_modes and np.allclose(numbers(self), numbers(other), rtol=tolerance, atol=tolerance)

    # --- the device's raw calibration.json (the recorder's attachment) ---------------------------------
    def to_kinect_json(self) -> str:
        """The raw calibration as the device stores it (and the recorder attaches as calibration.json)."""
        depth = (DEPTH_MODES, DEPTH_SENSOR_SIZE, DEPTH_LOCATION, "CALIBRATION_CameraPurposeDepth")
        color = (COLOR_MODES, COLOR_SENSOR_SIZE, COLOR_LOCATION, "CALIBRATION_CameraPurposePhotoVideo")
        # The depth camera is the device's reference frame; the colour camera's Rt maps depth -> colour.
        cameras = [
            _camera_json(self.depth, self.depth_mode, *depth, np.eye(3), np.zeros(3)),
            _camera_json(self.color, self.color_mode, *color, self.rotation, self.translation_mm),
        ]
        # The SDK also parses IMU entries; an ideal (identity, bias-free) IMU keeps the file loadable by it.
        imus = [_ideal_imu_json(kind) for kind in ("Gyro", "Accelerometer")]
        document = {
            "CalibrationInformation": {
                "Cameras": cameras,
                "InertialSensors": imus,
                "Metadata": {"SerialId": "", "FactoryCalDate": "", "Version": {"Major": 1, "Minor": 2}},
            }
        }
        return json.dumps(document, indent=1)

    @classmethod
    def from_kinect_json(
        cls, text: str | bytes, color_mode: str, depth_mode: str, source: str = "calibration.json"
    ) -> DeviceCalibration:
        """Parse the raw calibration for the given capture modes (e.g. '3072P', 'NFOV_UNBINNED')."""
        try:
            info = json.loads(text)["CalibrationInformation"]
            by_location = {camera["Location"]: camera for camera in info["Cameras"]}
            depth_json, color_json = by_location[DEPTH_LOCATION], by_location[COLOR_LOCATION]
            depth = _camera_from_json(depth_json, depth_mode, DEPTH_MODES)
            color = _camera_from_json(color_json, color_mode, COLOR_MODES)
            R_d, t_d = _rt_from_json(depth_json)
            R_c, t_c = _rt_from_json(color_json)
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise ValueError(f"{source}: not an Azure Kinect calibration ({type(err).__name__}: {err})") from None
        # Each camera's Rt maps the device reference frame into that camera; depth -> colour composes them.
        rotation = R_c @ R_d.T
        translation = t_c - rotation @ t_d
        return cls(color, depth, rotation, translation, color_mode.upper(), depth_mode.upper())


def _mode_geometry(
    mode: str, table: dict, intrinsics_or_json_size: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    # The recorder tags colour modes with their pixel format ("MJPG_3072P", "BGRA_720P", "NV12_720P", "YUY2_720P").
    key = mode.upper()
    prefix, _, rest = key.partition("_")
    if prefix in COLOR_FORMATS and rest:
        key = rest
    if key in table:
        return table[key]
    if key == CUSTOM_MODE:
        size = intrinsics_or_json_size
        return size, (0, 0), size
    raise ValueError(f"unknown capture mode {mode!r}: use one of {sorted(table)} or {CUSTOM_MODE!r}")


def _camera_json(
    cam: CameraIntrinsics,
    mode: str,
    table: dict,
    sensor: tuple[int, int],
    location: str,
    purpose: str,
    R: np.ndarray,
    t_mm: np.ndarray,
) -> dict:
    (bw, bh), (ox, oy), out = _mode_geometry(mode, table, (cam.width, cam.height))
    if out != (cam.width, cam.height):
        raise ValueError(f"{location}: mode {mode} outputs {out[0]}x{out[1]}, intrinsics are {cam.width}x{cam.height}")
    k1, k2, k3, k4, k5, k6 = cam.radial
    p1, p2 = cam.tangential
    # pixel-centred, mode-specific -> corner-origin, normalised over the (binned) sensor: the inverse of the SDK
    params = [
        (cam.cx + 0.5 + ox) / bw,
        (cam.cy + 0.5 + oy) / bh,
        cam.fx / bw,
        cam.fy / bh,
        k1,
        k2,
        k3,
        k4,
        k5,
        k6,
        0.0,
        0.0,
        p2,
        p1,
    ]
    sensor_w, sensor_h = (bw, bh) if mode.upper() == CUSTOM_MODE else sensor
    return {
        "Intrinsics": {"ModelParameterCount": 14, "ModelParameters": params, "ModelType": BROWN_CONRADY},
        "Location": location,
        "Purpose": purpose,
        "MetricRadius": cam.metric_radius,
        "Rt": {"Rotation": [float(v) for v in np.asarray(R).ravel()], "Translation": [float(v) / 1000.0 for v in t_mm]},
        "SensorHeight": sensor_h,
        "SensorWidth": sensor_w,
        "Shutter": "CALIBRATION_ShutterTypeUndefined",
        "ThermalAdjustmentParams": {"Params": [0.0] * 12},
    }


def _camera_from_json(camera: dict, mode: str, table: dict) -> CameraIntrinsics:
    intrinsics = camera["Intrinsics"]
    if intrinsics["ModelType"] != BROWN_CONRADY:
        raise ValueError(f"lens model {intrinsics['ModelType']} is not supported (only {BROWN_CONRADY})")
    p = [float(v) for v in intrinsics["ModelParameters"]]
    if len(p) < 14:
        raise ValueError(f"expected 14 lens parameters, got {len(p)}")
    (bw, bh), (ox, oy), (width, height) = _mode_geometry(
        mode, table, (int(camera["SensorWidth"]), int(camera["SensorHeight"]))
    )
    metric_radius = float(camera.get("MetricRadius", 0.0))
    return CameraIntrinsics(
        width=width, height=height,
        fx=p[2] * bw, fy=p[3] * bh, cx=p[0] * bw - ox - 0.5, cy=p[1] * bh - oy - 0.5,
        radial=tuple(p[4:10]), tangential=(p[13], p[12]),
        metric_radius=metric_radius if metric_radius > 1e-4 else 1.7,
    )  # fmt: skip


def _rt_from_json(camera: dict) -> tuple[np.ndarray, np.ndarray]:
    rt = camera["Rt"]
    R = np.asarray(rt["Rotation"], dtype=np.float64).reshape(3, 3)
    t = np.asarray(rt["Translation"], dtype=np.float64).reshape(3) * 1000.0
    return R, t


def _ideal_imu_json(kind: str) -> dict:
    return {
        "BiasTemperatureModel": [0.0] * 12,
        "BiasUncertainty": [0.0] * 3,
        "Id": f"CALIBRATION_InertialSensorId_{'LSM6DSM'}",
        "MixingMatrixTemperatureModel": [
            1.0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1.0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1.0,
            0,
            0,
            0,
        ],
        "ModelTypeMask": 16,
        "Noise": [0.0] * 6,
        "Rt": {"Rotation": [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], "Translation": [0.0, 0.0, 0.0]},
        "SecondOrderScaling": [0.0] * 9,
        "SensorType": f"CALIBRATION_InertialSensorType_{kind}",
        "TemperatureBounds": [5.0, 60.0],
        "TemperatureC": 0.0,
    }


def kinect_like_calibration(
    color_size: tuple[int, int] = (4096, 3072), depth_size: tuple[int, int] = (640, 576), distortion: bool = True
) -> DeviceCalibration:
    """A plausible Azure Kinect calibration scaled to the given sizes (for FaceWorld sources and tests).

    Numbers are typical of retail devices: depth NFOV fx ~ 504 px at 640 px, colour fx ~ 1955 px at 4096 px,
    colour camera ~32 mm to the side of and ~2 mm below the depth camera, tilted by ~6 degrees.
    """
    cw, ch = color_size
    dw, dh = depth_size
    color = CameraIntrinsics(
        cw, ch, 1955.0 * cw / 4096, 1954.0 * ch / 3072,
        (2044.0 + 0.5) * cw / 4096 - 0.5, (1557.0 + 0.5) * ch / 3072 - 0.5,
        radial=(0.45, -2.6, 1.5, 0.33, -2.45, 1.43) if distortion else (0.0,) * 6,
        tangential=(0.0007, -0.0002) if distortion else (0.0, 0.0),
    )  # fmt: skip
    depth = CameraIntrinsics(
        dw, dh, 504.0 * dw / 640, 504.0 * dh / 576, (322.0 + 0.5) * dw / 640 - 0.5, (330.0 + 0.5) * dh / 576 - 0.5,
        radial=(3.13, 2.32, 0.13, 3.46, 3.35, 0.66) if distortion else (0.0,) * 6,
        tangential=(0.00008, -0.00005) if distortion else (0.0, 0.0),
    )  # fmt: skip
    angle = np.deg2rad(6.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    return DeviceCalibration(color, depth, rotation, np.array([-32.0, -2.0, 4.0]))
