"""Camera models in the project's conventions (OpenCV camera space: x right, y down, z forward, mm).

A camera maps world points (mm) to pixels: first the extrinsics `X_cam = R @ X_world + t`, then the
projection. Pixel centres sit at integer coordinates (OpenCV). Both cameras expose the same small
interface (`to_camera`, `project_camera`, `project`, `width`, `height`) so the rasteriser, the landmark
projection and the renderers take either one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# Azure Kinect colour camera at 3072P (4096x3072): typical factory intrinsics (fx, fy about 1950 px at 4096 px
# width, principal point near the centre). We keep the ratios and scale them to the requested image size.
KINECT_3072P_SIZE = (4096, 3072)
KINECT_3072P_FX = 1955.0
KINECT_3072P_FY = 1954.0
KINECT_3072P_CX = 2044.0
KINECT_3072P_CY = 1557.0


def _check_size(width: int, height: int) -> None:
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"camera image size must be positive, got width={width}, height={height}")


def _check_extrinsics(rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    R = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64).reshape(-1)
    if R.shape != (3, 3):
        raise ValueError(f"camera rotation must be 3x3, got shape {R.shape}")
    if t.shape != (3,):
        raise ValueError(f"camera translation must have 3 values, got shape {t.shape}")
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError("camera rotation is not a proper rotation matrix (R R^T != I or det < 0)")
    return R, t


class _PosedCamera:
    """What both cameras share: validated extrinsics and the world -> camera -> pixel chain around each
    camera's own `project_camera`. Subclasses are frozen dataclasses with width, height, rotation, translation."""

    width: int
    height: int
    rotation: np.ndarray
    translation: np.ndarray

    def _freeze_checked_extrinsics_and_size(self) -> None:
        """Store rotation / translation as validated float64 arrays and the size as ints (frozen dataclass)."""
        R, t = _check_extrinsics(self.rotation, self.translation)
        object.__setattr__(self, "rotation", R)
        object.__setattr__(self, "translation", t)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return -self.rotation.T @ self.translation

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """World (N,3) mm -> camera space (N,3) mm."""
        return np.asarray(points_world, dtype=np.float64) @ self.rotation.T + self.translation

    def project_camera(self, points_cam: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """World (N,3) -> (N,2) pixels."""
        return self.project_camera(self.to_camera(points_world))[:, :2]


@dataclass(frozen=True)
class PinholeCamera(_PosedCamera):
    """Perspective camera: u = fx * x / z + cx, v = fy * y / z + cy (camera-space mm, z > 0 in front)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        _check_size(self.width, self.height)
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        self._freeze_checked_extrinsics_and_size()

    is_orthographic = False

    @classmethod
    def kinect_color(cls, width: int, height: int) -> PinholeCamera:
        """Azure-Kinect-3072P-like colour intrinsics scaled to (width, height).

        The horizontal and vertical scales are applied separately, so a different aspect ratio keeps the
        field of view of each axis (fx ~ 0.477 * width, fy ~ 0.636 * height).
        """
        full = cls(
            fx=KINECT_3072P_FX,
            fy=KINECT_3072P_FY,
            cx=KINECT_3072P_CX,
            cy=KINECT_3072P_CY,
            width=KINECT_3072P_SIZE[0],
            height=KINECT_3072P_SIZE[1],
        )
        return full.with_size(width, height)

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 intrinsic matrix K (OpenCV)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project_camera(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-space (N,3) -> (N,3): pixel x, pixel y and depth z (mm)."""
        p = np.asarray(points_cam, dtype=np.float64)
        z = p[:, 2]
        safe = np.where(np.abs(z) > 1e-9, z, 1e-9)
        return np.stack([self.fx * p[:, 0] / safe + self.cx, self.fy * p[:, 1] / safe + self.cy, z], axis=1)

    def unproject(self, pixels: np.ndarray, depth_mm: np.ndarray) -> np.ndarray:
        """Pixels (N,2) with depths z (N,) -> camera-space points (N,3)."""
        px = np.asarray(pixels, dtype=np.float64)
        z = np.asarray(depth_mm, dtype=np.float64)
        return np.stack([(px[:, 0] - self.cx) * z / self.fx, (px[:, 1] - self.cy) * z / self.fy, z], axis=1)

    def view_directions(self, points_cam: np.ndarray) -> np.ndarray:
        """Unit vectors from each camera-space point towards the camera centre."""
        p = np.asarray(points_cam, dtype=np.float64)
        return -p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-9)

    def with_size(self, width: int, height: int) -> PinholeCamera:
        """The same field of view at another image size."""
        _check_size(width, height)
        sx, sy = width / self.width, height / self.height
        # Pixel-centre convention: continuous coordinate c maps to (c + 0.5) * s - 0.5.
        return replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )

    def with_extrinsics(self, rotation: np.ndarray, translation: np.ndarray) -> PinholeCamera:
        return replace(self, rotation=np.asarray(rotation, float), translation=np.asarray(translation, float))


@dataclass(frozen=True)
class OrthographicCamera(_PosedCamera):
    """Orthographic camera: u = scale * x + cx, v = scale * y + cy; depth is camera-space z (mm).

    `scale` is pixels per mm. Used for the NMFC image (Head2Head fits an orthographic camera).
    """

    scale: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    is_orthographic = True

    def __post_init__(self) -> None:
        _check_size(self.width, self.height)
        if not self.scale > 0:
            raise ValueError(f"orthographic scale must be positive, got {self.scale}")
        self._freeze_checked_extrinsics_and_size()

    @classmethod
    def matching(cls, camera: PinholeCamera, depth_mm: float) -> OrthographicCamera:
        """The weak-perspective twin of a pinhole camera at a reference depth (same pixels at that depth)."""
        if not depth_mm > 0:
            raise ValueError(f"reference depth must be positive, got {depth_mm}")
        return cls(
            scale=camera.fx / depth_mm,
            cx=camera.cx,
            cy=camera.cy,
            width=camera.width,
            height=camera.height,
            rotation=camera.rotation,
            translation=camera.translation,
        )

    def project_camera(self, points_cam: np.ndarray) -> np.ndarray:
        p = np.asarray(points_cam, dtype=np.float64)
        return np.stack([self.scale * p[:, 0] + self.cx, self.scale * p[:, 1] + self.cy, p[:, 2]], axis=1)

    def unproject(self, pixels: np.ndarray, depth_mm: np.ndarray) -> np.ndarray:
        px = np.asarray(pixels, dtype=np.float64)
        z = np.asarray(depth_mm, dtype=np.float64)
        return np.stack([(px[:, 0] - self.cx) / self.scale, (px[:, 1] - self.cy) / self.scale, z], axis=1)

    def view_directions(self, points_cam: np.ndarray) -> np.ndarray:
        p = np.asarray(points_cam, dtype=np.float64)
        out = np.zeros_like(p)
        out[..., 2] = -1.0
        return out


Camera = PinholeCamera | OrthographicCamera
