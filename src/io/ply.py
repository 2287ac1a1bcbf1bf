"""RGBD -> coloured point cloud PLY (the 2.5D view the parent project's VR engine shows), and a small reader.

Back-projection is the pinhole model in OpenCV's camera space (x right, y down, z forward, mm):
    X = (u - cx) * Z / fx,   Y = (v - cy) * Z / fy,   Z = depth_mm[v, u]
with pixel centres at integer (u, v). Background (depth 0, NaN) is skipped.

Processed datasets may record their intrinsics (config.txt fx/fy/cx/cy); when they do not, `default_intrinsics`
documents the fallback: principal point at the image centre and a focal length giving a DEFAULT_FOV_DEG field
of view, about what a 512 px crop of a ~200 mm wide face window seen from ~600 mm subtends.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.io.atomic import write_bytes_atomic

DEFAULT_FOV_DEG = 20.0
_PLY_TYPES = {
    "float": "<f4",
    "float32": "<f4",
    "double": "<f8",
    "float64": "<f8",
    "uchar": "u1",
    "uint8": "u1",
    "char": "i1",
    "int8": "i1",
    "ushort": "<u2",
    "uint16": "<u2",
    "short": "<i2",
    "int16": "<i2",
    "uint": "<u4",
    "uint32": "<u4",
    "int": "<i4",
    "int32": "<i4",
}


@dataclass(frozen=True)
class PointCloud:
    points: np.ndarray  # (N, 3) float32, camera space mm
    colors: np.ndarray  # (N, 3) uint8 RGB


def default_intrinsics(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) used when a dataset has no intrinsics: square pixels, centred principal point."""
    focal = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2.0)
    return focal, focal, (width - 1) / 2.0, (height - 1) / 2.0


def backproject(
    depth_mm: np.ndarray, intrinsics: tuple[float, float, float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground pixels of an HxW depth map -> ((N, 3) float32 points in mm, (N,) flat pixel indices)."""
    depth = np.asarray(depth_mm, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"backproject: expected an HxW depth map, got shape {depth.shape}")
    height, width = depth.shape
    fx, fy, cx, cy = intrinsics if intrinsics is not None else default_intrinsics(width, height)
    if fx <= 0 or fy <= 0:
        raise ValueError(f"backproject: focal lengths must be positive, got fx={fx}, fy={fy}")
    flat = depth.reshape(-1)
    index = np.flatnonzero(np.isfinite(flat) & (flat > 0))
    v, u = np.divmod(index, width)
    z = flat[index].astype(np.float64)
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=1).astype(np.float32)
    return points, index


def rgbd_to_point_cloud(
    rgb: np.ndarray, depth_mm: np.ndarray, intrinsics: tuple[float, float, float, float] | None = None
) -> PointCloud:
    image = np.asarray(rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"rgbd_to_point_cloud: colour must be HxWx3 uint8, got {image.dtype} {image.shape}")
    if image.shape[:2] != np.shape(depth_mm):
        raise ValueError(f"rgbd_to_point_cloud: colour {image.shape[:2]} and depth {np.shape(depth_mm)} differ")
    points, index = backproject(depth_mm, intrinsics)
    return PointCloud(points=points, colors=image.reshape(-1, 3)[index])


def encode_ply(
    cloud: PointCloud, binary: bool = True, comments: tuple[str, ...] = (), faces: np.ndarray | None = None
) -> bytes:
    """PLY bytes: vertex element with float x, y, z and uchar red, green, blue (binary little endian or ascii),
    plus an optional face element of triangles (uchar count, int indices) that makes it a mesh."""
    n = len(cloud.points)
    triangles = np.zeros((0, 3), np.int32) if faces is None else np.asarray(faces)
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise ValueError(f"encode_ply: faces must be (F, 3) vertex indices, got shape {triangles.shape}")
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    header += [f"comment {c}" for c in comments]
    header += [f"element vertex {n}"]
    header += [f"property float {axis}" for axis in "xyz"]
    header += [f"property uchar {channel}" for channel in ("red", "green", "blue")]
    if faces is not None:
        header += [f"element face {len(triangles)}", "property list uchar int vertex_indices"]
    header += ["end_header"]
    head = ("\n".join(header) + "\n").encode("ascii")
    if binary:
        record = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
        body = np.empty(n, dtype=record)
        body["xyz"] = cloud.points
        body["rgb"] = cloud.colors
        face_record = np.dtype([("count", "u1"), ("index", "<i4", 3)])
        face_body = np.empty(len(triangles), dtype=face_record)
        face_body["count"] = 3
        face_body["index"] = triangles
        return head + body.tobytes() + (face_body.tobytes() if faces is not None else b"")
    lines = [
        f"{x:.4f} {y:.4f} {z:.4f} {r} {g} {b}"
        for (x, y, z), (r, g, b) in zip(cloud.points.tolist(), cloud.colors.tolist())
    ]
    lines += [f"3 {a} {b} {c}" for a, b, c in triangles.tolist()] if faces is not None else []
    return head + ("\n".join(lines) + ("\n" if lines else "")).encode("ascii")


def write_ply(
    path: str | os.PathLike,
    rgb: np.ndarray,
    depth_mm: np.ndarray,
    intrinsics: tuple[float, float, float, float] | None = None,
    binary: bool = True,
) -> int:
    """Write the coloured point cloud of one RGBD frame atomically; returns the number of points."""
    height, width = np.shape(depth_mm)
    used = intrinsics if intrinsics is not None else default_intrinsics(width, height)
    cloud = rgbd_to_point_cloud(rgb, depth_mm, used)
    note = "default" if intrinsics is None else "dataset"
    comment = f"intrinsics ({note}) fx {used[0]:.3f} fy {used[1]:.3f} cx {used[2]:.3f} cy {used[3]:.3f}, units mm"
    write_bytes_atomic(path, encode_ply(cloud, binary=binary, comments=("facesynth RGBD point cloud", comment)))
    return len(cloud.points)


def read_ply(path: str | os.PathLike) -> PointCloud:
    """Read the vertex x/y/z and red/green/blue of a PLY (ascii or binary little endian, scalar properties).

    Enough for our own files and for most point-cloud tools' output; lists (faces) after the vertices are
    ignored. Errors name the file.
    """
    p = Path(path)
    data = p.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError(f"{p}: not a PLY file (no 'ply' magic / 'end_header')")
    body_start = data.index(b"\n", end) + 1
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    fmt, count, props, in_vertex = None, 0, [], False
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                count = int(parts[2])
        elif parts[0] == "property" and in_vertex:
            if parts[1] == "list" or parts[1] not in _PLY_TYPES:
                raise ValueError(f"{p}: unsupported vertex property {' '.join(parts[1:])!r}")
            props.append((parts[2], _PLY_TYPES[parts[1]]))
    names = [name for name, _ in props]
    missing = [k for k in ("x", "y", "z", "red", "green", "blue") if k not in names]
    if missing:
        raise ValueError(f"{p}: vertex element lacks properties {missing}")
    if fmt == "binary_little_endian":
        record = np.dtype(props)
        if len(data) - body_start < count * record.itemsize:
            raise ValueError(f"{p}: truncated, {count} vertices announced")
        table = np.frombuffer(data, dtype=record, count=count, offset=body_start)
        columns = {name: table[name] for name in names}
    elif fmt == "ascii":
        rows = [row for row in data[body_start:].decode("ascii").split("\n") if row.strip()][:count]
        try:
            values = np.array([row.split() for row in rows], dtype=np.float64).reshape(-1, len(props))
        except ValueError as err:
            raise ValueError(f"{p}: malformed ascii vertex rows ({err})") from None
        if len(values) != count:
            raise ValueError(f"{p}: truncated, {count} vertices announced, {len(values)} found")
        columns = {name: values[:, i] for i, name in enumerate(names)}
    else:
        raise ValueError(f"{p}: unsupported PLY format {fmt!r} (ascii and binary_little_endian are read)")
    points = np.stack([columns[k] for k in "xyz"], axis=1).astype(np.float32)
    colors = np.stack([columns[k] for k in ("red", "green", "blue")], axis=1).astype(np.uint8)
    return PointCloud(points=points, colors=colors)
