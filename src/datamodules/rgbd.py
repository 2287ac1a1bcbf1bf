"""The RGBD face datamodule: reads the processed layout (src/io/rgbd_layout.py), validated up front.

Batch keys (dict; B = batch size, H x W = image size):
    feature         (B, 1, H, W) float32 in [-1, 1]   the landmark drawing (generator input), -1 = black
    rgbd            (B, 4, H, W) float32 in [-1, 1]   R, G, B, depth; depth -1 = background (level 0)
    face_mask       (B, 1, H, W) bool                 where the true depth has data (level > 0)
    depth_near_mm   (B,) float32                      DepthEncoding of the file: level 1 = near_mm,
    depth_far_mm    (B,) float32                      max level = far_mm (see depth_encoding_from_batch)
    depth_bits      (B,) int64                        8 (the original's files) or 16 (recommended)
    landmarks       (B, 70, 2) float32                pixel coordinates at H x W
    intrinsics      (B, 4) float32                    fx, fy, cx, cy of the H x W image (config.txt's, scaled to
                                                      image_size); only when the dataset's config.txt records them
    frame_id        list[str]                         `<group>_<index>`; group = session / identity

Splits: `train` / `val` come from the layout's train/ folder, with validation frames held out by group (session
or identity), so no group is on both sides; when train/ has a single group the last block of its frames is held
out instead (held out in time, unlike the original's every-7th-frame interleave). `test` is the eval/ folder.
With `root: null` the default data is a FaceWorld dataset generated on first use and cached (see faceworld.py).
Argument checks, the one-error validation, the splits and the loaders come from the base (src/datamodules/base.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from src.datamodules.base import SPLIT_BY_CHOICES, FaceDataModule, raise_problems, split_train_val
from src.io.images import ImageReadError, read_image
from src.io.rgbd_layout import (
    CONFIG_FILE,
    LANDMARK_KIND,
    PROCESSED_IMAGE_KINDS,
    DepthEncoding,
    depth_encoding_from_config,
    intrinsics_from_config,
    landmark_problem,
    parse_landmark_file,
    processed_paths,
    read_config,
)
from src.utils.errors import DatasetError

__all__ = [
    "SPLIT_BY_CHOICES",
    "RGBDDataModule",
    "RGBDFrames",
    "depth_encoding_from_batch",
    "depth_unit_to_mm",
    "scale_intrinsics",
    "scan_processed_dataset",
    "split_train_val",
    "validate_processed_dataset",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    split: str  # folder: train / eval
    frame_id: str


def depth_encoding_from_batch(batch: dict[str, Any], index: int = 0) -> DepthEncoding:
    """The DepthEncoding of sample `index` of a batch (to turn its depth channel into mm)."""
    return DepthEncoding(
        float(batch["depth_near_mm"][index]), float(batch["depth_far_mm"][index]), int(batch["depth_bits"][index])
    )


def depth_unit_to_mm(depth_unit: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """(B, 1, H, W) depth in [-1, 1] -> mm (float, continuous; background pixels are meaningless, mask them).

    Differentiable (no quantisation): the depth losses in mm and the mm metrics go through this one formula,
    the continuous form of DepthEncoding.unit_to_mm.
    """
    shape = (-1,) + (1,) * (depth_unit.dim() - 1)
    near = batch["depth_near_mm"].to(depth_unit).view(shape)
    far = batch["depth_far_mm"].to(depth_unit).view(shape)
    max_level = (2.0 ** batch["depth_bits"].to(depth_unit) - 1).view(shape)
    mm_per_level = (far - near) / (max_level - 1)
    levels = (depth_unit + 1) / 2 * max_level
    return near + (levels - 1) * mm_per_level


def _list_ids(folder: Path, suffix: str) -> set[str]:
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.iterdir() if p.suffix == suffix and not p.name.startswith(".")}


def list_split(root: Path, split: str) -> tuple[list[str], list[str]]:
    """(complete frame ids, problems) of one split; a frame missing any of its four files is a problem."""
    base = root / split
    kinds = {kind: _list_ids(base / kind, ".png") for kind in PROCESSED_IMAGE_KINDS}
    kinds[LANDMARK_KIND] = _list_ids(base / LANDMARK_KIND, ".txt")
    every = set().union(*kinds.values())
    problems = []
    for frame_id in sorted(every):
        for kind, ids in kinds.items():
            if frame_id not in ids:
                ext = "txt" if kind == LANDMARK_KIND else "png"
                problems.append(f"{split}/{kind}/{frame_id}.{ext} is missing")
    complete = sorted(i for i in every if all(i in ids for ids in kinds.values()))
    return complete, problems


def _check_frame(root: Path, split: str, frame_id: str, encoding: DepthEncoding) -> list[str]:
    """Decode every file of a frame and check channels, bit depth and sizes; return the problems found."""
    paths = processed_paths(root, split, frame_id)
    problems, sizes = [], {}
    for kind in PROCESSED_IMAGE_KINDS:
        try:
            image = read_image(paths[kind])
        except ImageReadError as err:
            problems.append(str(err))
            continue
        sizes[kind] = image.shape[:2]
        name = f"{split}/{kind}/{frame_id}.png"
        if kind == "Color" and not (image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            problems.append(f"{name}: expected 8-bit 3-channel colour, got {image.dtype} shape {image.shape}")
        if kind == "Feature" and not (image.ndim == 2 and image.dtype == np.uint8):
            problems.append(f"{name}: expected an 8-bit 1-channel feature image, got {image.dtype} {image.shape}")
        if kind == "Depth":
            if image.ndim != 2:
                problems.append(f"{name}: expected 1-channel depth, got shape {image.shape}")
            elif image.dtype != encoding.dtype:
                bits = image.dtype.itemsize * 8
                problems.append(f"{name}: {bits}-bit depth but {CONFIG_FILE} says depth_bits {encoding.bits}")
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{k} {w}x{h}" for k, (h, w) in sizes.items())
        problems.append(f"{split}/*/{frame_id}: image sizes differ ({listed})")
    try:
        landmarks = parse_landmark_file(paths[LANDMARK_KIND])
    except ValueError as err:
        problems.append(str(err))
    else:
        height, width = next(iter(sizes.values()), (None, None))
        problem = landmark_problem(landmarks.points, width, height) if width else None
        if problem:
            problems.append(f"{paths[LANDMARK_KIND]}: {problem}")
    return problems


def scan_processed_dataset(
    root: str | os.PathLike, splits: Sequence[str] = ("train", "eval"), workers: int = 4
) -> tuple[DepthEncoding, dict[str, list[str]], list[str]]:
    """Check the whole dataset once: (depth encoding, complete frame ids per split, every problem found).

    Files are fully decoded (a truncated PNG is found here, not after an hour of training). A missing folder or
    an unusable config.txt raises at once (nothing else can be checked without them).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    try:
        encoding = depth_encoding_from_config(read_config(root / CONFIG_FILE), str(root / CONFIG_FILE))
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise DatasetError(f"{root}: {err.args[0] if err.args else err}") from None
    frames: dict[str, list[str]] = {}
    problems: list[str] = []
    for split in splits:
        ids, missing = list_split(root, split)
        frames[split] = ids
        problems += missing
    jobs = [(split, frame_id) for split in splits for frame_id in frames[split]]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # cv2 / zlib release the GIL
        for found in pool.map(lambda job: _check_frame(root, job[0], job[1], encoding), jobs):
            problems += found
    return encoding, frames, problems


def validate_processed_dataset(
    root: str | os.PathLike, splits: Sequence[str] = ("train", "eval"), max_listed: int = 5, workers: int = 4
) -> tuple[DepthEncoding, dict[str, list[str]]]:
    """scan_processed_dataset, raising ONE DatasetError listing every problem (first `max_listed` shown)."""
    encoding, frames, problems = scan_processed_dataset(root, splits, workers)
    raise_problems(Path(root), problems, max_listed)
    return encoding, frames


def scale_intrinsics(
    intrinsics: tuple[float, float, float, float], width: int, height: int, size: int | None
) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a width x height image after resizing it to size x size (pixel centres at integers:
    a centre c maps to (c + 0.5) * scale - 0.5)."""
    if size is None or (width, height) == (size, size):
        return intrinsics
    fx, fy, cx, cy = intrinsics
    sx, sy = size / width, size / height
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


class RGBDFrames(Dataset):
    """Frames of one split of a processed RGBD dataset as dict samples (keys: see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        frame_ids: Sequence[str],
        encoding: DepthEncoding,
        image_size: int | None = None,
        intrinsics: tuple[float, float, float, float] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.frame_ids = list(frame_ids)
        self.encoding = encoding
        self.image_size = image_size
        self.intrinsics = intrinsics  # of the files' own size (config.txt)

    def __len__(self) -> int:
        return len(self.frame_ids)

    def _resize(self, image: np.ndarray, nearest: bool) -> np.ndarray:
        size = self.image_size
        if size is None or image.shape[:2] == (size, size):
            return image
        shrink = size < image.shape[0]
        interpolation = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return cv2.resize(image, (size, size), interpolation=interpolation)

    def __getitem__(self, index: int) -> dict[str, Any]:
        frame_id = self.frame_ids[index]
        paths = processed_paths(self.root, self.split, frame_id)
        color = read_image(paths["Color"], cv2.IMREAD_COLOR)
        height, width = color.shape[:2]
        color = cv2.cvtColor(self._resize(color, nearest=False), cv2.COLOR_BGR2RGB)
        # Depth resizes nearest-neighbour: averaging would blend face depth with background level 0.
        depth = self._resize(read_image(paths["Depth"]), nearest=True)
        feature = self._resize(read_image(paths["Feature"], cv2.IMREAD_GRAYSCALE), nearest=False)
        points = parse_landmark_file(paths[LANDMARK_KIND]).points.astype(np.float32)
        if self.image_size is not None:
            points = points * np.array([self.image_size / width, self.image_size / height], dtype=np.float32)
        rgb_unit = color.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
        depth_unit = self.encoding.levels_to_unit(depth)[None]
        extra = {}
        if self.intrinsics is not None:
            scaled = scale_intrinsics(self.intrinsics, width, height, self.image_size)
            extra["intrinsics"] = torch.tensor(scaled, dtype=torch.float32)
        return {
            "feature": torch.from_numpy(feature.astype(np.float32)[None] / 127.5 - 1.0),
            "rgbd": torch.from_numpy(np.concatenate([rgb_unit, depth_unit], axis=0)),
            "face_mask": torch.from_numpy(depth[None] > 0),
            "depth_near_mm": torch.tensor(self.encoding.near_mm, dtype=torch.float32),
            "depth_far_mm": torch.tensor(self.encoding.far_mm, dtype=torch.float32),
            "depth_bits": torch.tensor(self.encoding.bits, dtype=torch.int64),
            "landmarks": torch.from_numpy(points),
            **extra,
            "frame_id": frame_id,
        }


class RGBDDataModule(FaceDataModule):
    """Train / val (held out by group) / test (eval/ folder) of a processed RGBD dataset; see module docstring.

    Arguments: those of FaceDataModule (root, image_size, batch_size, num_workers, val_fraction, split_by, ...);
    `faceworld` holds the rgbd-processed writer's settings of the default data.
    """

    FACEWORLD_WRITER: ClassVar[str] = "rgbd-processed"
    # Read from the dataset's config.txt by scan().
    encoding: DepthEncoding | None = None
    intrinsics: tuple[float, float, float, float] | None = None

    @property
    def frames(self) -> dict[str, list[str]]:
        return self.items

    def scan(self, root: Path) -> tuple[dict[str, list[str]], list[str]]:
        splits = ("train", "eval") if (root / "eval").is_dir() else ("train",)
        self.encoding, frames, problems = scan_processed_dataset(root, splits)
        self.intrinsics = intrinsics_from_config(read_config(root / CONFIG_FILE))
        return frames, problems

    def make_dataset(self, split: str, items: list[str]) -> RGBDFrames:
        folder = "eval" if split == "test" else "train"
        assert self.root is not None and self.encoding is not None
        return RGBDFrames(self.root, folder, items, self.encoding, self.hparams.image_size, self.intrinsics)
