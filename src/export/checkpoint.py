"""Checkpoint -> deployable generator files: rebuild the GAN module from its checkpoint, export its generator.

The module is rebuilt exactly as eval does (src.utils.checkpoint.load_module: class path + hyper-parameters
stored by train.py), so an export never needs the training config. What is exported is the module's
`export_model()` when it defines one (rgbd_face: inference G + the depth-as-mask rule, so the graph's output
is what evaluation scored), else its inference generator (the EMA copy when the run kept one).

The manifest records the checkpoint, the run's dataset and that dataset's depth encoding (from its config.txt,
when the dataset folder is on this machine), so a deployed model carries what turns its depth into mm.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import torch
from torch import nn

from src.datamodules.faceworld import ensure_faceworld_dataset, faceworld_dataset_name
from src.export.generator import EXPORT_FORMATS, ExportError, export_generator, infer_input_channels
from src.io.rgbd_layout import CONFIG_FILE, depth_encoding_from_config, read_config
from src.utils.checkpoint import load_module, stored_run_config
from src.utils.errors import CheckpointError

log = logging.getLogger(__name__)


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def dataset_root_of_run(run_config: Mapping[str, Any]) -> Path | None:
    """The processed dataset the run trained on: data.root, or the FaceWorld cache folder it generated."""
    root = _get(run_config, "data.root")
    if root:
        return Path(str(root))
    cache_dir, faceworld = _get(run_config, "data.cache_dir"), _get(run_config, "data.faceworld")
    if not cache_dir or not isinstance(faceworld, Mapping):
        return None
    defaults = inspect.signature(ensure_faceworld_dataset).parameters
    settings = {k: faceworld.get(k, p.default) for k, p in defaults.items() if k not in ("cache_dir", "workers")}
    return Path(str(cache_dir)) / faceworld_dataset_name(**settings)


def depth_encoding_of_dataset(root: Path | None) -> dict[str, Any] | None:
    """near_mm / far_mm / bits of the dataset's config.txt (plus intrinsics when recorded), or None."""
    if root is None or not (root / CONFIG_FILE).is_file():
        return None
    path = root / CONFIG_FILE
    config = read_config(path)
    encoding = depth_encoding_from_config(config, str(path))
    entry: dict[str, Any] = {"near_mm": encoding.near_mm, "far_mm": encoding.far_mm, "bits": encoding.bits}
    for key in ("fx", "fy", "cx", "cy"):
        if key in config:
            entry[key] = float(config[key])
    entry["source"] = str(path)
    return entry


def image_size_of_run(run_config: Mapping[str, Any], root: Path | None) -> int | None:
    """The input side the generator was trained at: data.image_size, else the dataset's own frame size."""
    size = _get(run_config, "data.image_size")
    if size:
        return int(size)
    if root is not None:
        features = sorted((root / "train" / "Feature").glob("*.png"))[:1]
        image = cv2.imread(str(features[0]), cv2.IMREAD_UNCHANGED) if features else None
        if image is not None:
            return int(image.shape[0])
    if not _get(run_config, "data.root"):
        size = _get(run_config, "data.faceworld.size")
        return int(size) if size else None
    return None


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

    image_size: input side in pixels; default: the run's data.image_size, else its dataset's frame size.
    use_ema: export the module's deployable network (export_model(), else its inference generator: the EMA copy
        when the run kept one); False: the raw trained G (no EMA, no output masking).
    overrides: constructor arguments replacing the stored ones (e.g. {"inference_norm": "batch"}).
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExportError(f"device {device!r} requested but CUDA is not available on this machine")
    if half and not device.startswith("cuda"):
        raise ExportError("half precision export needs a CUDA device: pass device=cuda (or export float32 on CPU)")
    if batch_size < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}")
    module, checkpoint = load_module(ckpt_path, overrides=overrides, map_location="cpu")
    network, source = _deployable_network(module, ckpt_path, use_ema)
    run_config = stored_run_config(checkpoint)
    root = dataset_root_of_run(run_config)
    size = image_size if image_size is not None else image_size_of_run(run_config, root)
    if size is None:
        raise ExportError(f"{ckpt_path}: the run records no image size and its dataset is not here; pass image_size")
    example = torch.zeros(batch_size, infer_input_channels(network), int(size), int(size), device=torch.device(device))
    depth_encoding = depth_encoding_of_dataset(root)
    if depth_encoding is None:
        log.warning(f"Dataset config of the run not found ({root}): export.json records no depth encoding")
    metadata = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "module": f"{type(module).__module__}.{type(module).__qualname__}",
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "dataset": str(root) if root is not None else None,
        "depth_encoding": depth_encoding,
        "exported_network": source,
        # rgbd_face's export_model() ends with the depth-as-mask rule: all four channels -1 on background.
        "depth_as_mask_in_graph": source.startswith("export_model"),
    }
    return export_generator(network, example, out_dir, formats, half, metadata=metadata, atol=atol)


def _deployable_network(module: nn.Module, ckpt_path: str | os.PathLike, use_ema: bool) -> tuple[nn.Module, str]:
    """(network, what it is): export_model() / inference generator (EMA when kept) / the trained G."""
    generator = getattr(module, "generator", None)
    if not isinstance(generator, nn.Module):
        raise CheckpointError(f"{ckpt_path}: {type(module).__name__} has no `generator` network to export")
    inference = getattr(module, "inference_generator", generator) if use_ema else generator
    uses_ema = inference is not generator
    if use_ema and callable(getattr(module, "export_model", None)):
        return module.export_model(), "export_model() (EMA generator)" if uses_ema else "export_model()"
    return inference, "EMA generator" if uses_ema else "generator"
