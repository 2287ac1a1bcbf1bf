"""PRNet training data in the convention its users train with: face crops with a UV position map each.

Layout (FaceWorld's prnet writer writes it; a 300W-LP set made with face3d's position-map generator reads the same):

    <root>/train/**/<name>.jpg|png + <name>.npy     training samples (any depth of sub-folders)
    <root>/test/**/<name>.jpg|png + <name>.npy      held-out samples (other identities)
    <root>/trainDataLabel.txt, testDataLabel.txt    optional lists `<image> <npy>` per line (the PRNet fork's
                                                    format; relative paths are relative to the list's folder,
                                                    absolute ones are taken as they are); used instead of the glob
                                                    when present
    <root>/uv-data/                                 PRNet's Data/uv-data files (src/models/components/prnet_uv.py);
                                                    `data.uv_data` points elsewhere (e.g. PRNet's own folder)
    <name>.json beside a sample                     optional truth (FaceWorld): `pose_deg.yaw` scores by yaw bucket

The group of a sample (validation identities are held out whole) is its folder relative to the split folder.
Batch keys:
    image        (3,P,P) float32 RGB in [0, 1] (PRNet's inference input, RGB / 255)
    posmap       (3,P,P) float32 position map in crop pixels (x, y, z)
    uv_weight    (P,P) float32 loss weights (uv_weight_mask / 16)
    uv_face_mask (P,P) bool; uv_keypoints (68,) int64 flat texel indices of the 68 keypoints
    yaw_deg      float32, NaN when the sample has no truth record
    frame_id     "<split>/<relative path without suffix>"
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from src.datamodules.base import FaceDataModule, split_train_val
from src.io.images import read_image
from src.models.components.prnet_uv import UVData, read_uv_data
from src.utils.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LIST_FILES = {"train": "trainDataLabel.txt", "test": "testDataLabel.txt"}


@dataclass(frozen=True)
class PRNetSample:
    image: Path
    posmap: Path
    frame_id: str
    group: str


def _npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return tuple(array.shape), array.dtype


def _from_list(root: Path, split: str, list_file: Path) -> tuple[list[PRNetSample], list[str]]:
    samples, problems = [], []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            problems.append(f"{list_file.name}:{number}: expected `<image> <npy>`, got {line!r}")
            continue
        image, posmap = ((list_file.parent / p) if not Path(p).is_absolute() else Path(p) for p in parts)
        try:
            relative = image.relative_to(root / split)
        except ValueError:
            relative = Path(image.parent.name) / image.name
        samples.append(PRNetSample(image, posmap, f"{split}/{relative.with_suffix('')}", str(relative.parent)))
    return samples, problems


def _from_glob(root: Path, split: str) -> tuple[list[PRNetSample], list[str]]:
    folder = root / split
    samples, problems = [], []
    if not folder.is_dir():
        return [], []
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    stems = {p.with_suffix("") for p in images}
    for image in images:
        relative = image.relative_to(folder)
        frame_id = f"{split}/{relative.with_suffix('')}"
        samples.append(PRNetSample(image, image.with_suffix(".npy"), frame_id, str(relative.parent)))
    for npy in sorted(folder.rglob("*.npy")):
        if npy.with_suffix("") not in stems:
            problems.append(f"{npy.relative_to(root)}: position map without an image")
    return samples, problems


def scan_prnet_dataset(
    root: Path, uv: UVData, lists: Mapping[str, Path | None]
) -> tuple[dict[str, list[PRNetSample]], list[str]]:
    """Every sample of train / test and every problem found (missing files, wrong map shapes, duplicate names)."""
    scanned: dict[str, list[PRNetSample]] = {}
    problems: list[str] = []
    size = uv.size
    for split in ("train", "test"):
        list_file = lists.get(split)
        samples, found = _from_list(root, split, list_file) if list_file else _from_glob(root, split)
        problems += found
        for sample in samples:
            if not sample.image.is_file():
                problems.append(f"{sample.image}: image not found")
                continue
            if not sample.posmap.is_file():
                problems.append(f"{sample.image.name}: no position map {sample.posmap.name} beside it")
                continue
            try:
                shape, dtype = _npy_shape(sample.posmap)
            except (ValueError, OSError) as err:
                problems.append(f"{sample.posmap}: not a readable .npy ({err})")
                continue
            if shape != (size, size, 3) or dtype.kind != "f":
                expected = f"expected a ({size}, {size}, 3) float map like uv-data"
                problems.append(f"{sample.posmap}: {expected}, got {shape} {dtype}")
        scanned[split] = samples
    return scanned, problems


def _yaw(image: Path) -> float:
    record = image.with_suffix(".json")
    if not record.is_file():
        return math.nan
    data = json.loads(record.read_text())
    if "pose_deg" in data:
        return float(data["pose_deg"]["yaw"])
    return float(data.get("params", {}).get("yaw", math.nan))


class PRNetSamples(Dataset):
    """One split as dict samples (keys: the module docstring)."""

    def __init__(self, samples: list[PRNetSample], uv: UVData) -> None:
        self.samples = samples
        self.uv_weight = torch.from_numpy(uv.loss_weights())
        self.uv_face_mask = torch.from_numpy(uv.face_mask.copy())
        self.uv_keypoints = torch.from_numpy(uv.keypoint_flat.astype(np.int64))
        self.size = uv.size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        image = read_image(sample.image, cv2.IMREAD_COLOR)
        if image.shape[:2] != (self.size, self.size):
            raise DatasetError(f"{sample.image}: image is {image.shape[1]}x{image.shape[0]}, its map {self.size}")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1) / 255.0
        posmap = np.load(sample.posmap).astype(np.float32).transpose(2, 0, 1)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(rgb)),
            "posmap": torch.from_numpy(np.ascontiguousarray(posmap)),
            "uv_weight": self.uv_weight,
            "uv_face_mask": self.uv_face_mask,
            "uv_keypoints": self.uv_keypoints,
            "yaw_deg": torch.tensor(_yaw(sample.image), dtype=torch.float32),
            "frame_id": sample.frame_id,
        }


class PRNetDataModule(FaceDataModule):
    """train (train/ minus held-out identities) / val (those identities) / test (test/); see the module docstring.

    Extra arguments: uv_data (default <root>/uv-data), train_list / test_list (default the fork's list files in
    <root> when present, else a glob of the split folder). data.image_size must be null or the files' map size.
    """

    FACEWORLD_WRITER: ClassVar[str] = "prnet"
    FOLDERS: ClassVar[Mapping[str, str]] = {
        "train": "train/ or trainDataLabel.txt",
        "val": "train/, held-out identities",
        "test": "test/ or testDataLabel.txt",
    }

    def __init__(
        self,
        *args: Any,
        uv_data: str | None = None,
        train_list: str | None = None,
        test_list: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # Plain values beside the base's hyper-parameters (checkpoints load with weights_only=True).
        self.hparams.update(uv_data=uv_data, train_list=train_list, test_list=test_list)
        self.uv: UVData | None = None

    def _list(self, root: Path, split: str) -> Path | None:
        given = self.hparams.get(f"{split}_list")
        if given:
            path = Path(given) if Path(given).is_absolute() else root / given
            if not path.is_file():
                raise DatasetError(f"data.{split}_list: {path} not found")
            return path
        default = root / LIST_FILES[split]
        return default if default.is_file() else None

    def scan(self, root: Path) -> tuple[dict[str, list[PRNetSample]], list[str]]:
        uv_folder = Path(self.hparams.uv_data) if self.hparams.uv_data else root / "uv-data"
        self.uv = read_uv_data(uv_folder)
        size = self.hparams.image_size
        if size is not None and size != self.uv.size:
            raise DatasetError(
                f"data.image_size={size}, but {uv_folder} holds {self.uv.size}x{self.uv.size} maps: set it to null or "
                f"{self.uv.size} (PRNet's maps are not resized)"
            )
        lists = {split: self._list(root, split) for split in ("train", "test")}
        return scan_prnet_dataset(root, self.uv, lists)

    def split(self, scanned: Mapping[str, list[PRNetSample]]) -> dict[str, list[PRNetSample]]:
        by_id = {sample.frame_id: sample for sample in scanned.get("train", [])}
        groups = {sample.frame_id: sample.group for sample in by_id.values()}
        train, val = split_train_val(
            list(by_id), self.hparams.val_fraction, "group", self.hparams.split_seed, group_of=groups.__getitem__
        )
        return {"train": [by_id[i] for i in train], "val": [by_id[i] for i in val], "test": list(scanned["test"])}

    def make_dataset(self, split: str, items: list[PRNetSample]) -> PRNetSamples:
        assert self.uv is not None
        return PRNetSamples(items, self.uv)
