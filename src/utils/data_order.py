"""Data order that survives a kill: a training loader whose order is a function of (seed, epoch) and that resumes
mid-epoch after the batches already trained on.

Lightning restores model, optimizers and loop counters from a checkpoint, but a plain shuffling DataLoader draws a
new permutation from the global RNG when its iterator starts and always starts at the first batch: a run resumed
mid-epoch then trains on other batches than the uninterrupted run would have. Here the permutation comes from
`torch.Generator().manual_seed(seed + epoch)` (DistributedSampler's rule, so one process and N processes see the
same global order, each rank every N-th sample), and the loader is *stateful* in Lightning's sense
(`state_dict` / `load_state_dict`, saved under the fit loop in every checkpoint): it records how many batches of
the epoch the trainer had finished and, on resume, skips exactly those.

`install_resumable_order(trainer)` wraps the trainer's training-data source so every datamodule (or loader passed
to `fit`) gets this order without changing its own code; loaders with their own sampler are left alone (warned).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning.pytorch.trainer.connectors.data_connector import _DataLoaderSource
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler, SequentialSampler

log = logging.getLogger(__name__)

# DataLoader arguments carried over when a loader is rebuilt with the resumable sampler.
_CARRIED = (
    "num_workers",
    "collate_fn",
    "pin_memory",
    "drop_last",
    "timeout",
    "worker_init_fn",
    "multiprocessing_context",
    "prefetch_factor",
    "persistent_workers",
    "pin_memory_device",
)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (order fixed by seed + epoch, rank r takes every world-size-th index) that can start an
    epoch after its first `skip` indices. Being a DistributedSampler, Lightning never replaces it under DDP."""

    def __init__(self, dataset: Dataset, seed: int, shuffle: bool, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0  # only the resumed epoch starts late
        return iter(indices[skip:])


class ResumableBatchSampler(Sampler[list[int]]):
    """A system's own batch sampler (e.g. batches of one region) made resumable: its order must come from
    `set_epoch(epoch)`; the resumed epoch starts after its first `skip` batches."""

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler
        self.epoch = 0
        self.skip = 0
        self.sampler = self  # Lightning calls set_epoch on `batch_sampler.sampler` at every epoch start

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.batch_sampler.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.batch_sampler), skip, None)

    def __len__(self) -> int:
        return len(self.batch_sampler)


class ResumableLoader(DataLoader):
    """A DataLoader with a ResumableSampler whose state is (epoch, batches the trainer finished in it)."""

    def __init__(self, *args: Any, batches_done: Callable[[], int] | None = None, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches_done = batches_done or (lambda: 0)
        self._seed = seed

    def __iter__(self) -> Any:
        # Worker seeds come from the loader's own generator, reseeded per epoch: creating the iterator never draws
        # from the global stream (a resumed run builds its iterator before the stored streams are restored).
        self.generator.manual_seed(self._seed + int(self._order.epoch))
        return super().__iter__()

    @property
    def _order(self) -> Any:
        """What decides the order: the ResumableSampler, or the ResumableBatchSampler around a system's own."""
        return self.batch_sampler if isinstance(self.batch_sampler, ResumableBatchSampler) else self.sampler

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self._order.epoch), "batches_done": int(self._batches_done())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip the batches the interrupted run had trained on in its current epoch (none at an epoch boundary)."""
        self._order.set_epoch(int(state["epoch"]))
        batches = int(state["batches_done"])
        self._order.skip = batches if self._order is self.batch_sampler else batches * int(self.batch_size)


def resumable_loader(
    loader: Any, seed: int, num_replicas: int = 1, rank: int = 0, batches_done: Callable[[], int] | None = None
) -> Any:
    """`loader` rebuilt with a ResumableSampler (same dataset, batch size, workers, collate), or with its own batch
    sampler wrapped when that has `set_epoch(epoch)`; other objects and samplers are returned unchanged (warned)."""
    if isinstance(loader, ResumableLoader) or not isinstance(loader, DataLoader):
        return loader
    kwargs = {name: getattr(loader, name) for name in _CARRIED}
    if kwargs["num_workers"] == 0:
        kwargs.pop("prefetch_factor")
        kwargs["persistent_workers"] = False
    common = {"generator": torch.Generator(), "batches_done": batches_done, "seed": seed, **kwargs}
    if loader.batch_size is None and callable(getattr(loader.batch_sampler, "set_epoch", None)):
        if num_replicas > 1:
            log.warning("A custom batch sampler is not split over processes: every rank sees every batch")
        common.pop("drop_last")
        return ResumableLoader(loader.dataset, batch_sampler=ResumableBatchSampler(loader.batch_sampler), **common)
    if loader.batch_size is None or not isinstance(loader.sampler, RandomSampler | SequentialSampler):
        what = type(loader.batch_sampler if loader.batch_size is None else loader.sampler).__name__
        log.warning(
            f"The training loader's {what} has no set_epoch(epoch): its data order is not restored on resume, so a "
            "run resumed mid-epoch will not repeat an uninterrupted one exactly"
        )
        return loader
    sampler = ResumableSampler(loader.dataset, seed, isinstance(loader.sampler, RandomSampler), num_replicas, rank)
    return ResumableLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, **common)


class _ResumableSource(_DataLoaderSource):
    """The trainer's training-data source, handing out resumable loaders."""

    def __init__(self, source: _DataLoaderSource, trainer: Any) -> None:
        super().__init__(source.instance, source.name)
        self.trainer = trainer

    def dataloader(self) -> Any:
        trainer = self.trainer
        progress = trainer.fit_loop.epoch_loop.batch_progress
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        return resumable_loader(
            super().dataloader(), seed, trainer.world_size, trainer.global_rank, lambda: progress.current.processed
        )


def install_resumable_order(trainer: Any) -> None:
    """Make the training loader of `trainer.fit` resumable (idempotent); see the module docstring."""
    fit_loop = trainer.fit_loop
    if not isinstance(fit_loop._data_source, _ResumableSource):
        fit_loop._data_source = _ResumableSource(fit_loop._data_source, trainer)
