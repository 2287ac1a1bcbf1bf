"""The Head2Head datamodule: talking-head sequences in the original's layout, streamed as clips whose length grows.

Reads `<root>/dataset/{train,test}/{images,nmfcs,landmarks70}/<seq>/<frame>` (root may also be the `dataset/`
folder itself), the original's released datasets unchanged: nothing else is required (misc, exp_coeffs and
id_coeffs are not read; the eye-gaze image is drawn from landmarks70 as the original does,
src.convert.video.eyes). Frame files are paired across the three kinds by name (the original pairs them by position
and only asserts counts; a name missing in one kind is a problem reported up front here).

Batch (dict; B = batch size, T = clip length, H = W = image_size):
    nmfc          (B, T, 3, H, W) float32 in [-1, 1]   NMFC images
    eyes          (B, T, 3, H, W) float32 in [-1, 1]   eye-gaze images (white lids, red pupils on black)
    image         (B, T, 3, H, W) float32 in [-1, 1]   RGB frames (the source's frames in reenactment mode)
    landmarks     (B, T, 70, 2) float32                pixels at H x W (pixel centres at integers); NaN rows where
                                                       a file has only the 14 eye rows (source_landmarks70)
    sequence      list[str]                            sequence folder names (`<id>_<part>`, `<id>`, ...)
    frame_index   (B, T) int64                         the frames' numbers (file names): consecutive in a clip

Splits: train = dataset/train/ sequences; test = dataset/test/<id> (the held-out last third of each video: the
self-reenactment ground truth), or with `reenact_source` set, the reenactment inputs
test/source_{images,nmfcs,landmarks70}/<target>_<source>; val = the test sequences (val_fraction 0: none).
`target_name` keeps only sequences whose name before the first `_` is that identity (the original's rule).
A sequence whose frame numbers have gaps (faceless frames the preprocessing dropped) is split into contiguous runs,
so every clip is consecutive frames.

Sequence-length curriculum (vid2vid / Head2Head): training clips have T = min(max_sequence_length,
sequence_length * 2 ** (epoch // double_every)) frames, cut at a random start in each sequence (one clip per
sequence per epoch; a batch takes the shortest length its sequences allow). Lightning tells the batch sampler the
epoch (set_epoch). Validation and test stream every frame of each sequence in order, in windows of
eval_sequence_length frames (frame_index says where a window continues the previous one).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from src.convert.video.eyes import EYE_ROWS_70, draw_eye_image
from src.datamodules.base import FaceDataModule, check_int
from src.io.images import read_image
from src.landmarks.scheme import NUM_LANDMARKS
from src.utils.errors import DatasetError, UserError

log = logging.getLogger(__name__)

__all__ = [
    "CurriculumBatchSampler",
    "EvalBatchSampler",
    "Head2HeadDataModule",
    "Head2HeadSequences",
    "SequenceRecord",
    "curriculum_length",
    "read_landmarks70",
    "scan_head2head",
]

READ_KINDS = ("images", "nmfcs", "landmarks70")
EXTENSIONS = {"images": (".png", ".jpg", ".jpeg"), "nmfcs": (".png", ".jpg", ".jpeg"), "landmarks70": (".txt",)}


@dataclass(frozen=True)
class SequenceRecord:
    """One contiguous run of frames of a sequence folder: the files of each kind, frame by frame."""

    name: str
    frames: tuple[int, ...]
    files: Mapping[str, tuple[str, ...]]  # kind -> file paths, aligned with frames

    def __len__(self) -> int:
        return len(self.frames)


def curriculum_length(epoch: int, initial: int, double_every: int, maximum: int | None) -> int:
    """Training clip length at `epoch`: initial * 2 ** (epoch // double_every), capped at `maximum`."""
    length = initial * 2 ** (max(0, epoch) // double_every)
    return length if maximum is None else min(length, maximum)


def read_landmarks70(path: str | os.PathLike) -> np.ndarray:
    """(70, 2) float32 from a landmarks70 file (70 rows) or an eye-only file (14 rows, others NaN)."""
    try:
        points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable landmark file ({err})") from None
    if points.shape == (NUM_LANDMARKS, 2):
        return points.astype(np.float32)
    if points.shape == (len(EYE_ROWS_70), 2):
        full = np.full((NUM_LANDMARKS, 2), np.nan, np.float32)
        full[list(EYE_ROWS_70)] = points
        return full
    raise DatasetError(f"{path}: expected 70 (or 14 eye) rows of 'x y', got shape {points.shape}")


def _dataset_folder(root: Path) -> Path:
    return root / "dataset" if (root / "dataset").is_dir() else root


def _frame_number(stem: str, position: int) -> int:
    return int(stem) if stem.isdigit() else position


def _contiguous_runs(frames: list[int]) -> list[tuple[int, int]]:
    """[start, stop) positions of the runs of consecutive frame numbers."""
    runs, start = [], 0
    for k in range(1, len(frames) + 1):
        if k == len(frames) or frames[k] != frames[k - 1] + 1:
            runs.append((start, k))
            start = k
    return runs


def scan_head2head(
    root: Path, phase: str, prefix: str = "", keep: Callable[[str], bool] = lambda name: True
) -> tuple[list[SequenceRecord], list[str]]:
    """The sequences of `<dataset>/<phase>/<prefix><kind>/` (kinds images, nmfcs, landmarks70) and every problem."""
    base = _dataset_folder(root) / phase
    problems: list[str] = []
    listing: dict[str, dict[str, dict[str, Path]]] = {}
    for kind in READ_KINDS:
        folder = base / f"{prefix}{kind}"
        if not folder.is_dir():
            problems.append(f"missing folder {folder}")
            continue
        for seq in sorted(p for p in folder.iterdir() if p.is_dir() and keep(p.name)):
            files = {p.stem: p for p in seq.iterdir() if p.suffix.lower() in EXTENSIONS[kind]}
            listing.setdefault(seq.name, {})[kind] = files
    records = []
    for name in sorted(listing):
        kinds = listing[name]
        missing = [f"{prefix}{k}" for k in READ_KINDS if k not in kinds and (base / f"{prefix}{k}").is_dir()]
        if missing:
            problems.append(f"{base}: sequence {name} has no {', '.join(missing)} folder")
            continue
        if len(kinds) < len(READ_KINDS):
            continue
        stems = sorted(kinds["images"], key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
        if not stems:
            problems.append(f"{base}/{prefix}images/{name}: no frames")
            continue
        unmatched = [f"{prefix}{k}" for k in READ_KINDS[1:] if set(kinds[k]) != set(stems)]
        if unmatched:
            problems.append(
                f"{base}: sequence {name}: the frames of {', '.join(unmatched)} do not match {prefix}images "
                f"({len(stems)} frames there)"
            )
            continue
        frames = [_frame_number(s, k) for k, s in enumerate(stems)]
        for start, stop in _contiguous_runs(frames):
            files = {kind: tuple(str(kinds[kind][s]) for s in stems[start:stop]) for kind in READ_KINDS}
            records.append(SequenceRecord(name, tuple(frames[start:stop]), files))
    return records, problems


class Head2HeadSequences(Dataset):
    """Clips of sequences; an index is (record, start, length) from one of the batch samplers below."""

    def __init__(
        self, records: Sequence[SequenceRecord], image_size: int | None, eye_noise: bool = False, seed: int = 0
    ) -> None:
        self.records = list(records)
        self.image_size = image_size
        self.eye_noise = eye_noise
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def _read_rgb(self, path: str) -> tuple[np.ndarray, tuple[int, int]]:
        """The RGB image resized to image_size (bicubic, as the original) and its size (width, height) on disk."""
        image = cv2.cvtColor(read_image(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        on_disk = image.shape[1], image.shape[0]
        if self.image_size is not None and image.shape[:2] != (self.image_size, self.image_size):
            image = cv2.resize(image, (self.image_size, self.image_size), interpolation=cv2.INTER_CUBIC)
        return image, on_disk

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, Any]:
        index, start, length = key
        record = self.records[index]
        if not (start >= 0 and length >= 1 and start + length <= len(record)):
            raise IndexError(f"clip [{start}, {start + length}) outside sequence {record.name} of {len(record)} frames")
        rng = np.random.default_rng([self.seed, index, start, length]) if self.eye_noise else None
        jitter = (1.0 + rng.normal(0, 0.02), rng.normal(0, 2.0)) if rng is not None else (1.0, 0.0)
        images, nmfcs, eyes, landmarks = [], [], [], []
        for k in range(start, start + length):
            image, on_disk = self._read_rgb(record.files["images"][k])
            nmfc, _ = self._read_rgb(record.files["nmfcs"][k])
            points = read_landmarks70(record.files["landmarks70"][k])
            size = image.shape[1], image.shape[0]
            scale = np.array([size[0] / on_disk[0], size[1] / on_disk[1]], np.float32)
            points = (points + 0.5) * scale - 0.5  # pixel centres at integers on both sides
            drawn = points
            if jitter != (1.0, 0.0):  # the original's training noise on the eye image: scale and x shift
                centre = np.nanmean(points[list(EYE_ROWS_70)], axis=0)
                drawn = (points - centre) * jitter[0] + centre + np.array([jitter[1], 0.0], np.float32)
            eyes.append(draw_eye_image(drawn, size[0], size[1]))
            images.append(image)
            nmfcs.append(nmfc)
            landmarks.append(points)

        def to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
            array = np.stack(frames).astype(np.float32) / 127.5 - 1.0
            return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()

        return {
            "nmfc": to_tensor(nmfcs),
            "eyes": to_tensor(eyes),
            "image": to_tensor(images),
            "landmarks": torch.from_numpy(np.stack(landmarks).astype(np.float32)),
            "sequence": record.name,
            "frame_index": torch.tensor(record.frames[start : start + length], dtype=torch.long),
        }


class CurriculumBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Training batches: every sequence once per epoch in a seeded random order, a clip of the curriculum's length
    (or the shortest sequence's of the batch) at a random start."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        sequence_length: int,
        double_every: int,
        max_sequence_length: int | None,
        seed: int = 0,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.sequence_length = sequence_length
        self.double_every = double_every
        self.max_sequence_length = max_sequence_length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def clip_length(self) -> int:
        return curriculum_length(self.epoch, self.sequence_length, self.double_every, self.max_sequence_length)

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        for b in range(0, len(order), self.batch_size):
            batch = order[b : b + self.batch_size]
            length = min(self.clip_length, *(self.lengths[i] for i in batch))
            yield [(i, rng.randint(0, self.lengths[i] - length), length) for i in batch]


class EvalBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Validation / test batches: every frame of every sequence, in order, in windows of `window` frames; a batch
    groups consecutive windows of equal length."""

    def __init__(self, lengths: Sequence[int], batch_size: int, window: int) -> None:
        windows = [(i, s, min(window, n - s)) for i, n in enumerate(lengths) for s in range(0, n, window)]
        self.batches: list[list[tuple[int, int, int]]] = []
        for item in windows:
            last = self.batches[-1] if self.batches else None
            if last is not None and len(last) < batch_size and last[0][2] == item[2]:
                last.append(item)
            else:
                self.batches.append([item])

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        return iter([list(b) for b in self.batches])


class Head2HeadDataModule(FaceDataModule):
    """Head2Head layout -> clip batches with the sequence-length curriculum; see the module docstring."""

    FACEWORLD_WRITER: ClassVar[str | None] = "head2head"
    FOLDERS: ClassVar[Mapping[str, str]] = {
        "train": "dataset/train/",
        "val": "dataset/test/ (self-reenactment)",
        "test": "dataset/test/",
    }

    def __init__(
        self,
        root: str | None = None,
        image_size: int | None = 256,
        batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        val_fraction: float = 0.1,
        split_by: str = "auto",
        split_seed: int = 0,
        faceworld: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
        max_listed_problems: int = 5,
        sequence_length: int = 12,
        double_every: int = 5,
        max_sequence_length: int | None = None,
        eval_sequence_length: int = 50,
        eval_batch_size: int = 1,
        target_name: str | None = None,
        reenact_source: str | None = None,
        eye_noise: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(
            root, image_size, batch_size, num_workers, pin_memory, val_fraction, split_by, split_seed, faceworld,
            cache_dir, max_listed_problems,
        )  # fmt: skip
        check_int("data.sequence_length", sequence_length, 1)
        check_int("data.double_every", double_every, 1)
        check_int("data.max_sequence_length", max_sequence_length, 1, allow_none=True)
        check_int("data.eval_sequence_length", eval_sequence_length, 1)
        check_int("data.eval_batch_size", eval_batch_size, 1)
        check_int("data.seed", seed, 0)
        for key, value in (("data.target_name", target_name), ("data.reenact_source", reenact_source)):
            if value is not None and (not isinstance(value, str) or not value or "_" in value):
                raise UserError(f"{key} must be an identity name without '_' (or null), got {value!r}")
        if reenact_source is not None and target_name is None:
            raise UserError("data.reenact_source needs data.target_name (the reenacted identity)")
        self.samplers: dict[str, Sampler] = {}

    # ------------------------------------------------------------------ layout
    def _keeps(self, name: str, phase: str) -> bool:
        tokens = name.split("_")
        target, source = self.hparams.target_name, self.hparams.reenact_source
        if phase == "source":
            return tokens[0] == target and len(tokens) > 1 and tokens[1] == source
        return target is None or tokens[0] == target

    def scan(self, root: Path) -> tuple[dict[str, list[Any]], list[str]]:
        train, problems = scan_head2head(root, "train", keep=lambda n: self._keeps(n, "train"))
        if self.hparams.reenact_source is not None:
            test, more = scan_head2head(root, "test", "source_", keep=lambda n: self._keeps(n, "source"))
        else:
            test, more = scan_head2head(root, "test", keep=lambda n: self._keeps(n, "test"))
        problems += more
        if not problems and self.hparams.target_name is not None and not train:
            problems.append(f"no train sequence of data.target_name={self.hparams.target_name!r}")
        return {"train": train, "test": test}, problems

    def split(self, scanned: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
        val = list(scanned["test"]) if self.hparams.val_fraction > 0 else []
        return {"train": list(scanned["train"]), "val": val, "test": list(scanned["test"])}

    def make_dataset(self, split: str, items: list[Any]) -> Dataset:
        noise = self.hparams.eye_noise and split == "train"
        return Head2HeadSequences(items, self.hparams.image_size, eye_noise=noise, seed=self.hparams.seed)

    # ------------------------------------------------------------------ loaders
    def _sampler(self, name: str) -> Sampler:
        lengths = [len(r) for r in self.datasets[name].records]
        if name == "train":
            return CurriculumBatchSampler(
                lengths, self.hparams.batch_size, self.hparams.sequence_length, self.hparams.double_every,
                self.hparams.max_sequence_length, self.hparams.seed,
            )  # fmt: skip
        return EvalBatchSampler(lengths, self.hparams.eval_batch_size, self.hparams.eval_sequence_length)

    def _loader(self, name: str, shuffle: bool) -> DataLoader | list:
        if not self.datasets:
            self.setup()
        if len(self.datasets[name]) == 0:
            return []
        sampler = self._sampler(name)
        if name == "train" and self.trainer is not None:
            sampler.set_epoch(self.trainer.current_epoch)
        self.samplers[name] = sampler
        workers = self.hparams.num_workers
        return DataLoader(
            self.datasets[name],
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=workers > 0,
        )
