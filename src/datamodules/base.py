"""The datamodule base every system's data family builds on (rgbd today; details, reenact, video, prnet next).

What the base owns, so each family only says how to read its layout:
- argument checks in the constructor, each naming its config key (`data.batch_size must be >= 1, got 0`);
- the dataset folder: `data.root`, or the FaceWorld dataset in the family's layout generated on first use and
  cached (src/datamodules/faceworld.py; the family names its writer in FACEWORLD_WRITER);
- up-front validation: the family's `scan(root)` reports every problem it finds and the base raises ONE
  DatasetError listing them all (the first `max_listed_problems` spelled out), before any training;
- held-out splits: by identity / session (split_by_group), or in time (split_by_time: the last block of every
  group); the family's `split(scanned)` picks train / val / test;
- an empty train, val or test split is an error raised in setup, naming the split and the folder;
- the loaders.

A family implements `scan(root) -> (items per folder, problems)`, `make_dataset(split, items)` and, when its
layout is not `train/` + `eval/`, `split(scanned)`; see src/datamodules/rgbd.py.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from lightning.pytorch import LightningDataModule
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from src.datamodules.faceworld import ensure_faceworld_dataset, faceworld_cache_path
from src.utils.errors import DatasetError, UserError

log = logging.getLogger(__name__)

SPLIT_BY_CHOICES = ("auto", "group", "block")
SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------------- checks
def check_int(key: str, value: Any, minimum: int, allow_none: bool = False) -> int | None:
    """An integer >= minimum (bool is not an integer here); the error names the config key."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{key} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise UserError(f"{key} must be >= {minimum}, got {value}")
    return value


def check_fraction(key: str, value: Any, low_inclusive: float = 0.0, high_exclusive: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low_inclusive <= value < high_exclusive:
        raise UserError(f"{key} must be in [{low_inclusive:g}, {high_exclusive:g}), got {value!r}")
    return float(value)


def check_choice(key: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise UserError(f"{key} must be one of {tuple(choices)}, got {value!r}")
    return value


def raise_problems(root: Path, problems: Sequence[str], max_listed: int) -> None:
    """ONE DatasetError listing every problem (the first `max_listed` spelled out, then a count)."""
    if not problems:
        return
    shown = "; ".join(problems[:max_listed])
    more = f"; ... and {len(problems) - max_listed} more" if len(problems) > max_listed else ""
    raise DatasetError(f"{root}: {len(problems)} problem(s) in the dataset: {shown}{more}")


# ---------------------------------------------------------------------------------------------------- splits
def group_items(items: Sequence[str], group_of: Callable[[str], str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for item in sorted(items):
        groups[group_of(item)].append(item)
    return dict(groups)


def split_by_group(
    items: Sequence[str], fraction: float, group_of: Callable[[str], str], seed: int = 0
) -> tuple[list[str], list[str]]:
    """Hold out whole groups (identities / sessions): about `fraction` of the groups, at least one, never all."""
    groups = group_items(items, group_of)
    if fraction == 0.0 or not groups:
        return sorted(items), []
    if len(groups) < 2:
        raise DatasetError(f"cannot hold out validation groups: there is only the group {next(iter(groups))!r}")
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    n_val = min(len(names) - 1, max(1, round(fraction * len(names))))
    held_out = set(names[:n_val])
    kept = [item for name in sorted(groups) if name not in held_out for item in groups[name]]
    return kept, [item for name in sorted(held_out) for item in groups[name]]


def split_by_time(items: Sequence[str], fraction: float, group_of: Callable[[str], str]) -> tuple[list[str], list[str]]:
    """Hold out the last block (about `fraction`, at least one item) of every group of two or more items, in the
    items' sorted order (frame index): held out in time, never interleaved."""
    kept: list[str] = []
    held_out: list[str] = []
    if fraction == 0.0:
        return sorted(items), []
    for ids in group_items(items, group_of).values():
        n_out = min(len(ids) - 1, max(1, round(fraction * len(ids)))) if len(ids) > 1 else 0
        kept += ids[: len(ids) - n_out]
        held_out += ids[len(ids) - n_out :]
    return kept, held_out


def split_train_val(
    frame_ids: Sequence[str],
    val_fraction: float,
    split_by: str = "auto",
    seed: int = 0,
    group_of: Callable[[str], str] | None = None,
) -> tuple[list[str], list[str]]:
    """Hold out validation frames by group (whole sessions / identities) or, with one group, by a final block.

    group_of: the group of an id (default: everything before the last underscore, `<group>_<index>`).
    """
    from src.io.rgbd_layout import frame_group

    check_choice("data.split_by", split_by, SPLIT_BY_CHOICES)
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    group_of = group_of or frame_group
    if split_by == "auto":
        split_by = "group" if len(group_items(frame_ids, group_of)) >= 2 else "block"
    if split_by == "group":
        return split_by_group(frame_ids, val_fraction, group_of, seed)
    return split_by_time(frame_ids, val_fraction, group_of)


# ---------------------------------------------------------------------------------------------------- base
class FaceDataModule(LightningDataModule):
    """Validated folder -> held-out splits -> loaders; a data family subclasses it (see the module docstring).

    FACEWORLD_WRITER: the FaceWorld layout generated when `root` is null.
    FOLDERS: the folder each split is read from (for messages; the family's `split` decides the content).
    """

    FACEWORLD_WRITER: ClassVar[str | None] = None
    FOLDERS: ClassVar[Mapping[str, str]] = {"train": "train/", "val": "train/, held-out groups", "test": "eval/"}

    def __init__(
        self,
        root: str | None = None,
        image_size: int | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        val_fraction: float = 0.1,
        split_by: str = "auto",
        split_seed: int = 0,
        faceworld: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
        max_listed_problems: int = 5,
    ) -> None:
        super().__init__()
        check_int("data.image_size", image_size, 1, allow_none=True)
        check_int("data.batch_size", batch_size, 1)
        check_int("data.num_workers", num_workers, 0)
        check_fraction("data.val_fraction", val_fraction)
        check_choice("data.split_by", split_by, SPLIT_BY_CHOICES)
        check_int("data.split_seed", split_seed, 0)
        check_int("data.max_listed_problems", max_listed_problems, 1)
        # Plain containers: checkpoints store these hyper-parameters and load with weights_only=True.
        faceworld = OmegaConf.to_container(faceworld, resolve=True) if isinstance(faceworld, DictConfig) else faceworld
        self.save_hyperparameters(logger=False)
        for key, value in list(self.hparams.items()):  # a subclass's DictConfig / ListConfig arguments too
            if isinstance(value, (DictConfig, ListConfig)):
                self.hparams[key] = OmegaConf.to_container(value, resolve=True)
        self.root: Path | None = Path(root) if root else None
        self.items: dict[str, list[Any]] = {}
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ what a family implements
    def scan(self, root: Path) -> tuple[dict[str, list[Any]], list[str]]:
        """Read and check the whole layout: (items per folder, every problem found as one-line strings)."""
        raise NotImplementedError

    def make_dataset(self, split: str, items: list[Any]) -> Dataset:
        raise NotImplementedError

    def split(self, scanned: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
        """train / val / test items. Default: val held out of train/ by group (or in time), test = eval/."""
        train, val = split_train_val(
            scanned.get("train", []), self.hparams.val_fraction, self.hparams.split_by, self.hparams.split_seed
        )
        return {"train": train, "val": val, "test": list(scanned.get("eval", []))}

    # ------------------------------------------------------------------ the folder
    @classmethod
    def faceworld_settings(cls, faceworld: Mapping[str, Any] | None) -> tuple[str, dict[str, Any], int]:
        """(writer, settings, workers) of the `data.faceworld` block."""
        settings = dict(faceworld or {})
        writer = settings.pop("writer", None) or cls.FACEWORLD_WRITER
        if writer is None:
            raise DatasetError(f"data.root is null and {cls.__name__} has no FaceWorld default: set data.root")
        workers = settings.pop("workers", 1)
        check_int("data.faceworld.workers", workers, 0)
        return writer, settings, workers

    @classmethod
    def dataset_root_from_config(cls, data: Mapping[str, Any]) -> Path | None:
        """The folder a run with this data config read: data.root, or its FaceWorld cache folder (not generated)."""
        if data.get("root"):
            return Path(str(data["root"]))
        if not data.get("cache_dir"):
            return None
        writer, settings, _ = cls.faceworld_settings(data.get("faceworld"))
        return faceworld_cache_path(str(data["cache_dir"]), writer, settings)

    def resolve_root(self) -> Path:
        """The dataset folder: `root`, or the cached FaceWorld dataset (generated on first use)."""
        if self.root is None:
            if not self.hparams.cache_dir:
                raise DatasetError("data.root is null and data.cache_dir is not set: no dataset to read")
            writer, settings, workers = self.faceworld_settings(self.hparams.faceworld)
            self.root = ensure_faceworld_dataset(self.hparams.cache_dir, writer, settings, workers)
        return self.root

    # ------------------------------------------------------------------ Lightning hooks
    def prepare_data(self) -> None:
        self.resolve_root()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        root = self.resolve_root()
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset folder not found")
        scanned, problems = self.scan(root)
        raise_problems(root, problems, self.hparams.max_listed_problems)
        items = self.split(scanned)
        empty = [name for name in SPLITS if not items.get(name) and not self._may_be_empty(name)]
        if empty:
            listed = "; ".join(
                f"the {name} split is empty (read from {self.FOLDERS.get(name, name)})" for name in empty
            )
            raise DatasetError(f"{root}: {listed}")
        self.items = {name: list(items.get(name, [])) for name in SPLITS}
        self.datasets = {name: self.make_dataset(name, ids) for name, ids in self.items.items()}
        log.info(
            f"{type(self).__name__} {root}: "
            + " / ".join(f"{len(self.items[n])} {n}" for n in SPLITS)
            + " (val and test held out)"
        )

    def _may_be_empty(self, split: str) -> bool:
        """val_fraction 0 asks for no validation: the val split is then empty on purpose."""
        return split == "val" and self.hparams.val_fraction == 0.0

    def _loader(self, name: str, shuffle: bool) -> DataLoader | list:
        if not self.datasets:
            self.setup()
        dataset = self.datasets[name]
        if len(dataset) == 0:  # only val with val_fraction 0 gets here (setup rejects other empty splits)
            return []
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
