"""Forward-pass timing with proper device synchronisation.

CUDA kernels run asynchronously: timing a call without ``torch.cuda.synchronize`` measures only the launch (the
original's forward times were such). Here the device is synchronised before the clock starts and after every
call; on CPU ``time.perf_counter`` around the call is exact.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import torch


def measure_forward_time(
    fn: Callable[..., Any],
    input: Any,
    warmup: int = 10,
    repeats: int = 50,
    device: str | torch.device | None = None,
    no_grad: bool = True,
) -> list[float]:
    """Per-call wall time in milliseconds of ``fn(input)`` (``fn(*input)`` for a tuple), after ``warmup`` calls.

    ``device`` defaults to the input tensor's device; only CUDA needs (and gets) synchronisation.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    if device is None:
        first = input[0] if isinstance(input, tuple) else input
        device = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    args = input if isinstance(input, tuple) else (input,)
    times_ms = []
    with torch.inference_mode() if no_grad else contextlib.nullcontext():
        for _ in range(warmup):
            fn(*args)
        synchronize()
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*args)
            synchronize()
            times_ms.append((time.perf_counter() - start) * 1000.0)
    return times_ms
