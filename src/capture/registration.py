"""Register a depth image (and its IR) into the colour camera with the device calibration, in numpy.

Each depth pixel is a small surface patch. We unproject it (undistorted ray x depth), move it into the
colour camera, and project it with the colour lens model. Its footprint in the colour image is the
parallelogram spanned by the projected half-steps to its neighbours (central differences, one-sided next
to holes and depth jumps, and a fronto-parallel patch when it has no usable neighbour); every colour pixel
centre inside the footprint gets the patch's depth *interpolated linearly* across the patch, so the result is
piecewise linear and crack-free on smooth surfaces instead of blocky. Where patches overlap (occlusion) the
nearest one wins (z-buffer); colour pixels no patch reaches stay 0 (no data), as the SDK's output does.

The per-pixel rays of the depth camera are computed once per calibration (the expensive undistortion).
"""

from __future__ import annotations

import numpy as np

from src.capture.calibration import DeviceCalibration

# Neighbours whose depths differ by more than this fraction of the depth are on another surface.
DEPTH_JUMP_FRACTION = 0.03
_Z_UNITS_PER_MM = 256  # z-buffer resolution (1/256 mm) in the packed 64-bit key
_CANDIDATES_PER_CHUNK = 2_000_000  # bounds the temporary arrays (~100 MB) at full Kinect resolution
_CORNERS = ((1, 1), (1, -1), (-1, 1), (-1, -1))


class DepthRegistration:
    """Depth (and IR) in the depth camera -> the same in the colour camera, for one calibration."""

    def __init__(self, calibration: DeviceCalibration, color_crop: tuple[int, int, int, int] | None = None) -> None:
        """`color_crop` = (x, y, width, height): produce only that part of the colour image (the capture crop)."""
        self.calibration = calibration
        depth = calibration.depth
        self.color = calibration.color if color_crop is None else calibration.color.cropped(*color_crop)
        v, u = np.mgrid[0 : depth.height, 0 : depth.width]
        rays, valid = depth.pixel_rays(np.stack([u, v], axis=-1).reshape(-1, 2).astype(np.float64))
        self._rays = rays.reshape(depth.height, depth.width, 2)
        self._ray_valid = valid.reshape(depth.height, depth.width)
        # Rays half a pixel to the right of / below each pixel centre, for patches without usable neighbours.
        grid = np.stack([u, v], axis=-1).reshape(-1, 2).astype(np.float64)
        self._half_rays_x = depth.pixel_rays(grid + np.array([0.5, 0.0]))[0].reshape(depth.height, depth.width, 2)
        self._half_rays_y = depth.pixel_rays(grid + np.array([0.0, 0.5]))[0].reshape(depth.height, depth.width, 2)

    def register(self, depth_mm: np.ndarray, ir: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(H_d, W_d) uint16 depth (0 = none) [+ IR] -> (H_c, W_c) uint16 depth [+ IR] in the colour camera."""
        depth_cam = self.calibration.depth
        depth_mm = np.asarray(depth_mm)
        if depth_mm.shape != (depth_cam.height, depth_cam.width):
            raise ValueError(
                f"depth image is {depth_mm.shape[1]}x{depth_mm.shape[0]}, "
                f"calibration expects {depth_cam.width}x{depth_cam.height}"
            )
        if ir is not None and np.shape(ir) != depth_mm.shape:
            raise ValueError(f"IR image shape {np.shape(ir)} differs from the depth image shape {depth_mm.shape}")
        z = depth_mm.astype(np.float64)
        valid = (z > 0) & self._ray_valid
        points = np.concatenate([self._rays * z[..., None], z[..., None]], axis=-1)
        points = self.calibration.depth_to_color(points)
        uv, projectable = self.color.project(points)
        valid &= projectable
        zc = points[..., 2]
        # Values at each pixel: colour-image position (u, v) and colour-camera depth zc -> (H, W, 3)
        values = np.concatenate([uv, zc[..., None]], axis=-1)
        step_x = _half_step(values, valid, z, axis=1)
        step_y = _half_step(values, valid, z, axis=0)
        sources = np.flatnonzero(valid.ravel())
        centre = values.reshape(-1, 3)[sources]
        step_x, step_y = step_x.reshape(-1, 3)[sources], step_y.reshape(-1, 3)[sources]
        missing_x, missing_y = ~np.isfinite(step_x[:, 0]), ~np.isfinite(step_y[:, 0])
        if (missing_x | missing_y).any():
            lonely = np.flatnonzero(missing_x | missing_y)
            flat_x, flat_y = self._fronto_parallel_steps(z, sources[lonely])
            step_x[lonely] = np.where(missing_x[lonely, None], flat_x, step_x[lonely])
            step_y[lonely] = np.where(missing_y[lonely, None], flat_y, step_y[lonely])
        out_depth, winner = self._splat(centre, step_x, step_y)
        out_ir = None
        if ir is not None:
            ir_flat = np.asarray(ir).ravel()
            out_ir = np.zeros(out_depth.shape, dtype=np.asarray(ir).dtype)
            hit = winner >= 0
            out_ir[hit] = ir_flat[sources[winner[hit]]]
        return out_depth, out_ir

    def _fronto_parallel_steps(self, z: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Half-pixel steps of isolated pixels (flat indices), as if their patch faced the depth camera."""
        zf = z.ravel()[pixels]
        centre = self.calibration.depth_to_color(
            np.concatenate([self._rays.reshape(-1, 2)[pixels] * zf[:, None], zf[:, None]], axis=1)
        )
        uv0, _ = self.color.project(centre)
        steps = []
        for half_rays in (self._half_rays_x, self._half_rays_y):
            shifted = np.concatenate([half_rays.reshape(-1, 2)[pixels] * zf[:, None], zf[:, None]], axis=1)
            shifted = self.calibration.depth_to_color(shifted)
            uv, _ = self.color.project(shifted)
            steps.append(np.concatenate([uv - uv0, (shifted[:, 2] - centre[:, 2])[:, None]], axis=1))
        return steps[0], steps[1]

    def _splat(self, centre: np.ndarray, step_x: np.ndarray, step_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rasterise the parallelograms centre +- step_x +- step_y with linear depth; nearest wins."""
        width, height = self.color.width, self.color.height
        empty = np.iinfo(np.uint64).max
        buffer = np.full(width * height, empty, dtype=np.uint64)
        # Per patch (not per covered pixel) work first: its pixel bounding box and the inverse of its edge matrix.
        corners = np.stack([centre[:, :2] + sx * step_x[:, :2] + sy * step_y[:, :2] for sx, sy in _CORNERS], axis=1)
        lo = np.maximum(np.ceil(corners.min(axis=1) - 1e-6).astype(np.int64), 0)
        hi = np.minimum(np.floor(corners.max(axis=1) + 1e-6).astype(np.int64), [width - 1, height - 1])
        span = np.maximum(hi - lo + 1, 0)
        # Parallelograms wider than 64 px are numerical blow-ups at grazing angles; they carry no information.
        counts = np.where((span < 64).all(axis=1), span[:, 0] * span[:, 1], 0)
        # p - c = a * (2 step_x) + b * (2 step_y)  ->  (a, b) = E^-1 (p - c); inside when |a|, |b| <= 1/2
        ax, ay, bx, by = 2 * step_x[:, 0], 2 * step_x[:, 1], 2 * step_y[:, 0], 2 * step_y[:, 1]
        det = ax * by - bx * ay
        counts[np.abs(det) <= 1e-12] = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.stack([by / det, -bx / det, -ay / det, ax / det], axis=1)
        sources = np.flatnonzero(counts)
        for chunk in np.array_split(sources, max(1, int(counts.sum()) // _CANDIDATES_PER_CHUNK + 1)):
            self._splat_chunk(buffer, chunk, counts[chunk], lo[chunk], span[chunk], centre[chunk], inverse[chunk],
                              2 * step_x[chunk, 2], 2 * step_y[chunk, 2])  # fmt: skip
        hit = buffer != empty
        out = np.zeros((height, width), dtype=np.uint16)
        winner = np.full((height, width), -1, dtype=np.int64)
        z_units = (buffer[hit] >> np.uint64(32)).astype(np.float64)
        out.ravel()[hit] = np.clip(np.round(z_units / _Z_UNITS_PER_MM), 1, 65535).astype(np.uint16)
        winner.ravel()[hit] = (buffer[hit] & np.uint64(0xFFFFFFFF)).astype(np.int64)
        return out, winner

    def _splat_chunk(
        self,
        buffer: np.ndarray,
        sources: np.ndarray,
        counts: np.ndarray,
        lo: np.ndarray,
        span: np.ndarray,
        centre: np.ndarray,
        inverse: np.ndarray,
        dz_a: np.ndarray,
        dz_b: np.ndarray,
    ) -> None:
        """Expand a chunk of patches into candidate pixels (np.repeat keeps memory access sequential)."""
        total = int(counts.sum())
        first = np.repeat(np.cumsum(counts) - counts, counts)
        offset = np.arange(total) - first
        row_len = np.repeat(span[:, 0], counts)
        px = np.repeat(lo[:, 0], counts) + offset % row_len
        py = np.repeat(lo[:, 1], counts) + offset // row_len
        dx = px - np.repeat(centre[:, 0], counts)
        dy = py - np.repeat(centre[:, 1], counts)
        a = np.repeat(inverse[:, 0], counts) * dx + np.repeat(inverse[:, 1], counts) * dy
        b = np.repeat(inverse[:, 2], counts) * dx + np.repeat(inverse[:, 3], counts) * dy
        z = np.repeat(centre[:, 2], counts) + a * np.repeat(dz_a, counts) + b * np.repeat(dz_b, counts)
        keep = (np.abs(a) <= 0.5 + 1e-3) & (np.abs(b) <= 0.5 + 1e-3) & (z > 0) & (z < 65535)
        owner = np.repeat(sources, counts)[keep]
        # z-buffer: pack (depth, source) into one integer so a single minimum keeps the nearest and its source.
        key = (np.round(z[keep] * _Z_UNITS_PER_MM).astype(np.uint64) << np.uint64(32)) | owner.astype(np.uint64)
        np.minimum.at(buffer, py[keep] * self.color.width + px[keep], key)


def _half_step(values: np.ndarray, valid: np.ndarray, depth: np.ndarray, axis: int) -> np.ndarray:
    """Half the change of `values` per depth pixel along `axis` (central difference where both neighbours are
    on the same surface, one-sided where only one is, NaN where neither is)."""
    nan = np.full_like(values, np.nan)

    def shifted(array: np.ndarray, offset: int, fill) -> np.ndarray:
        out = np.full_like(array, fill)
        src = [slice(None)] * array.ndim
        dst = [slice(None)] * array.ndim
        if offset > 0:
            src[axis], dst[axis] = slice(offset, None), slice(None, -offset)
        else:
            src[axis], dst[axis] = slice(None, offset), slice(-offset, None)
        out[tuple(dst)] = array[tuple(src)]
        return out

    def same_surface(neighbour_depth: np.ndarray, neighbour_valid: np.ndarray) -> np.ndarray:
        return valid & neighbour_valid & (np.abs(neighbour_depth - depth) <= DEPTH_JUMP_FRACTION * depth)

    after_ok = same_surface(shifted(depth, 1, 0.0), shifted(valid, 1, False))
    before_ok = same_surface(shifted(depth, -1, 0.0), shifted(valid, -1, False))
    after, before = shifted(values, 1, np.nan), shifted(values, -1, np.nan)
    step = np.where((after_ok & before_ok)[..., None], (after - before) / 4, nan)
    step = np.where((after_ok & ~before_ok)[..., None], (after - values) / 2, step)
    step = np.where((~after_ok & before_ok)[..., None], (values - before) / 2, step)
    return step
