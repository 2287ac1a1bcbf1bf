"""SUBSET_METRICS: a metric defined on some samples only (NaN elsewhere) is summarised over those samples, with
their count, and logged; the base's other metrics are summarised as before."""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from base_toy_system import ToySequences, ToySequenceSystem, toy_config
from torch.utils.data import DataLoader


class SubsetToy(ToySequenceSystem):
    SUBSET_METRICS: ClassVar[tuple[str, ...]] = ("l1_even",)

    def sample_metrics(self, batch: dict[str, Any], outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        metrics = super().sample_metrics(batch, outputs)
        even = torch.tensor([int(name[-3:]) % 2 == 0 for name in batch["frame_id"]])
        metrics["l1_even"] = torch.where(even, metrics["l1"], torch.full_like(metrics["l1"], float("nan")))
        return metrics


def test_subset_metric_is_summarised_over_its_samples() -> None:
    torch.manual_seed(0)
    module = SubsetToy(**toy_config())
    module.statistics_fitted.fill_(True)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(module, DataLoader(ToySequences(7, seed=2), batch_size=3), verbose=False)
    results = module.eval_results["val"]
    l1 = results["per_sample"]["l1"]
    assert "l1_even" not in results["per_sample"] and results["subset_sizes"] == {"l1_even": "4 of 7"}
    np.testing.assert_allclose(results["summary"]["l1_even"]["mean"], l1[[0, 2, 4, 6]].mean(), rtol=1e-6)
    np.testing.assert_allclose(results["summary"]["l1"]["mean"], l1.mean(), rtol=1e-6)
    assert float(trainer.callback_metrics["val/l1_even"]) == np.float32(results["summary"]["l1_even"]["mean"])
