"""DG (dual-generator reenactment) data: the original's list files over parallel crop / landmark folders.

Reads the layout the original's core_IDSG loaders read (src/faceworld/writers/reenact.py writes it from FaceWorld):
a list file, one pair per line, single spaces, no header:

    csv1 csv2 csv3 csv4 id1 id3      RaFD order (6 columns): csv4 is the true target
    csv1 csv2 csv3 id1 id3           VoxCeleb order (5 columns): no true target

csv1 / csv2: two images of person id1 (the same-identity pair of IDSG's cycle loss); csv3: the source, person id3;
csv4: person id3 with csv2's pose and expression. Each CSV has a header and one data row whose columns 3.. are the
landmarks x_0, y_0, ..., x_67, y_67 in crop pixels (136 values; 204 with z for 3D, read from the `_csv3d_` sibling
folder). The image of a CSV is the same path with the `_csv_` folder swapped for `_crop_` (ext .jpg, else .png),
as the original derives it. Paths may be absolute (the original's lists) or relative to the list's folder; an
absolute path that no longer exists is looked up again below the list's folder from its `*_csv_*` folder on
(a moved dataset). Everything is checked up front: ONE DatasetError lists every bad line, missing file and
landmark file with the wrong number of values.

Batch keys (B = batch size, H = image_size, K = 68 * landmark_dims; images RGB in [0, 1], landmarks divided by the
crop side as the original divides by 256):
    source_image          (B, 3, H, H)   csv3's image: the identity to keep
    source_landmarks      (B, K)         csv3
    source_label          (B,) int64     id3
    reference_landmarks   (B, K)         csv2: the pose and expression to follow
    reference_image       (B, 3, H, H)   csv2's image
    same_image            (B, 3, H, H)   csv1's image (person id1, as the reference)
    (data.images chooses which of the four images are read; data.drawings whether the drawings are made)
    same_landmarks        (B, K)         csv1
    reference_label       (B,) int64     id1
    reference_drawing     (B, 3, H, H)   DG's landmark drawing of csv2 (src.landmarks.drawing.draw_dg_landmarks)
    target_landmarks      (B, K)         csv4 (6-column lists only)
    target_image          (B, 3, H, H)   csv4's image (6-column lists only)
    target_drawing        (B, 3, H, H)   DG's drawing of csv4 (6-column lists only)
    target_yaw_deg        (B,) float32   csv4's yaw_deg column when the CSV has one, else NaN
    frame_id              list[str]      `<id3>_<line>` (validation holds out whole source identities)
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from src.datamodules.base import FaceDataModule, check_choice, check_int, split_train_val
from src.io.images import ImageReadError, read_image
from src.landmarks.drawing import DG_REFERENCE_SIZE, DG_REFERENCE_THICKNESS, HALF_FACE_RULES, draw_dg_landmarks
from src.utils.errors import DatasetError

log = logging.getLogger(__name__)

NUM_POINTS = 68
LEADING_COLUMNS = 3
IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg")
LANDMARK_DIMS = (2, 3)


def _mirror_order() -> tuple[int, ...]:
    """iBUG-68 index each point takes in the mirror image: left and right swap, the chains keep their direction."""
    order = [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, *range(35, 30, -1)]
    order += [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes: outer corner <-> outer corner
    order += [*range(54, 47, -1), *range(59, 54, -1), *range(64, 59, -1), *range(67, 64, -1)]  # lips
    return tuple(order)


MIRROR_ORDER = _mirror_order()


def mirror_points(points: np.ndarray, side: float) -> np.ndarray:
    """(68, D) crop pixels of a face -> those of its horizontal mirror image (x -> side - x, left and right points
    swapped; y and z kept). Pixel i covers [i, i + 1) (the drawing's int(x) rule), so the mirror is side - x."""
    mirrored = points[list(MIRROR_ORDER)].copy()
    mirrored[:, 0] = side - mirrored[:, 0]
    return mirrored


def landmark_values(path: Path, dims: int = 2) -> tuple[np.ndarray, float]:
    """(68 x dims points in pixels, yaw in degrees or NaN) of one landmark CSV, read as the original reads it
    (header line, first data row, columns 3..). Raises DatasetError naming the file and the count it found."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(rows) < 2:
        raise DatasetError(f"{path}: expected a header line and a data row, got {len(rows)} line(s)")
    header, row = rows[0], rows[1]
    expected = NUM_POINTS * dims
    values = row[LEADING_COLUMNS:]
    if len(values) != expected:
        raise DatasetError(
            f"{path}: expected {expected} landmark values ({NUM_POINTS} points x {dims}) after {LEADING_COLUMNS} "
            f"leading columns, got {len(values)} ({len(values) / dims:g} points)"
        )
    try:
        points = np.asarray(values, dtype=np.float64).reshape(NUM_POINTS, dims)
    except ValueError:
        raise DatasetError(f"{path}: landmark values are not all numbers") from None
    if not np.all(np.isfinite(points)):
        raise DatasetError(f"{path}: landmark values contain NaN or infinity")
    yaw = math.nan
    if len(header) > 2 and header[2].strip() == "yaw_deg":
        try:
            yaw = float(row[2])
        except ValueError:
            yaw = math.nan
    return points, yaw


def swap_folder(path: Path, old: str, new: str) -> Path:
    """The path with the first folder containing `old` renamed (`faceworld_csv_256` -> `faceworld_crop_256`)."""
    parts = list(path.parts)
    for index, part in enumerate(parts[:-1]):
        if old in part:
            parts[index] = part.replace(old, new, 1)
            return Path(*parts)
    raise DatasetError(f"{path}: no folder with {old!r} in its name (the layout swaps it for {new!r})")


def image_of(csv_path: Path) -> Path | None:
    """The crop a landmark CSV belongs to (`_csv_` -> `_crop_`, extension .jpg as the original, else .png)."""
    base = swap_folder(csv_path, "_csv_", "_crop_")
    for ext in IMAGE_EXTENSIONS:
        candidate = base.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def resolve(entry: str, folder: Path) -> Path:
    """A list entry as a path: absolute as given, relative to the list's folder, or (an absolute path that no
    longer exists) re-rooted below the list's folder from its `*_csv*` folder on."""
    path = Path(entry)
    if not path.is_absolute():
        return folder / path
    if path.exists():
        return path
    for index, part in enumerate(path.parts):
        if "_csv" in part:
            moved = folder.joinpath(*path.parts[index:])
            if moved.exists():
                return moved
    return path


@dataclass(frozen=True)
class Pair:
    """One list line, resolved and read: paths of its images, its landmarks (pixels), labels, the target's yaw."""

    item_id: str
    images: tuple[Path, ...]  # img1, img2, img3[, img4]
    landmarks: tuple[np.ndarray, ...]  # csv1, csv2, csv3[, csv4]: (68, dims) pixels
    reference_label: int
    source_label: int
    target_yaw_deg: float

    @property
    def has_target(self) -> bool:
        return len(self.images) == 4


def read_pair_list(list_path: Path, dims: int, max_problems: int = 1000) -> tuple[list[Pair], list[str]]:
    """Every line of a DG list file as a Pair, and every problem found (bad lines, missing files, point counts)."""
    pairs: list[Pair] = []
    problems: list[str] = []
    if not list_path.is_file():
        return [], [f"{list_path}: list file not found"]
    folder = list_path.parent
    width = None
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if len(problems) >= max_problems:
            break
        if not line.strip():
            continue
        tokens = line.split(" ")
        where = f"{list_path.name} line {number}"
        if len(tokens) not in (5, 6) or (width is not None and len(tokens) != width):
            problems.append(f"{where}: expected 6 (csv1 csv2 csv3 csv4 id1 id3) or 5 columns, got {len(tokens)}")
            continue
        width = len(tokens)
        try:
            reference_label, source_label = int(tokens[-2]), int(tokens[-1])
        except ValueError:
            problems.append(f"{where}: identity labels {tokens[-2:]} are not integers")
            continue
        csvs = [resolve(token, folder) for token in tokens[:-2]]
        images, points, yaw = [], [], math.nan
        for csv_path in csvs:
            try:
                table = csv_path if dims == 2 else swap_folder(csv_path, "_csv_", "_csv3d_")
                values, yaw = landmark_values(table, dims)
                image = image_of(csv_path)
            except DatasetError as err:
                problems.append(f"{where}: {err}")
                break
            if image is None:
                problems.append(f"{where}: no crop image for {csv_path} (looked for _crop_ .jpg / .png)")
                break
            images.append(image)
            points.append(values)
        else:
            pairs.append(
                Pair(
                    f"{source_label:05d}_{number:06d}",
                    tuple(images),
                    tuple(points),
                    reference_label,
                    source_label,
                    yaw if len(csvs) == 4 else math.nan,
                )
            )
    return pairs, problems


def dg_drawing(
    points: np.ndarray, size: int, half_face: str = "symmetric", supersample: int = 1, line_width: float | None = None
) -> np.ndarray:
    """DG's landmark drawing of (68, >= 2) points in pixels of a size x size crop, as float32 in [0, 1].

    supersample 1 with line_width None is the original (src.landmarks.drawing.draw_dg_landmarks: lines of the demo's
    2 px at 256 scaled, at least 1 px, end points truncated to whole pixels). At 32 px that truncation moves every
    point by up to 8 px of a 256 crop, coarser than the landmark changes IDSG makes. supersample k > 1 draws at
    k x size (points scaled, lines k x line_width wide) and area-averages down to size: the lines keep their
    sub-pixel positions as grey levels. line_width: width in pixels of the output (null: the original's).
    """
    if line_width is None:
        line_width = max(1, round(DG_REFERENCE_THICKNESS * size / DG_REFERENCE_SIZE))
    points = np.asarray(points, dtype=np.float64)[:, :2]
    if supersample == 1:
        lines = draw_dg_landmarks(points, size, thickness=max(1, round(line_width)), half_face=half_face)
        return lines.astype(np.float32) / 255.0
    big = size * supersample
    lines = draw_dg_landmarks(
        points * supersample, big, thickness=max(1, round(line_width * supersample)), half_face=half_face
    )
    return cv2.resize(lines.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_AREA)


IMAGE_KEYS = ("same", "reference", "source", "target")


class DGPairs(Dataset):
    """The pairs of one split as dict samples (see the module docstring for the keys).

    images: which of same / reference / source / target images to read (IDSG needs same and source only);
    drawings: whether to draw reference_drawing / target_drawing; cache: keep decoded images in memory;
    flip_probability: chance that a sample is mirrored as a whole (every image and landmark set, the yaw negated):
    the mirrored pair is as true as the original (a mirrored person in the mirrored pose), so a few hundred
    training identities count twice. drawing_supersample / drawing_line_width: how the drawings are made
    (dg_drawing; 1 / None = the original)."""

    def __init__(
        self,
        pairs: list[Pair],
        image_size: int | None,
        half_face: str,
        landmark_scale: float | None,
        images: tuple[str, ...] = IMAGE_KEYS,
        drawings: bool = True,
        cache: bool = False,
        flip_probability: float = 0.0,
        drawing_supersample: int = 1,
        drawing_line_width: float | None = None,
    ):
        self.pairs = pairs
        self.drawing_supersample = int(drawing_supersample)
        self.drawing_line_width = drawing_line_width
        self.flip_probability = float(flip_probability)
        self.image_size = image_size
        self.half_face = half_face
        self.landmark_scale = landmark_scale
        self.images = tuple(images)
        self.drawings = drawings
        self.cache: dict[Path, tuple[torch.Tensor, int]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.pairs)

    def _image(self, path: Path) -> tuple[torch.Tensor, int]:
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        loaded = self._read(path)
        if self.cache is not None:
            self.cache[path] = loaded
        return loaded

    def _read(self, path: Path) -> tuple[torch.Tensor, int]:
        try:
            image = read_image(path, cv2.IMREAD_COLOR)
        except ImageReadError as err:
            raise DatasetError(str(err)) from None
        side = image.shape[1]
        if self.image_size is not None and image.shape[:2] != (self.image_size, self.image_size):
            image = cv2.resize(image, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0, side

    def _drawing(self, normalised: np.ndarray, size: int) -> torch.Tensor:
        lines = dg_drawing(
            normalised[:, :2] * size, size, self.half_face, self.drawing_supersample, self.drawing_line_width
        )
        return torch.from_numpy(lines).unsqueeze(0).repeat(3, 1, 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        wanted = [k for k in IMAGE_KEYS[: len(pair.images)] if k in self.images or k == "source"]
        loaded = {k: self._image(pair.images[IMAGE_KEYS.index(k)]) for k in wanted}
        size = int(loaded["source"][0].shape[-1])
        side = float(loaded["source"][1])
        scale = float(self.landmark_scale or side)  # the original divides by its 256 crop side
        landmarks, yaw = pair.landmarks, pair.target_yaw_deg
        if self.flip_probability and float(torch.rand(())) < self.flip_probability:
            loaded = {k: (image.flip(-1), image_side) for k, (image, image_side) in loaded.items()}
            landmarks, yaw = tuple(mirror_points(p, side) for p in landmarks), -yaw
        marks = [torch.from_numpy((p / scale).astype(np.float32)).reshape(-1) for p in landmarks]
        sample: dict[str, Any] = {f"{k}_image": image for k, (image, _) in loaded.items()}
        sample.update(
            {
                "same_landmarks": marks[0],
                "reference_landmarks": marks[1],
                "source_landmarks": marks[2],
                "reference_label": torch.tensor(pair.reference_label, dtype=torch.long),
                "source_label": torch.tensor(pair.source_label, dtype=torch.long),
                "target_yaw_deg": torch.tensor(yaw, dtype=torch.float32),
                "frame_id": pair.item_id,
            }
        )
        if self.drawings:
            sample["reference_drawing"] = self._drawing(landmarks[1] / scale, size)
        if pair.has_target:
            sample["target_landmarks"] = marks[3]
            if self.drawings:
                sample["target_drawing"] = self._drawing(landmarks[3] / scale, size)
        return sample


class DGDataModule(FaceDataModule):
    """DG list files over the original's parallel folders; see the module docstring.

    train_list / test_list: list files relative to the root (FaceWorld writes train_list.txt and test_list.txt).
    landmark_dims: 2 (the original's code) or 3 (the paper's 3D landmarks: x, y, z from the `_csv3d_` folder).
    landmark_scale: what landmark pixels are divided by; null = the crop's side (256 in the original).
    half_face: the drawing's half-face rule (src.landmarks.drawing.dg_face_part).
    images: which images a sample carries (same, reference, source, target; the source always), drawings: whether
    it carries the drawings, cache_images: keep decoded images in memory (small crops, many epochs).
    flip_probability: chance that a TRAINING sample is mirrored as a whole (DGPairs); 0 = the original.
    drawing_supersample / drawing_line_width: the drawings drawn k times larger and area-averaged down, lines this
    many output pixels wide (dg_drawing); 1 / null = the original's drawing.
    """

    FACEWORLD_WRITER: ClassVar[str | None] = "dg"
    FOLDERS: ClassVar[dict[str, str]] = {
        "train": "the train list",
        "val": "the train list, held-out source identities",
        "test": "the test list",
    }

    def __init__(
        self,
        *args: Any,
        train_list: str = "train_list.txt",
        test_list: str = "test_list.txt",
        landmark_dims: int = 2,
        landmark_scale: float | None = None,
        half_face: str = "symmetric",
        images: list[str] | tuple[str, ...] = IMAGE_KEYS,
        drawings: bool = True,
        cache_images: bool = False,
        flip_probability: float = 0.0,
        drawing_supersample: int = 1,
        drawing_line_width: float | None = None,
        **kwargs: Any,
    ) -> None:
        images = [str(name) for name in images]
        super().__init__(*args, **kwargs)
        if landmark_dims not in LANDMARK_DIMS:
            raise DatasetError(f"data.landmark_dims must be one of {LANDMARK_DIMS}, got {landmark_dims!r}")
        check_choice("data.half_face", half_face, HALF_FACE_RULES)
        if landmark_scale is not None and not landmark_scale > 0:
            raise DatasetError(f"data.landmark_scale must be positive or null, got {landmark_scale!r}")
        check_int("data.image_size", self.hparams.image_size, 16, allow_none=True)
        if not 0.0 <= float(flip_probability) <= 1.0:
            raise DatasetError(f"data.flip_probability must lie in [0, 1], got {flip_probability!r}")
        check_int("data.drawing_supersample", drawing_supersample, 1)
        if drawing_line_width is not None and not 0 < float(drawing_line_width) <= 64:
            raise DatasetError(
                f"data.drawing_line_width must lie in (0, 64] pixels or be null, got {drawing_line_width!r}"
            )
        unknown = sorted(set(images) - set(IMAGE_KEYS))
        if unknown:
            raise DatasetError(f"data.images: unknown image(s) {unknown}; choose from {list(IMAGE_KEYS)}")
        self.pairs: dict[str, Pair] = {}

    def scan(self, root: Path) -> tuple[dict[str, list[str]], list[str]]:
        scanned: dict[str, list[str]] = {}
        problems: list[str] = []
        for split, name in (("train", self.hparams.train_list), ("eval", self.hparams.test_list)):
            pairs, found = read_pair_list(root / name, self.hparams.landmark_dims)
            problems += found
            if not pairs and not found:
                problems.append(f"{root / name}: no pairs")
            for pair in pairs:
                self.pairs[f"{split}/{pair.item_id}"] = pair
            scanned[split] = [f"{split}/{pair.item_id}" for pair in pairs]
        return scanned, problems

    def split(self, scanned: dict[str, list[str]]) -> dict[str, list[str]]:
        train, val = split_train_val(
            scanned.get("train", []),
            self.hparams.val_fraction,
            self.hparams.split_by,
            self.hparams.split_seed,
            group_of=lambda item: item.split("/", 1)[1].split("_")[0],  # the source identity
        )
        return {"train": train, "val": val, "test": list(scanned.get("eval", []))}

    def make_dataset(self, split: str, items: list[str]) -> DGPairs:
        return DGPairs(
            [self.pairs[item] for item in items],
            self.hparams.image_size,
            self.hparams.half_face,
            self.hparams.landmark_scale,
            tuple(self.hparams.images),
            bool(self.hparams.drawings),
            bool(self.hparams.cache_images),
            float(self.hparams.flip_probability) if split == "train" else 0.0,
            int(self.hparams.drawing_supersample),
            self.hparams.drawing_line_width,
        )

    def landmark_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-value mean and standard deviation (divided landmarks, as the batches carry them) of csv1, csv2 and
        csv3 of the training pairs, and of their mirror images when training samples are flipped."""
        if not self.datasets:
            self.setup()
        dataset = self.datasets["train"]  # type: ignore[index]
        if not dataset.pairs:
            raise DatasetError(f"{self.hparams.train_list}: no training pairs to fit landmark statistics on")
        # Crops of one dataset share their side (the layout's `_crop_<side>` folders): read it from the first one.
        side = float(read_image(dataset.pairs[0].images[2], cv2.IMREAD_COLOR).shape[1])
        scale = float(self.hparams.landmark_scale or side)
        rows = []
        for pair in dataset.pairs:
            for points in pair.landmarks[:3]:
                rows.append(points.reshape(-1) / scale)
                if dataset.flip_probability:
                    rows.append(mirror_points(points, side).reshape(-1) / scale)
        if len(rows) < 2:
            raise DatasetError(f"{self.hparams.train_list}: too few training pairs to fit landmark statistics")
        stacked = np.stack(rows)
        return stacked.mean(axis=0), stacked.std(axis=0, ddof=1)

    def num_train_identities(self) -> int:
        """Labels the identity classifier must cover: 1 + the largest label of the training pairs."""
        if not self.datasets:
            self.setup()
        pairs = self.datasets["train"].pairs  # type: ignore[attr-defined]
        return 1 + max(max(p.reference_label, p.source_label) for p in pairs)
