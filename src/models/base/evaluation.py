"""Validation / test / predict: per-sample metrics, timing, and a fixed number of kept samples for reports.

Kept samples are exactly `num_kept_samples` items (frames for image systems, sequences for sequence systems)
spread evenly over the whole evaluated split: their indices are chosen up front from the number of items the
loop will see (dataset length, capped by `limit_*_batches`), so a report shows the start, middle and end of
the split rather than its first batches. When that number is unknown (an iterable dataset) the first
`num_kept_samples` items are kept, and a warning says so.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np
import torch

from src.metrics import summarize
from src.models.base.training import CARRY, Batch, batch_size
from src.utils.errors import UserError

log = logging.getLogger(__name__)


def keep(value: Any, rows: torch.Tensor, size: int) -> Any:
    """Rows `rows` of a per-sample value (first dim / length `size`), detached on the CPU; other values whole.

    Outputs need not be tensors (lists of per-scale maps, dicts, ids): every tensor inside is detached.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return value[rows.to(value.device)].cpu() if value.dim() > 0 and value.shape[0] == size else value.cpu()
    if isinstance(value, dict):
        return {k: keep(v, rows, size) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if len(value) == size and not any(isinstance(v, torch.Tensor | list | tuple | dict) for v in value):
            return [value[int(i)] for i in rows]
        return type(value)(keep(v, rows, size) for v in value)
    return value


def join_chunks(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Whole-sequence outputs: per-chunk tensors joined along time (dim 1); the carried state is dropped."""
    if len(results) == 1:
        return {k: v for k, v in results[0].items() if k != CARRY}
    joined = {}
    for key, value in results[-1].items():
        if key == CARRY:
            continue
        if isinstance(value, torch.Tensor) and value.dim() > 1:
            joined[key] = torch.cat([r[key] for r in results], dim=1)
        else:
            joined[key] = value
    return joined


def evenly_spread(total: int, count: int) -> set[int]:
    """`count` item indices spread evenly over [0, total) (all of them when total <= count)."""
    if total <= count:
        return set(range(total))
    return {int(i) for i in np.round(np.linspace(0, total - 1, count)).astype(int)}


class EvaluationMixin:
    """val / test / predict loops of the base; see the module docstring."""

    # Metrics defined on some samples only (NaN elsewhere: a yaw bucket, a detector that may miss): summarised over
    # the samples that have them, with their count in eval_results[stage]["subset_sizes"]; not kept per sample.
    SUBSET_METRICS: ClassVar[tuple[str, ...]] = ()

    def generate_whole(self, batch: Batch, generator: Any) -> dict[str, Any]:
        """generate() through the training path: chunk by chunk with carried state, joined over time."""
        return join_chunks(self.run_chunks(batch, generator))

    @property
    def progress_bar_metric(self) -> str | None:
        """The metric on the progress bar: PROGRESS_BAR_METRIC, else the system's first headline metric."""
        if self.PROGRESS_BAR_METRIC:
            return self.PROGRESS_BAR_METRIC
        headline = getattr(self, "HEADLINE_METRICS", None)
        return headline[0] if headline else None

    def _items_to_evaluate(self, stage: str) -> int | None:
        trainer = getattr(self, "_trainer", None)
        if trainer is None:
            return None
        loaders = trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
        counts = trainer.num_val_batches if stage == "val" else trainer.num_test_batches
        dataset = getattr(loader, "dataset", None)
        try:
            total = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            return None
        batches = counts[0] if isinstance(counts, list | tuple) and counts else counts
        per_batch = getattr(loader, "batch_size", None)
        if isinstance(batches, int | float) and batches != float("inf") and per_batch:
            total = min(total, int(batches) * int(per_batch))
        return total

    def _start_evaluation(self, stage: str) -> None:
        if self.FITTED_STATISTICS and not bool(self.statistics_fitted):
            raise UserError(
                f"{type(self).__name__}: its fitted statistics ({', '.join(self.FITTED_STATISTICS)}) were never "
                "fitted; evaluate a trained checkpoint"
            )
        total = self._items_to_evaluate(stage)
        if total is None:
            log.warning(f"{stage}: split size unknown; keeping its first {self.num_kept_samples} samples")
            wanted = set(range(self.num_kept_samples))
        else:
            wanted = evenly_spread(total, self.num_kept_samples)
        self._eval_store[stage] = {"metrics": {}, "frame_ids": [], "samples": [], "wanted": wanted, "seen": 0}

    def _evaluate_batch(self, batch: Batch, stage: str) -> dict[str, Any]:
        if stage not in self._eval_store:
            self._start_evaluation(stage)
        generator = self.inference_generator
        generator.eval()
        synchronize = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        synchronize()
        start = time.perf_counter()
        outputs = self.generate_whole(batch, generator)
        synchronize()
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        size = batch_size(batch)
        metrics = {k: v.detach().float().cpu() for k, v in self.sample_metrics(batch, outputs).items()}
        metrics["forward_ms"] = torch.full((size,), elapsed_ms / size)
        store = self._eval_store[stage]
        for name, values in metrics.items():
            store["metrics"].setdefault(name, []).append(values.reshape(size))
        store["frame_ids"] += list(
            batch.get("frame_id", [f"{stage}_{len(store['frame_ids']) + i}" for i in range(size)])
        )
        rows = torch.tensor([i for i in range(size) if store["seen"] + i in store["wanted"]], dtype=torch.long)
        store["seen"] += size
        if len(rows):
            store["samples"].append((keep(batch, rows, size), keep(outputs, rows, size)))
        return outputs

    def _finish_evaluation(self, stage: str) -> None:
        store = self._eval_store.pop(stage, None)
        if not store or not store["metrics"]:
            return
        per_sample = {name: torch.cat(chunks).numpy() for name, chunks in store["metrics"].items()}
        subsets = {name: per_sample.pop(name) for name in self.SUBSET_METRICS if name in per_sample}
        summary = {name: summarize(values) for name, values in per_sample.items()}
        bar = self.progress_bar_metric or next(iter(summary))
        for name, stats in summary.items():
            self.log(f"{stage}/{name}", stats["mean"], prog_bar=name == bar, sync_dist=True)
        subset_sizes = {}
        for name, values in subsets.items():
            kept = values[np.isfinite(values)]
            subset_sizes[name] = f"{kept.size} of {values.size}"
            if kept.size:
                summary[name] = summarize(kept)
                self.log(f"{stage}/{name}", summary[name]["mean"], sync_dist=True)
        self.eval_results[stage] = {
            "frame_ids": store["frame_ids"],
            "per_sample": per_sample,
            "summary": summary,
            "samples": store["samples"],
            **({"subset_sizes": subset_sizes} if subset_sizes else {}),
        }

    def on_validation_epoch_start(self) -> None:
        self._start_evaluation("val")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate_batch(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._start_evaluation("test")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate_batch(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test")

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        generator = self.inference_generator
        generator.eval()
        return {"frame_id": batch.get("frame_id"), **self.generate_whole(batch, generator)}
