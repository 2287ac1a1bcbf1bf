"""DFDN detail patches: (UV texture patch, displacement patch) pairs per facial region, validated up front.

Two layouts are read (the datamodule tells them apart by `faceworld.json`):

1. FaceWorld's DFDN layout (src/faceworld/writers/details.py; the default data, generated on first use): per
   sample full UV maps with the truth beside. Patches are cut from the maps at the positions of
   `<split>/patches.csv` (byte-identical to the patch files the writer also writes), keeping those whose visible
   fraction is at least `min_visible_fraction` (hair and the far side hide part of some patches). Every patch then
   also carries what the appearance loss needs: linear albedo, the smooth proxy's camera-space normals and the
   sample's SH light.
2. A folder of patch pairs from scans (no appearance data):

       <root>/{train,test}/<region>/texture/<identity>/<name>.png        8-bit grey texture patch (V channel)
       <root>/{train,test}/<region>/displacement/<identity>/<name>.png   16-bit ((x + 1) / 2 * 65535) or 8-bit
                                                                         ((x + 1) / 2 * 255) displacement
   with <region> forehead or mouth, square patches of one size, and `data.displacement_scale_mm` /
   `data.texel_mm` saying what x = 1 and one texel are in millimetres (FaceWorld records both in its json).

Splits: val = held-out identities of train/ (never an identity on both sides), test = test/.

Batches are of ONE region each (a batch sampler groups the indices by region; the two regions are two models).
Batch keys (B = batch size, p = patch side):
    texture          (B,1,p,p) float32   (V / 255 - mean) * 2, the original's preprocessing
    displacement     (B,1,p,p) float32   x in [-1, 1]; x * scale_mm = millimetres (negative = groove)
    region           (B,) int64          index into REGIONS (forehead 0, mouth 1); equal within a batch
    scale_mm         (B,) float32        displacement_scale_mm
    texel_mm         (B,2) float32       mm per texel along u (columns) and v (rows)
    has_appearance   (B,) bool           albedo / proxy_normals / light below are real (FaceWorld) or filler
    albedo           (B,1,p,p) float32   linear albedo, max over R, G, B (the V channel's source)
    proxy_normals    (B,3,p,p) float32   camera-space unit normals of the smooth proxy (filler: facing camera)
    light            (B,9) float32       SH lighting, mean over colours (src.geometry.sh order)
    frame_id         list[str]           `<region>/<identity>/<expression or folders>/<name>`
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, Sampler

from src.datamodules.base import FaceDataModule, check_fraction, check_int, split_train_val
from src.faceworld.writers.details import META_FILE, PATCH_COLUMNS, decode_displacement, preprocess_texture_patch
from src.io.images import ImageReadError, read_image
from src.models.components.dfdn_networks import REGIONS
from src.utils.errors import DatasetError, UserError

log = logging.getLogger(__name__)

GAMMA = 2.2
FACING_CAMERA = (0.0, 0.0, -1.0)


@dataclass(frozen=True)
class PatchItem:
    """One patch: where its texture and displacement come from (a FaceWorld sample folder or two files)."""

    region: str
    identity: str
    name: str  # expression / sub-folders / file stem
    split: str
    sample_dir: str | None  # FaceWorld: the sample folder holding the full maps
    row: int
    col: int
    texture_path: str | None  # scan pairs: the two patch files
    displacement_path: str | None

    @property
    def frame_id(self) -> str:
        return f"{self.region}/{self.identity}/{self.name}"


def decode_displacement_image(image: np.ndarray, where: str) -> np.ndarray:
    """16-bit or 8-bit displacement PNG -> x in [-1, 1]."""
    if image.ndim != 2:
        raise DatasetError(f"{where}: expected a 1-channel displacement image, got shape {image.shape}")
    if image.dtype == np.uint16:
        return decode_displacement(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0 * 2.0 - 1.0
    raise DatasetError(f"{where}: displacement must be 8- or 16-bit, got {image.dtype}")


class PatchDataset(Dataset):
    """Patch items -> batch dicts (see the module docstring); FaceWorld sample maps are cached (LRU)."""

    def __init__(
        self, items: Sequence[PatchItem], patch_size: int, scale_mm: float, texel_mm: Sequence[float], cache: int = 32
    ) -> None:
        self.items = list(items)
        self.patch_size = patch_size
        self.scale_mm = float(scale_mm)
        self.texel_mm = torch.tensor([float(v) for v in texel_mm], dtype=torch.float32)
        self.regions = [REGIONS.index(item.region) for item in self.items]
        self._cache: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return len(self.items)

    def _sample_maps(self, folder: str) -> dict[str, np.ndarray]:
        """The sample's maps as stored (uint8 / uint16: a 4096 sample is ~150 MB), least recently used dropped."""
        if folder in self._cache:
            self._cache.move_to_end(folder)
            return self._cache[folder]
        base = Path(folder)
        displacement = read_image(base / "displacement.png")
        if displacement.ndim != 2 or displacement.dtype != np.uint16:
            raise DatasetError(f"{base / 'displacement.png'}: expected 16-bit 1-channel, got {displacement.dtype}")
        maps = {
            "texture": read_image(base / "texture.png"),
            "displacement": displacement,
            "albedo": read_image(base / "albedo.png"),  # BGR, display gamma
            "proxy_normals": read_image(base / "proxy_normals.png"),  # BGR
            "light": np.asarray(json.loads((base / "proxy.json").read_text())["sh_light"], np.float32).mean(axis=1),
        }
        self._cache[folder] = maps
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return maps

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        p = self.patch_size
        if item.sample_dir is not None:
            maps = self._sample_maps(item.sample_dir)
            r, c = item.row, item.col
            texture = maps["texture"][r : r + p, c : c + p]
            displacement = decode_displacement(maps["displacement"][r : r + p, c : c + p])
            albedo = np.power(maps["albedo"][r : r + p, c : c + p].astype(np.float32) / 255.0, GAMMA).max(axis=2)
            normals = maps["proxy_normals"][r : r + p, c : c + p, ::-1].astype(np.float32) / 127.5 - 1.0
            normals = (normals / np.maximum(np.linalg.norm(normals, axis=2, keepdims=True), 1e-6)).transpose(2, 0, 1)
            light, has_appearance = maps["light"], True
        else:
            texture = read_image(item.texture_path)
            displacement = decode_displacement_image(read_image(item.displacement_path), str(item.displacement_path))
            albedo = np.ones((p, p), np.float32)
            normals = np.broadcast_to(np.asarray(FACING_CAMERA, np.float32)[:, None, None], (3, p, p))
            light, has_appearance = np.zeros(9, np.float32), False
        return {
            "texture": torch.from_numpy(preprocess_texture_patch(texture)[None].copy()),
            "displacement": torch.from_numpy(np.ascontiguousarray(displacement, np.float32)[None]),
            "region": torch.tensor(REGIONS.index(item.region), dtype=torch.long),
            "scale_mm": torch.tensor(self.scale_mm, dtype=torch.float32),
            "texel_mm": self.texel_mm.clone(),
            "has_appearance": torch.tensor(has_appearance),
            "albedo": torch.from_numpy(np.ascontiguousarray(albedo, np.float32)[None]),
            "proxy_normals": torch.from_numpy(np.ascontiguousarray(normals, np.float32)),
            "light": torch.from_numpy(np.asarray(light, np.float32).copy()),
            "frame_id": item.frame_id,
        }


class RegionBatchSampler(Sampler[list[int]]):
    """Batches of one region each: indices grouped by region, cut into batches; with `shuffle` the indices and
    the batch order are a function of (seed, epoch), so a resumed run repeats them (src/utils/data_order.py wraps
    it; Lightning calls set_epoch at every epoch start through `.sampler`)."""

    def __init__(self, regions: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0) -> None:
        self.regions = list(regions)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        batches = []
        for region in sorted(set(self.regions)):
            indices = [i for i, r in enumerate(self.regions) if r == region]
            if self.shuffle:
                rng.shuffle(indices)
            batches += [indices[s : s + self.batch_size] for s in range(0, len(indices), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        counts = [self.regions.count(r) for r in set(self.regions)]
        return sum(-(-n // self.batch_size) for n in counts)


class DFDNDataModule(FaceDataModule):
    """DFDN patch pairs (see the module docstring). Extra arguments over FaceDataModule:

    min_visible_fraction: FaceWorld patches whose visible share of texels is lower are left out.
    displacement_scale_mm / texel_mm: the physical scale of a scan folder (FaceWorld's json wins when present).
    regions: the regions to read (default both).
    max_patches_per_split: cap on train / val / test patches (evenly spaced), null = all.
    sample_cache: FaceWorld samples whose maps stay in memory per split (least recently used dropped): patches
        are drawn across all samples, so a cache smaller than the split rereads maps (the cpu preset's sample is
        ~0.6 MB, the original preset's ~150 MB).
    """

    FACEWORLD_WRITER: ClassVar[str | None] = "dfdn"
    FOLDERS: ClassVar[Mapping[str, str]] = {"train": "train/", "val": "train/, held-out identities", "test": "test/"}

    def __init__(
        self,
        *args: Any,
        min_visible_fraction: float = 0.9,
        displacement_scale_mm: float | None = None,
        texel_mm: Sequence[float] | None = None,
        regions: Sequence[str] = REGIONS,
        max_patches_per_split: Mapping[str, int | None] | None = None,
        sample_cache: int = 512,
        **kwargs: Any,
    ) -> None:
        # Lightning collects hyper-parameters from every __init__ frame: hand the base plain containers only.
        kwargs = {k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig | ListConfig) else v
                  for k, v in kwargs.items()}  # fmt: skip
        super().__init__(*args, **kwargs)
        check_fraction("data.min_visible_fraction", min_visible_fraction, 0.0, 1.0001)
        check_int("data.sample_cache", sample_cache, 1)
        unknown = [r for r in regions if r not in REGIONS]
        if unknown or not regions:
            raise UserError(f"data.regions: unknown {unknown or 'none given'}; known: {list(REGIONS)}")
        for split, cap in dict(max_patches_per_split or {}).items():
            if split not in ("train", "val", "test"):
                raise UserError(f"data.max_patches_per_split: unknown split {split!r} (train, val, test)")
            check_int(f"data.max_patches_per_split.{split}", cap, 1, allow_none=True)
        if displacement_scale_mm is not None and not float(displacement_scale_mm) > 0:
            raise UserError(f"data.displacement_scale_mm must be positive, got {displacement_scale_mm}")
        # The base stored its own arguments (as plain containers); these join them the same way.
        self.hparams.update(
            {
                "min_visible_fraction": float(min_visible_fraction),
                "displacement_scale_mm": None if displacement_scale_mm is None else float(displacement_scale_mm),
                "texel_mm": None if texel_mm is None else [float(v) for v in texel_mm],
                "regions": [str(r) for r in regions],
                "max_patches_per_split": {str(k): v for k, v in dict(max_patches_per_split or {}).items()},
                "sample_cache": int(sample_cache),
            }
        )
        self.patch_size: int | None = None
        self.scale_mm: float | None = None
        self.texel: tuple[float, float] | None = None
        self._by_id: dict[str, PatchItem] = {}

    # ------------------------------------------------------------------ layouts
    def scan(self, root: Path) -> tuple[dict[str, list[Any]], list[str]]:
        if (root / META_FILE).is_file():
            items, problems = self._scan_faceworld(root)
        else:
            items, problems = self._scan_pairs(root)
        wanted = set(self.hparams.regions)
        items = [i for i in items if i.region in wanted]
        self._by_id = {i.frame_id + f"@{i.split}": i for i in items}
        scanned = {split: [k for k, i in self._by_id.items() if i.split == split] for split in ("train", "test")}
        return scanned, problems

    def _scan_faceworld(self, root: Path) -> tuple[list[PatchItem], list[str]]:
        try:
            meta = json.loads((root / META_FILE).read_text())
            self.patch_size = int(meta["patch_size"])
            self.scale_mm = float(meta["displacement_scale_mm"])
            self.texel = tuple(float(v) for v in meta["texel_mm_u_v"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"{root / META_FILE}: not a readable FaceWorld DFDN record ({err!r})") from None
        items, problems = [], []
        threshold = float(self.hparams.min_visible_fraction)
        for split in ("train", "test"):
            index = root / split / "patches.csv"
            try:
                with open(index, newline="") as handle:
                    rows = list(csv.DictReader(handle))
            except OSError as err:
                problems.append(f"{split}/patches.csv: cannot read ({err.strerror or err})")
                continue
            if rows and set(PATCH_COLUMNS) - set(rows[0]):
                problems.append(f"{split}/patches.csv: missing columns {sorted(set(PATCH_COLUMNS) - set(rows[0]))}")
                continue
            samples: set[tuple[str, str]] = set()
            for row in rows:
                if float(row["visible_fraction"]) < threshold:
                    continue
                folder = root / split / row["identity"] / row["expression"]
                samples.add((row["identity"], row["expression"]))
                name = f"{row['expression']}/{int(row['row']):04d}_{int(row['col']):04d}"
                items.append(
                    PatchItem(row["region"], row["identity"], name, split, str(folder), int(row["row"]),
                              int(row["col"]), None, None)
                )  # fmt: skip
            for identity, expression in sorted(samples):
                folder = root / split / identity / expression
                for file in ("texture.png", "displacement.png", "albedo.png", "proxy_normals.png", "proxy.json"):
                    if not (folder / file).is_file():
                        problems.append(f"{split}/{identity}/{expression}/{file} is missing")
        return items, problems

    def _scan_pairs(self, root: Path) -> tuple[list[PatchItem], list[str]]:
        scale, texel = self.hparams.displacement_scale_mm, self.hparams.texel_mm
        if scale is None or texel is None or len(texel) != 2:
            raise DatasetError(
                f"{root}: a folder of scan patch pairs needs data.displacement_scale_mm and data.texel_mm ([u, v] mm "
                "per texel) set (FaceWorld datasets record them in faceworld.json)"
            )
        self.scale_mm, self.texel = float(scale), (float(texel[0]), float(texel[1]))
        items, problems, sizes = [], [], {}
        for split in ("train", "test"):
            for region in REGIONS:
                tex_root = root / split / region / "texture"
                disp_root = root / split / region / "displacement"
                textures = {p.relative_to(tex_root) for p in tex_root.rglob("*.png")} if tex_root.is_dir() else set()
                displacements = (
                    {p.relative_to(disp_root) for p in disp_root.rglob("*.png")} if disp_root.is_dir() else set()
                )
                for rel in sorted(textures ^ displacements):
                    kind = "displacement" if rel in textures else "texture"
                    problems.append(f"{split}/{region}/{kind}/{rel} is missing (its pair exists)")
                for rel in sorted(textures & displacements):
                    if len(rel.parts) < 2:
                        problems.append(f"{split}/{region}/texture/{rel}: put patches in an <identity>/ folder")
                        continue
                    checked = self._check_pair(tex_root / rel, disp_root / rel, sizes)
                    if checked:
                        problems.append(checked)
                        continue
                    name = str(rel.with_suffix("")).split("/", 1)[1]
                    items.append(
                        PatchItem(region, rel.parts[0], name, split, None, 0, 0, str(tex_root / rel),
                                  str(disp_root / rel))
                    )  # fmt: skip
        if len(sizes) > 1:
            problems.append(f"patches of several sizes: {', '.join(f'{s} ({p})' for s, p in sizes.items())}")
        if sizes:
            self.patch_size = next(iter(sizes))
        return items, problems

    @staticmethod
    def _check_pair(texture: Path, displacement: Path, sizes: dict[int, str]) -> str | None:
        try:
            tex, disp = read_image(texture), read_image(displacement)
        except ImageReadError as err:
            return str(err)
        if tex.ndim != 2 or tex.dtype != np.uint8:
            return f"{texture}: expected an 8-bit grey texture patch, got {tex.dtype} shape {tex.shape}"
        if disp.ndim != 2 or disp.dtype not in (np.uint8, np.uint16):
            return f"{displacement}: expected an 8- or 16-bit 1-channel displacement, got {disp.dtype} {disp.shape}"
        if tex.shape != disp.shape or tex.shape[0] != tex.shape[1]:
            return f"{texture}: texture {tex.shape} and displacement {disp.shape} must be the same square size"
        sizes.setdefault(tex.shape[0], str(texture))
        return None

    # ------------------------------------------------------------------ splits and datasets
    def split(self, scanned: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
        train, val = split_train_val(
            scanned.get("train", []), self.hparams.val_fraction, "group", self.hparams.split_seed,
            group_of=lambda key: self._by_id[key].identity,
        )  # fmt: skip
        splits = {"train": train, "val": val, "test": list(scanned.get("test", []))}
        caps = dict(self.hparams.max_patches_per_split or {})
        for name, keys in splits.items():
            cap = caps.get(name)
            if cap is not None and len(keys) > cap:
                splits[name] = [keys[int(i)] for i in np.round(np.linspace(0, len(keys) - 1, cap)).astype(int)]
        return splits

    def make_dataset(self, split: str, items: list[Any]) -> Dataset:
        wanted = self.hparams.image_size
        if wanted is not None and int(wanted) != self.patch_size:
            raise DatasetError(
                f"{self.root}: its patches are {self.patch_size} px but data.image_size (the model's patch side) is "
                f"{wanted}; write or pick a dataset with {wanted}-px patches or change model.generator.patch_size"
            )
        return PatchDataset(
            [self._by_id[k] for k in items], int(self.patch_size), self.scale_mm, self.texel, self.hparams.sample_cache
        )

    def _loader(self, name: str, shuffle: bool) -> DataLoader | list:
        if not self.datasets:
            self.setup()
        dataset = self.datasets[name]
        if len(dataset) == 0:
            return []
        workers = self.hparams.num_workers
        sampler = RegionBatchSampler(dataset.regions, self.hparams.batch_size, shuffle, self.hparams.split_seed)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=workers > 0,
        )
