"""On-disk layouts of the RGBD face system (one definition shared by FaceWorld, capture, convert, datamodule).

Unprocessed (what capture writes):
    <root>/{train,eval}/{Color,Depth,Infrared}/<i>.png   colour 8-bit BGR, depth uint16 mm registered to
    <root>/config.txt                                     colour, IR uint16 registered likewise
Processed (what convert writes and the rgbd datamodule reads):
    <root>/{train,eval}/{Color,Depth,Feature}/<id>.png   512x512; Feature is the landmark drawing
    <root>/{train,eval}/Landmark/<id>.txt                 aabb_x/y/width/height, X: x0,...,x69, / Y: ...
    <root>/config.txt                                     `key: value` lines; the depth encoding lives here

Depth in the processed layout maps [nose - depth_padding, nose + face_depth] mm linearly onto 1..max_level
(255 for the original 8-bit files, 65535 for the 16-bit variant we recommend) and 0 = background.

config.txt keys: near_mm, far_mm, depth_bits (the encoding); optional fx, fy, cx, cy (pinhole intrinsics of
the processed image, for point clouds), face_depth_mm, depth_padding_mm, nose_depth_mm, source, ...
Frame ids are `<group>_<index:06d>`: the group (a capture session or an identity, no underscore) is what
held-out splits are made by, so frames of one group never land on both sides of a split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.io.atomic import write_text_atomic
from src.landmarks.scheme import NUM_LANDMARKS

SPLITS = ("train", "eval")
UNPROCESSED_KINDS = ("Color", "Depth", "Infrared")
PROCESSED_IMAGE_KINDS = ("Color", "Depth", "Feature")
LANDMARK_KIND = "Landmark"
CONFIG_FILE = "config.txt"


@dataclass(frozen=True)
class DepthEncoding:
    """Linear depth quantisation of the processed layout; level 0 means no depth (background)."""

    near_mm: float
    far_mm: float
    bits: int = 8

    def __post_init__(self) -> None:
        if self.bits not in (8, 16):
            raise ValueError(f"depth bits must be 8 or 16, got {self.bits}")
        if not self.far_mm > self.near_mm:
            raise ValueError(f"depth range is empty: near {self.near_mm} mm >= far {self.far_mm} mm")

    @property
    def max_level(self) -> int:
        return (1 << self.bits) - 1

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bits == 8 else np.uint16

    @property
    def mm_per_level(self) -> float:
        return (self.far_mm - self.near_mm) / (self.max_level - 1)

    def encode(self, depth_mm: np.ndarray) -> np.ndarray:
        """mm (0 or NaN = no data) -> levels; depth outside [near, far] becomes background."""
        d = np.asarray(depth_mm, dtype=np.float64)
        valid = np.isfinite(d) & (d >= self.near_mm) & (d <= self.far_mm)
        levels = np.zeros(d.shape, dtype=self.dtype)
        scaled = 1 + np.round((d[valid] - self.near_mm) / self.mm_per_level)
        levels[valid] = np.clip(scaled, 1, self.max_level).astype(self.dtype)
        return levels

    def decode(self, levels: np.ndarray) -> np.ndarray:
        """levels -> mm as float32, 0 where background."""
        v = np.asarray(levels).astype(np.float64)
        mm = self.near_mm + (v - 1) * self.mm_per_level
        return np.where(v > 0, mm, 0.0).astype(np.float32)

    def levels_to_unit(self, levels: np.ndarray) -> np.ndarray:
        """levels -> [-1, 1] network range (background = -1), as the original normalises images."""
        return (np.asarray(levels, dtype=np.float32) / self.max_level) * 2.0 - 1.0

    def unit_to_levels(self, unit: np.ndarray) -> np.ndarray:
        v = np.round((np.clip(np.asarray(unit, dtype=np.float64), -1, 1) + 1) / 2 * self.max_level)
        return v.astype(self.dtype)

    def unit_to_mm(self, unit: np.ndarray) -> np.ndarray:
        return self.decode(self.unit_to_levels(unit))


@dataclass(frozen=True)
class FaceLandmarks:
    """One Landmark/<id>.txt: the landmark bounding box and 70 points in processed-image pixels."""

    aabb: tuple[float, float, float, float]  # x, y, width, height
    points: np.ndarray  # (70, 2)


def format_landmark_file(points: np.ndarray, aabb: tuple[float, float, float, float] | None = None) -> str:
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks: expected shape ({NUM_LANDMARKS}, 2), got {pts.shape}")
    if aabb is None:
        lo, hi = pts.min(0), pts.max(0)
        aabb = (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
    lines = [f"aabb_{k}: {v:.3f}" for k, v in zip(("x", "y", "width", "height"), aabb)]
    lines.append("X: " + "".join(f"{x:.3f}," for x in pts[:, 0]))
    lines.append("Y: " + "".join(f"{y:.3f}," for y in pts[:, 1]))
    return "\n".join(lines) + "\n"


def parse_landmark_file(path: str | os.PathLike) -> FaceLandmarks:
    """Parse a Landmark/<id>.txt; raise ValueError naming the file on any problem."""
    p = Path(path)
    try:
        entries = {}
        for line in p.read_text().splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                entries[key.strip()] = value.strip()
        aabb = tuple(float(entries[f"aabb_{k}"]) for k in ("x", "y", "width", "height"))
        xs = [float(v) for v in entries["X"].split(",") if v.strip()]
        ys = [float(v) for v in entries["Y"].split(",") if v.strip()]
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{p}: not a landmark file ({type(err).__name__}: {err})") from None
    if len(xs) != NUM_LANDMARKS or len(ys) != NUM_LANDMARKS:
        raise ValueError(f"{p}: expected {NUM_LANDMARKS} X and Y values, got {len(xs)} and {len(ys)}")
    return FaceLandmarks(aabb=aabb, points=np.stack([xs, ys], axis=1))  # type: ignore[arg-type]


def landmark_problem(points: np.ndarray, width: int, height: int, margin: float = 0.25) -> str | None:
    """Why a processed frame's landmarks cannot be right, or None: a NaN / inf value, or a point farther outside
    the image than `margin` of its size (coordinates of another image, e.g. the uncropped camera frame).

    Points slightly outside are legitimate (a jaw contour cut by the crop), hence the margin.
    """
    pts = np.asarray(points, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(pts).all(axis=1))
    if bad.size:
        return f"landmark value(s) not finite at point {', '.join(str(i) for i in bad[:5])}"
    low = np.array([-margin * width, -margin * height])
    high = np.array([(1 + margin) * width, (1 + margin) * height])
    outside = np.flatnonzero(((pts < low) | (pts > high)).any(axis=1))
    if outside.size:
        x, y = pts[outside[0]]
        return (
            f"{outside.size} landmark(s) far outside the {width}x{height} image (point {outside[0]} at "
            f"({x:.1f}, {y:.1f})): coordinates of another image?"
        )
    return None


def write_config(path: str | os.PathLike, entries: dict[str, object]) -> None:
    write_text_atomic(path, "".join(f"{k}: {v}\n" for k, v in entries.items()))


def read_config(path: str | os.PathLike) -> dict[str, str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: dataset config file is missing")
    out: dict[str, str] = {}
    for line in p.read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def depth_encoding_from_config(config: dict[str, str], source: str = CONFIG_FILE) -> DepthEncoding:
    """The processed layout's config names the depth range: near_mm, far_mm, depth_bits."""
    try:
        return DepthEncoding(float(config["near_mm"]), float(config["far_mm"]), int(config.get("depth_bits", 8)))
    except KeyError as err:
        raise KeyError(f"{source}: missing key {err.args[0]!r} (needed to turn depth levels into mm)") from None
    except ValueError as err:  # a word for a number, 12 bits, near >= far: name the file the user must edit
        raise ValueError(f"{source}: {err}") from None


def intrinsics_from_config(config: dict[str, str]) -> tuple[float, float, float, float] | None:
    """(fx, fy, cx, cy) of the processed image when the dataset records them, else None."""
    try:
        return tuple(float(config[k]) for k in ("fx", "fy", "cx", "cy"))  # type: ignore[return-value]
    except KeyError:
        return None


def frame_group(frame_id: str) -> str:
    """The session / identity a frame belongs to: everything before the last underscore."""
    return frame_id.rsplit("_", 1)[0] if "_" in frame_id else frame_id


def processed_paths(root: str | os.PathLike, split: str, frame_id: str) -> dict[str, Path]:
    base = Path(root) / split
    paths = {kind: base / kind / f"{frame_id}.png" for kind in PROCESSED_IMAGE_KINDS}
    paths[LANDMARK_KIND] = base / LANDMARK_KIND / f"{frame_id}.txt"
    return paths


def unprocessed_paths(root: str | os.PathLike, split: str, frame_id: str) -> dict[str, Path]:
    base = Path(root) / split
    return {kind: base / kind / f"{frame_id}.png" for kind in UNPROCESSED_KINDS}
