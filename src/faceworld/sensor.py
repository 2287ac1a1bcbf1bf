"""A Kinect-like (Azure Kinect NFOV) depth / IR sensor model applied to FaceWorld's true depth.

What real time-of-flight depth gets wrong on faces, reproduced so converters and models meet it in tests:
- noise whose standard deviation grows with distance (sigma = base + quadratic * z^2),
- holes where the surface is seen at a grazing angle (the normal, estimated from the depth map itself, turns
  away from the viewing ray), where the IR return is too dark, on hair (in blobs, as scattered returns),
- flying pixels removed at depth edges (a band around every depth discontinuity becomes 0),
- 1 mm quantisation (uint16 mm, 0 = no data), and shot noise on the IR image.
Deterministic: the same seed and frame_index give the same output.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from src.faceworld.appearance import LABEL_HAIR
from src.geometry.camera import OrthographicCamera, PinholeCamera


@dataclass
class KinectSensorModel:
    """Parameters of the sensor model; `apply` turns true depth (mm) into sensor-like uint16 depth + IR."""

    seed: int = 0
    noise_base_mm: float = 0.4
    noise_quadratic_per_m2: float = 1.2  # sigma grows by this many mm per square metre of distance
    grazing_start_deg: float = 70.0  # holes start appearing beyond this angle, certain from grazing_end_deg
    grazing_end_deg: float = 82.0
    dark_ir_level: float = 120.0  # IR returns below this are unreliable
    hair_hole_fraction: float = 0.45
    edge_jump_mm: float = 12.0
    edge_band_px: int = 1

    def apply(
        self,
        frame_or_depth: dict[str, np.ndarray] | np.ndarray,
        *,
        camera: PinholeCamera | OrthographicCamera | None = None,
        ir: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        normals: np.ndarray | None = None,
        albedo: np.ndarray | None = None,
        frame_index: int = 0,
    ) -> dict[str, np.ndarray]:
        """Sensor output for one frame: {"depth": uint16 mm, "ir": uint16 (if IR given), "valid": bool}.

        `frame_or_depth` is a render dict (uses depth_mm, and ir / mask when present) or a float depth map in
        mm (0 = no surface). `camera` gives the focal length for the grazing-angle test (default: 0.5 * width
        pixels, a wide-angle guess).
        """
        if isinstance(frame_or_depth, dict):
            if "depth_mm" not in frame_or_depth:
                raise ValueError("sensor model needs a render with the 'depth' modality (key 'depth_mm')")
            depth = np.asarray(frame_or_depth["depth_mm"], dtype=np.float32)
            ir = frame_or_depth.get("ir") if ir is None else ir
            mask = frame_or_depth.get("mask") if mask is None else mask
        else:
            depth = np.asarray(frame_or_depth, dtype=np.float32)
        if depth.ndim != 2 or depth.size == 0:
            raise ValueError(f"depth must be a non-empty (H, W) map, got shape {depth.shape}")
        h, w = depth.shape
        rng = np.random.default_rng([int(self.seed), int(frame_index), 31337])
        valid = depth > 0

        focal = 0.5 * w if camera is None else (camera.fx if not camera.is_orthographic else None)
        if normals is not None:
            n = np.asarray(normals, dtype=np.float32)
            if n.shape != (h, w, 3):
                raise ValueError(f"normals must have shape ({h}, {w}, 3), got {n.shape}")
            angle = np.degrees(np.arccos(np.clip(-n[..., 2], -1.0, 1.0)))
        else:
            angle = self._view_angle_deg(depth, focal)
        grazing = (angle - self.grazing_start_deg) / max(self.grazing_end_deg - self.grazing_start_deg, 1e-3)
        holes = rng.random((h, w)) < np.clip(grazing, 0.0, 1.0)
        if ir is not None:
            dark = np.asarray(ir, dtype=np.float32) < self.dark_ir_level
            holes |= dark & (rng.random((h, w)) < 0.85)
        elif albedo is not None:
            a = np.asarray(albedo, dtype=np.float32)
            a = a / 255.0 if a.max() > 1.0 else a
            luminance = a.mean(axis=-1) if a.ndim == 3 else a
            holes |= (luminance < 0.06) & (rng.random((h, w)) < 0.85)
        if mask is not None:
            blobs = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 2.0)
            cut = np.quantile(blobs, self.hair_hole_fraction)
            holes |= (np.asarray(mask) == LABEL_HAIR) & (blobs < cut)
        holes |= self._edge_band(depth)

        z_m = depth / 1000.0
        sigma = self.noise_base_mm + self.noise_quadratic_per_m2 * z_m * z_m
        noisy = depth + rng.standard_normal((h, w)).astype(np.float32) * sigma
        keep = valid & ~holes
        out_depth = np.where(keep, np.clip(np.round(noisy), 1, 65535), 0).astype(np.uint16)
        result = {"depth": out_depth, "valid": keep}
        if ir is not None:
            ir_f = np.asarray(ir, dtype=np.float32)
            shot = rng.standard_normal((h, w)).astype(np.float32) * np.sqrt(np.maximum(ir_f, 0.0)) * 0.8
            result["ir"] = np.clip(np.round(ir_f + shot + rng.uniform(0, 6, (h, w))), 0, 65535).astype(np.uint16)
        return result

    @staticmethod
    def _view_angle_deg(depth: np.ndarray, focal: float | None) -> np.ndarray:
        """Angle between the surface normal (from depth gradients) and the viewing ray, in degrees."""
        d = depth.astype(np.float32)
        gx = cv2.Sobel(d, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(d, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        # mm of depth per mm sideways: a pixel spans z / f mm at depth z (orthographic: treat as 1 mm).
        mm_per_px = d / focal if focal else np.ones_like(d)
        slope = np.hypot(gx, gy) / np.maximum(mm_per_px, 1e-6)
        angle = np.degrees(np.arctan(slope))
        return np.where(d > 0, angle, 0.0)

    def _edge_band(self, depth: np.ndarray) -> np.ndarray:
        """Pixels next to a depth discontinuity (including the surface / background boundary)."""
        d = depth.astype(np.float32)
        k = np.ones((3, 3), np.uint8)
        big = np.where(d > 0, d, 1e6).astype(np.float32)
        local_max = cv2.dilate(np.where(d > 0, d, 0).astype(np.float32), k)
        local_min = cv2.erode(big, k)
        jump = (local_max - local_min) > self.edge_jump_mm
        band = (
            cv2.dilate(jump.astype(np.uint8), np.ones((2 * self.edge_band_px - 1, 2 * self.edge_band_px - 1), np.uint8))
            if self.edge_band_px > 1
            else jump
        )
        return band.astype(bool) & (d > 0)
