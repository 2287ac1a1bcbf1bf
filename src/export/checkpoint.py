"""Checkpoint -> deployable files: rebuild the system from its checkpoint, export every module it declares.

The module is rebuilt exactly as eval does (src.utils.checkpoint.load_module: class path + hyper-parameters
stored by train.py), so an export never needs the training config. What is exported is the system's
`export_modules(image_size, deployable)` declaration (src/models/system.py): named modules with named inputs
(rgbd_face: one `generator` = inference G + the depth-as-mask rule, so the graph's output is what evaluation
scored). A module without that declaration (a bare LightningModule with a `generator`) exports its generator.

The manifest records the checkpoint, the run's dataset and that dataset's depth encoding (from its config.txt,
when the dataset folder is on this machine), so a deployed model carries what turns its depth into mm.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import hydra
import torch
from torch import nn

from src.export.generator import EXPORT_FORMATS, ExportError, export_modules, infer_input_channels
from src.export.spec import ExportInput, ExportSpec
from src.io.rgbd_layout import CONFIG_FILE, depth_encoding_from_config, read_config
from src.utils.checkpoint import load_module, stored_run_config
from src.utils.errors import CheckpointError, UserError

log = logging.getLogger(__name__)


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def dataset_root_of_run(run_config: Mapping[str, Any]) -> Path | None:
    """The dataset the run trained on: data.root, or the FaceWorld cache folder its datamodule generated."""
    data = _get(run_config, "data")
    if not isinstance(data, Mapping):
        return None
    if data.get("root"):
        return Path(str(data["root"]))
    target = data.get("_target_")
    if not target:
        return None
    from src.datamodules.base import FaceDataModule

    try:
        datamodule_class = hydra.utils.get_class(str(target))
    except Exception:  # a datamodule of another code base: its folder is unknown here
        return None
    if not (isinstance(datamodule_class, type) and issubclass(datamodule_class, FaceDataModule)):
        return None
    try:
        return datamodule_class.dataset_root_from_config(data)
    except UserError:  # settings this code base's writers no longer accept
        return None


def _trains_on_depth(run_config: Mapping[str, Any]) -> bool:
    """Whether the run's data is an RGBD layout (only then does export.json need its depth encoding)."""
    data = _get(run_config, "data")
    target = str(data.get("_target_", "")) if isinstance(data, Mapping) else ""
    return target.endswith("RGBDDataModule")


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
    """Rebuild the system stored in `ckpt_path`, export every module it declares to `out_dir`; returns the manifest.

    image_size: the side the model ran at; default: the run's data.image_size, else its dataset's frame size.
    use_ema: export the deployable modules (inference networks: EMA copies when the run kept them, with their
        inference post-processing); False: the raw trained networks (no EMA, no output masking).
    overrides: constructor arguments replacing the stored ones (e.g. {"inference_norm": "batch"}).
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExportError(f"device {device!r} requested but CUDA is not available on this machine")
    if half and not device.startswith("cuda"):
        raise ExportError("half precision export needs a CUDA device: pass device=cuda (or export float32 on CPU)")
    if batch_size < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}")
    module, checkpoint = load_module(ckpt_path, overrides=overrides, map_location="cpu")
    run_config = stored_run_config(checkpoint)
    root = dataset_root_of_run(run_config)
    size = image_size if image_size is not None else image_size_of_run(run_config, root)
    if size is None:
        raise ExportError(f"{ckpt_path}: the run records no image size and its dataset is not here; pass image_size")
    specs = deployable_modules(module, ckpt_path, int(size), use_ema)
    depth_encoding = depth_encoding_of_dataset(root)
    if depth_encoding is None and _trains_on_depth(run_config):
        log.warning(f"Dataset config of the run not found ({root}): export.json records no depth encoding")
    metadata = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "module": f"{type(module).__module__}.{type(module).__qualname__}",
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "dataset": str(root) if root is not None else None,
        "depth_encoding": depth_encoding,
    }
    return export_modules(
        specs, out_dir, formats, half, batch_size=batch_size, device=device, metadata=metadata, atol=atol
    )


def deployable_modules(
    module: nn.Module, ckpt_path: str | os.PathLike, image_size: int, deployable: bool
) -> dict[str, ExportSpec]:
    """The system's export_modules() declaration, or (a module without one) its generator on one image input."""
    declared = getattr(module, "export_modules", None)
    if callable(declared):
        specs = declared(image_size, deployable)
        if not specs:
            raise CheckpointError(f"{ckpt_path}: {type(module).__name__} declares no export modules")
        return dict(specs)
    generator = getattr(module, "generator", None)
    if not isinstance(generator, nn.Module):
        raise CheckpointError(f"{ckpt_path}: {type(module).__name__} has no `generator` network to export")
    feature = ExportInput("feature", (infer_input_channels(generator), image_size, image_size))
    return {"generator": ExportSpec(generator.eval(), inputs=(feature,), outputs=("image",), source="generator")}
