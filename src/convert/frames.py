"""Finding and reading the frames of an unprocessed capture, with every failure named by a rejection reason.

Input names are either the original's plain numbers (`Color/17.png`) or `<group>_<index>.png`; both become
processed ids `<group>_<index:06d>` so the datamodule can split by capture session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from src.io.images import ImageReadError, read_image
from src.io.rgbd_layout import SPLITS, unprocessed_paths

# Every reason a frame can be skipped for; the report lists all of them (zeros included) in this order.
REJECTION_REASONS = (
    "truncated_png",
    "unreadable",
    "missing_depth",
    "depth_not_16bit",
    "size_mismatch",
    "no_face",
    "multiple_faces",
    "pose_out_of_range",
    "face_out_of_image",
    "no_nose_depth",
    "error",
)

_GROUPED = re.compile(r"^(?P<group>[A-Za-z0-9-]+)_(?P<index>\d+)$")
_PLAIN = re.compile(r"^(?P<index>\d+)$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FrameRejectedError(Exception):
    """A frame that cannot be used; `reason` is one of REJECTION_REASONS, the message names the file."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REJECTION_REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SourceFrame:
    """One input frame: where it lives and the processed id it will get."""

    split: str
    name: str  # the input file stem, e.g. "17" or "sessionA_000017"
    frame_id: str  # the processed id, e.g. "sessionA_000017"

    def paths(self, root: Path) -> dict[str, Path]:
        return unprocessed_paths(root, self.split, self.name)


def default_group(input_root: Path) -> str:
    """A session name from the input folder: letters, digits and '-' only (the id separator is '_')."""
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", input_root.resolve().name).strip("-")
    return cleaned or "capture"


def list_frames(input_root: Path, group: str | None = None) -> tuple[list[SourceFrame], list[str]]:
    """All colour frames under <input>/{train,eval}/Color in a fixed order (split, group, index).

    Returns (frames, problems): names that fit neither naming scheme are reported, not silently dropped.
    """
    root = Path(input_root)
    if not root.is_dir():
        raise FileNotFoundError(f"convert: input folder {root} does not exist")
    plain_group = group or default_group(root)
    frames: list[SourceFrame] = []
    problems: list[str] = []
    for split in SPLITS:
        colour_dir = root / split / "Color"
        if not colour_dir.is_dir():
            continue
        keyed = []
        for path in colour_dir.iterdir():
            if path.suffix.lower() != ".png" or path.name.startswith("."):
                continue
            stem = path.stem
            if m := _GROUPED.match(stem):
                key = (m["group"], int(m["index"]))
            elif m := _PLAIN.match(stem):
                key = (plain_group, int(m["index"]))
            else:
                problems.append(f"{path}: name is neither <index>.png nor <group>_<index>.png")
                continue
            keyed.append((key, stem))
        keyed.sort()
        seen: dict[str, str] = {}
        for (grp, index), stem in keyed:
            frame_id = f"{grp}_{index:06d}"
            if frame_id in seen:
                problems.append(f"{colour_dir / stem}.png: same id {frame_id} as {seen[frame_id]}.png")
                continue
            seen[frame_id] = stem
            frames.append(SourceFrame(split, stem, frame_id))
    if not frames and not problems:
        raise FileNotFoundError(f"convert: no frames found under {root}/{{train,eval}}/Color/*.png")
    return frames, problems


def _read(path: Path, what: str, flags: int) -> np.ndarray:
    """read_image with the failure classified: a PNG that fails to decode is truncated, anything else unreadable."""
    try:
        return read_image(path, flags)
    except ImageReadError as err:
        try:
            head = path.read_bytes()[:8]
        except OSError:
            head = None
        truncated = head is not None and path.suffix.lower() == ".png" and (head == b"" or head == _PNG_SIGNATURE)
        raise FrameRejectedError("truncated_png" if truncated else "unreadable", f"{what}: {err}") from None


def read_frame(frame: SourceFrame, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(colour BGR uint8 HxWx3, depth uint16 mm HxW) of one frame, or FrameRejectedError with the reason."""
    paths = frame.paths(root)
    colour = _read(paths["Color"], "colour", cv2.IMREAD_UNCHANGED)
    if colour.ndim == 3 and colour.shape[2] == 4:
        colour = colour[:, :, :3]
    if colour.dtype != np.uint8 or colour.ndim != 3 or colour.shape[2] != 3:
        raise FrameRejectedError(
            "unreadable", f"{paths['Color']}: colour must be 8-bit BGR, got {colour.dtype} {colour.shape}"
        )
    if not paths["Depth"].is_file():
        raise FrameRejectedError("missing_depth", f"{paths['Depth']}: depth image is missing")
    depth = _read(paths["Depth"], "depth", cv2.IMREAD_UNCHANGED)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise FrameRejectedError(
            "depth_not_16bit",
            f"{paths['Depth']}: depth must be one-channel 16-bit mm, got {depth.dtype} of shape {depth.shape}",
        )
    if depth.shape != colour.shape[:2]:
        raise FrameRejectedError(
            "size_mismatch", f"{paths['Depth']}: depth {depth.shape} does not match colour {colour.shape[:2]}"
        )
    return np.ascontiguousarray(colour), depth
