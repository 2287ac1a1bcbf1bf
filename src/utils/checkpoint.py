"""Checkpoints that rebuild their model alone: read, check, and instantiate a facesynth LightningModule.

Every facesynth checkpoint carries `checkpoint["facesynth"]`: the module's class path, a format version and the
resolved run config (data section included), next to Lightning's `hyper_parameters` (the network / loss /
optimizer configs as plain containers). eval and export therefore need only the checkpoint file plus optional
overrides. Loading uses `weights_only=True`: nothing in our checkpoints needs pickle of arbitrary objects.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import torch
from lightning.pytorch import LightningModule

from src.utils.errors import CheckpointError

CHECKPOINT_KEY = "facesynth"
CHECKPOINT_FORMAT = 1


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """torch.load with one clear error for a missing, truncated, corrupt or non-checkpoint file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    try:
        checkpoint = torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{p}: corrupt or truncated checkpoint ({first[:200]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{p}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def module_class_path(checkpoint: Mapping[str, Any], source: str | os.PathLike = "checkpoint") -> str:
    meta = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(meta, Mapping) or "module" not in meta:
        raise CheckpointError(f"{source}: not a facesynth checkpoint (it records no model class)")
    return str(meta["module"])


def stored_run_config(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config of the run that wrote the checkpoint ({} for checkpoints written outside train.py)."""
    return dict(checkpoint.get(CHECKPOINT_KEY, {}).get("config") or {})


def load_module(
    path: str | os.PathLike,
    expected_class: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[LightningModule, dict[str, Any]]:
    """Rebuild the module stored in `path` and load its weights; returns (module, raw checkpoint).

    `expected_class` (a `_target_` path) turns "a checkpoint of another model" into a clear error instead of a
    cryptic state-dict mismatch. `overrides` replace top-level constructor arguments (e.g. inference_norm).
    """
    checkpoint = read_checkpoint(path, map_location)
    class_path = module_class_path(checkpoint, path)
    if expected_class and class_path != expected_class:
        raise CheckpointError(f"{path}: holds a {class_path} model, but this run expects {expected_class}")
    try:
        module_class = hydra.utils.get_class(class_path)
    except Exception as err:  # an unknown class path: a checkpoint from a newer / other code base
        raise CheckpointError(f"{path}: model class {class_path} cannot be imported ({err})") from None
    kwargs = dict(checkpoint.get("hyper_parameters") or {})
    kwargs.update(overrides or {})
    module = module_class(**kwargs)
    try:
        result = module.load_state_dict(checkpoint["state_dict"], strict=False)
    except RuntimeError as err:  # shape mismatches raise even when strict=False
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err)[:200])
        raise CheckpointError(f"{path}: weights do not fit the {class_path} it describes: {detail}") from None
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing (e.g. {result.missing_keys[0]})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise CheckpointError(f"{path}: weights do not fit the {class_path} it describes: {', '.join(parts)}")
    return module, checkpoint
