"""Checkpoint -> deployable generator files: rebuild the GAN module from its checkpoint, export its generator.

The module is rebuilt exactly as eval does (src.utils.checkpoint.load_module: class path + hyper-parameters
stored by train.py), so an export never needs the training config. The manifest records the checkpoint, its
run's dataset and the dataset's depth encoding (read from the dataset's config.txt when the folder exists),
so a deployed model carries what is needed to turn its depth channel back into millimetres.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from src.export.generator import EXPORT_FORMATS, ExportError, export_generator, infer_input_channels
from src.io.rgbd_layout import CONFIG_FILE, depth_encoding_from_config, read_config
from src.utils.checkpoint import load_module, stored_run_config
from src.utils.errors import CheckpointError

log = logging.getLogger(__name__)


def _find(config: Mapping[str, Any], *keys: str) -> Any:
    """First non-null value among dotted keys of a nested config dict."""
    for dotted in keys:
        node: Any = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            return node
    return None


def depth_encoding_of_run(run_config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The depth encoding of the run's dataset (near_mm, far_mm, bits), or None when the dataset is not here."""
    root = _find(run_config, "data.root", "data.data_dir", "data.dataset_dir", "paths.data_dir")
    if root is None or not (Path(str(root)) / CONFIG_FILE).is_file():
        return None
    path = Path(str(root)) / CONFIG_FILE
    encoding = depth_encoding_from_config(read_config(path), str(path))
    return {"near_mm": encoding.near_mm, "far_mm": encoding.far_mm, "bits": encoding.bits, "source": str(path)}


def export_checkpoint(
    ckpt_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = EXPORT_FORMATS,
    half: bool = False,
    *,
    image_size: int | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    use_ema: bool = True,
    overrides: Mapping[str, Any] | None = None,
    atol: float | None = None,
) -> dict[str, Any]:
    """Rebuild the module stored in `ckpt_path`, export its generator to `out_dir`; returns the manifest.

    image_size: input side in pixels; default: the run's `data.image_size`, else ExportError asking for it.
    use_ema: export the module's inference generator (its EMA copy when the run kept one); False: the trained G.
    overrides: constructor arguments replacing the stored ones (e.g. {"inference_norm": "batch"}).
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExportError(f"device {device!r} requested but CUDA is not available on this machine")
    if half and not device.startswith("cuda"):
        raise ExportError("half precision export needs a CUDA device: pass device=cuda (or export float32 on CPU)")
    module, checkpoint = load_module(ckpt_path, overrides=overrides, map_location="cpu")
    generator = _pick_generator(module, ckpt_path, use_ema)
    run_config = stored_run_config(checkpoint)
    size = image_size if image_size is not None else _find(run_config, "data.image_size")
    if size is None:
        raise ExportError(f"{ckpt_path}: the run records no data.image_size; pass image_size=<pixels> to export")
    channels = infer_input_channels(generator)
    example = torch.zeros(batch_size, channels, int(size), int(size), device=torch.device(device))
    metadata = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "module": f"{type(module).__module__}.{type(module).__qualname__}",
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "dataset": _find(run_config, "data.root", "data.data_dir", "data.name"),
        "depth_encoding": depth_encoding_of_run(run_config),
        "generator_source": "generator" if generator is getattr(module, "generator", None) else "ema",
    }
    if metadata["depth_encoding"] is None:
        log.warning("The run's dataset config.txt is not reachable: export.json records no depth encoding")
    return export_generator(generator, example, out_dir, formats, half, metadata=metadata, atol=atol)


def _pick_generator(module: nn.Module, ckpt_path: str | os.PathLike, use_ema: bool) -> nn.Module:
    """GANModule.inference_generator (the EMA copy when the run kept one), or the trained G itself."""
    if use_ema and isinstance(getattr(module, "inference_generator", None), nn.Module):
        return module.inference_generator
    generator = getattr(module, "generator", None)
    if not isinstance(generator, nn.Module):
        raise CheckpointError(f"{ckpt_path}: {type(module).__name__} has no `generator` network to export")
    return generator
