"""Aggregate per-sample metric values into the summary the original reported (mean, median, std, min, max)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def summarize(values: Iterable[float] | torch.Tensor | np.ndarray) -> dict[str, float]:
    """{mean, median, std (population, as numpy), min, max}; inf / NaN propagate honestly (e.g. PSNR of identical
    images is inf). An empty input is an error rather than a row of NaNs."""
    if isinstance(values, torch.Tensor):
        array = values.detach().cpu().to(torch.float64).flatten().numpy()
    else:
        array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("summarize() got no values")
    return {
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
    }
