"""What a checkpoint needs beyond weights and optimizers so that a killed run, resumed, repeats an uninterrupted one
exactly: the training data order (src/utils/data_order.py) and the random streams (dropout, noise, augmentation).

The random states are captured when a checkpoint is written and restored when training resumes (`on_train_start`,
after Lightning has built the loaders and run any sanity check, so nothing in between draws from the restored
streams). Random states are stored as tensors and plain lists: the checkpoint still loads with weights_only=True.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from src.utils.data_order import install_resumable_order


def capture_random_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and every CUDA device) random states as weights-only-loadable values."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position)},
        "numpy_gauss": [int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    has_gauss, gauss_value = state["numpy_gauss"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["position"], has_gauss, gauss_value))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeMixin:
    """Installs the resumable data order for fit; saves and restores the random streams with every checkpoint."""

    RANDOM_STATE_KEY = "random_state"

    def setup(self, stage: str) -> None:
        if stage == "fit" and self._trainer is not None:
            install_resumable_order(self.trainer)

    def save_random_state(self, meta: dict[str, Any]) -> None:
        meta[self.RANDOM_STATE_KEY] = capture_random_state()

    def load_random_state(self, meta: dict[str, Any]) -> None:
        """Keep the stored streams for on_train_start (an eval / export load never touches the process's RNG)."""
        object.__setattr__(self, "_pending_random_state", meta.get(self.RANDOM_STATE_KEY))

    def on_train_start(self) -> None:
        pending = getattr(self, "_pending_random_state", None)
        if pending is not None:
            restore_random_state(pending)
            object.__setattr__(self, "_pending_random_state", None)
