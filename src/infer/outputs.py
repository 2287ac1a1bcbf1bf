"""What an inference run writes for each input, in the processed layout's encoding (src/io/rgbd_layout.py):

    <output>/Color/<name>.png        8-bit BGR colour (what cv2.imread returns), the generated face
    <output>/Depth/<name>.png        depth levels of the training dataset's encoding (16-bit PNG for 16-bit data);
                                     0 = background, level l = near_mm + (l - 1) * mm_per_level
    <output>/Feature/<name>.png      the landmark drawing the generator read (at the model's image size)
    <output>/Landmark/<name>.txt     the 70 landmarks at the model's image size (processed-layout text format)
    <output>/PointCloud/<name>.ply   coloured point cloud in mm (src/io/ply.py; the intrinsics are in its header)
    <output>/Preview/<name>.png      input | drawing | colour | depth colour map
    <output>/config.txt              near_mm, far_mm, depth_bits, fx, fy, cx, cy, size (as a processed dataset)
    <output>/infer.json              the model, the framing, and every input's outcome

Every file is written atomically: an interrupted run leaves complete files or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from src.io.atomic import write_image_atomic, write_text_atomic
from src.io.ply import default_intrinsics, write_ply
from src.io.rgbd_layout import DepthEncoding, format_landmark_file, write_config
from src.utils.visualize import depth_to_color, make_grid, unit_to_uint8

OUTPUT_KINDS = ("Color", "Depth", "Feature", "Landmark", "PointCloud", "Preview")
SUFFIXES = {"Landmark": ".txt", "PointCloud": ".ply"}


def output_paths(root: Path, name: str) -> dict[str, Path]:
    return {kind: root / kind / f"{name}{SUFFIXES.get(kind, '.png')}" for kind in OUTPUT_KINDS}


@dataclass(frozen=True)
class GeneratedFace:
    """One generated RGBD face decoded from the network's [-1, 1] output."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth_levels: np.ndarray  # (H, W) uint8 / uint16, 0 = background
    depth_mm: np.ndarray  # (H, W) float32, 0 = background

    @classmethod
    def from_unit(cls, rgbd_unit: np.ndarray, encoding: DepthEncoding) -> GeneratedFace:
        rgb = unit_to_uint8(rgbd_unit[:3])
        levels = encoding.unit_to_levels(rgbd_unit[3])
        return cls(rgb, levels, encoding.decode(levels))


def write_face(
    root: Path,
    name: str,
    face: GeneratedFace,
    feature: np.ndarray,
    landmarks: np.ndarray,
    input_view: np.ndarray | None,
    encoding: DepthEncoding,
    intrinsics: tuple[float, float, float, float] | None,
    ply: bool = True,
    preview: bool = True,
) -> dict[str, str]:
    """Write one input's outputs (see the module docstring); returns {kind: path} of what was written."""
    paths = output_paths(root, name)
    write_image_atomic(paths["Color"], cv2.cvtColor(face.rgb, cv2.COLOR_RGB2BGR))
    write_image_atomic(paths["Depth"], face.depth_levels)
    write_image_atomic(paths["Feature"], feature)
    write_text_atomic(paths["Landmark"], format_landmark_file(landmarks))
    written = {kind: str(paths[kind]) for kind in ("Color", "Depth", "Feature", "Landmark")}
    if ply:
        write_ply(paths["PointCloud"], face.rgb, face.depth_mm, intrinsics)
        written["PointCloud"] = str(paths["PointCloud"])
    if preview:
        grid = preview_image(face, feature, input_view, encoding)
        write_image_atomic(paths["Preview"], cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        written["Preview"] = str(paths["Preview"])
    return written


def preview_image(
    face: GeneratedFace, feature: np.ndarray, input_view: np.ndarray | None, encoding: DepthEncoding
) -> np.ndarray:
    """input | drawing | colour | depth (RGB uint8); the depth map uses the encoding's fixed mm range."""
    size = feature.shape[0]
    shown_input = input_view if input_view is not None else np.zeros((size, size, 3), np.uint8)
    depth = depth_to_color(face.depth_mm, encoding.near_mm, encoding.far_mm, legend=True)
    first = "input crop" if input_view is not None else "landmark file"
    return make_grid([[shown_input, feature, face.rgb, depth]], col_labels=[first, "drawing", "colour", "depth"])


def write_output_config(
    root: Path, encoding: DepthEncoding, intrinsics: tuple[float, float, float, float] | None, size: int
) -> None:
    """config.txt like a processed dataset's, so the outputs read back with the project's own readers."""
    used = intrinsics if intrinsics is not None else default_intrinsics(size, size)
    entries: dict[str, object] = {"near_mm": encoding.near_mm, "far_mm": encoding.far_mm, "depth_bits": encoding.bits}
    entries.update(zip(("fx", "fy", "cx", "cy"), used))
    entries.update(
        intrinsics="dataset" if intrinsics is not None else "default (src.io.ply.default_intrinsics)",
        size=size,
        source="infer",
    )
    write_config(root / "config.txt", entries)
