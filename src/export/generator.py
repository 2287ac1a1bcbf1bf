"""Export a trained generator for deployment: TorchScript and ONNX, each checked against eager PyTorch.

    <out_dir>/generator.torchscript.pt   torch.jit.trace of G in eval mode (the original's deliverable)
    <out_dir>/generator.onnx             opset >= 17, dynamic batch axis, weights inside the file
    <out_dir>/export.json                input / output contract, checks, depth encoding, provenance

Inference semantics: G is exported in eval mode with whatever eval-mode norm behaviour it was configured with
(``inference_norm`` of src.models.components.norms: running statistics, or the original pix2pix per-batch
BatchNorm statistics; InstanceNorm is the same either way). Dropout that was left active in eval mode (the
original's test-time noise) is switched off by default: a deployed generator should be deterministic and an
export with random dropout cannot be checked against eager output.

Every file is verified before it is moved into place (written to a temporary name, re-loaded, run on a fresh
random input with a different batch size than the trace example, compared with eager G); a failed check
raises ExportError and leaves previously exported files untouched.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from src.io.atomic import atomic_path, write_text_atomic
from src.utils.errors import UserError

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("torchscript", "onnx")
TORCHSCRIPT_FILE = "generator.torchscript.pt"
ONNX_FILE = "generator.onnx"
MANIFEST_FILE = "export.json"
ONNX_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "feature", "image"
# Largest |export - eager| accepted. float32 differences come from kernel order (1e-6 .. 1e-5 typical);
# half precision rounds every activation to 11 bits of mantissa.
DEFAULT_ATOL = {torch.float32: 1e-4, torch.float16: 2e-2}
CHANNEL_NAMES = {1: ["gray"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "depth"]}


class ExportError(UserError):
    """An export cannot be made or does not reproduce the eager generator (one line, names the file)."""


def _stochastic_layers(module: nn.Module) -> list[nn.Module]:
    """Dropout layers that stay active in eval mode (the switchable layers of src.models.components)."""
    return [m for m in module.modules() if isinstance(m, nn.Dropout) and getattr(m, "active_in_eval", False)]


def describe_inference_norm(module: nn.Module) -> str:
    """How the exported graph normalises: what a deployer must know about batching."""
    kinds = set()
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            mode = getattr(layer, "inference_norm", "running")
            kinds.add("batchnorm-batch-statistics" if mode == "batch" else "batchnorm-running-statistics")
        elif isinstance(layer, nn.InstanceNorm2d):
            kinds.add("instancenorm")
    return ",".join(sorted(kinds)) or "none"


def infer_input_channels(generator: nn.Module) -> int:
    """in_channels of the first convolution (what the generator reads), for entry points without a config."""
    for layer in generator.modules():
        if isinstance(layer, nn.Conv2d):
            return int(layer.in_channels)
    raise ExportError(f"{type(generator).__name__}: no Conv2d found; pass the input channels explicitly")


def _max_abs_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    ta = torch.as_tensor(a).detach().float().cpu()
    tb = torch.as_tensor(b).detach().float().cpu()
    if ta.shape != tb.shape:
        return float("inf")
    return float((ta - tb).abs().max()) if ta.numel() else 0.0


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check(name: str, target: Path, diff: float, atol: float) -> None:
    if not diff <= atol:  # also catches NaN
        raise ExportError(f"{target}: {name} export differs from eager PyTorch by {diff:.3g} (> tolerance {atol:g})")


def _export_torchscript(
    generator: nn.Module, example: torch.Tensor, check_input: torch.Tensor, expected: torch.Tensor, target: Path, atol
) -> dict[str, Any]:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(generator, example, check_trace=False)
    with atomic_path(target) as tmp:
        torch.jit.save(traced, str(tmp))
        reloaded = torch.jit.load(str(tmp), map_location=check_input.device)
        with torch.no_grad():
            diff = _max_abs_diff(reloaded(check_input), expected)
        _check("TorchScript", target, diff, atol)
    return {"file": target.name, "max_abs_diff": diff, "atol": atol, "sha256": _sha256(target)}


# The exporter's libraries log every graph pass at INFO (dozens of lines into a training log) and warn once per
# torchvision operator they cannot register (torchvision is absent here by design): quiet during an export.
_EXPORTER_LOGGERS = {
    "torch.onnx": logging.WARNING,
    "torch.onnx._internal.exporter._registration": logging.ERROR,
    "onnx_ir": logging.WARNING,
    "onnxscript": logging.WARNING,
}


def _onnx_bytes(generator: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    """ONNX model bytes from the torch.export-based exporter, batch axis dynamic, weights inlined (< 2 GB)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    loggers = {logging.getLogger(name): level for name, level in _EXPORTER_LOGGERS.items()}
    previous = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        return _run_onnx_exporter(generator, example, opset, batch)
    finally:
        for logger, level in previous.items():
            logger.setLevel(level)


def _run_onnx_exporter(generator: nn.Module, example: torch.Tensor, opset: int, batch: Any) -> bytes:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            generator,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_shapes=({0: batch},),
            dynamo=True,
            verbose=False,
        )
    buffer = io.BytesIO()
    program.save(buffer, external_data=False)
    return buffer.getvalue()


def _onnx_session(path: Path, device: torch.device):
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    providers = [p for p in wanted if p in available] + ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def _export_onnx(
    generator: nn.Module,
    example: torch.Tensor,
    check_input: torch.Tensor,
    expected: torch.Tensor,
    target: Path,
    atol: float,
    opset: int,
) -> dict[str, Any]:
    import onnx
    import onnxruntime

    try:
        data = _onnx_bytes(generator, example, opset)
    except Exception as err:  # the exporter's own errors are long; keep the first line, name the target
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"{target}: ONNX export failed ({first[:300]})") from err
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        onnx.checker.check_model(str(tmp))
        try:
            session = _onnx_session(tmp, check_input.device)
            feed = {session.get_inputs()[0].name: check_input.detach().cpu().numpy()}
            result = session.run(None, feed)[0]
        except Exception as err:  # e.g. float16 kernels missing on the CPU provider (needs onnxruntime-gpu)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ExportError(f"{target}: ONNX Runtime cannot run the exported model ({first[:300]})") from err
        diff = _max_abs_diff(result, expected)
        _check("ONNX Runtime", target, diff, atol)
        provider = session.get_providers()[0]
    return {
        "file": target.name,
        "opset": opset,
        "max_abs_diff": diff,
        "atol": atol,
        "checked_with": f"onnxruntime {onnxruntime.__version__} {provider}",
        "sha256": _sha256(target),
    }


def export_generator(
    generator: nn.Module,
    example_input: torch.Tensor,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = EXPORT_FORMATS,
    half: bool = False,
    *,
    metadata: Mapping[str, Any] | None = None,
    atol: float | None = None,
    keep_inference_dropout: bool = False,
    opset: int = ONNX_OPSET,
    seed: int = 0,
) -> dict[str, Any]:
    """Export `generator` (NCHW in, NCHW out) to `out_dir`; returns the manifest also written to export.json.

    example_input: one input batch on the device to export on (shape, dtype and device are taken from it; its
    values do not matter). half=True exports float16 and needs a CUDA device. metadata: extra manifest entries
    (e.g. checkpoint path, dataset, "depth_encoding": {...}, "output_channels": [...]).
    The caller's generator is not modified (a copy is put in eval mode).
    """
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise ExportError(f"export formats must be a non-empty subset of {EXPORT_FORMATS}, got {list(formats)}")
    if "onnx" in formats and opset < 17:
        raise ExportError(f"ONNX opset {opset} is too old: use >= 17")
    if not isinstance(example_input, torch.Tensor) or example_input.ndim != 4:
        shape = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else type(example_input)
        raise ExportError(f"example_input must be an NCHW tensor, got {shape}")
    device = example_input.device
    if half and device.type != "cuda":
        raise ExportError(
            f"half precision export needs a CUDA device (example_input is on {device}); export float32 on CPU "
            "or run with a GPU"
        )
    dtype = torch.float16 if half else torch.float32
    tolerance = DEFAULT_ATOL[dtype] if atol is None else float(atol)
    out = Path(out_dir)

    model = copy.deepcopy(generator).to(device=device, dtype=dtype).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    stochastic = _stochastic_layers(model)
    if stochastic and not keep_inference_dropout:
        for layer in stochastic:
            layer.active_in_eval = False
        log.warning(f"Exporting without test-time dropout: {len(stochastic)} dropout layers were active in eval mode")
    elif stochastic:
        raise ExportError(
            f"{out}: {len(stochastic)} dropout layers are active in eval mode; such an export is random and cannot "
            "be checked against eager output (keep_inference_dropout=False exports the deterministic generator)"
        )

    rng = torch.Generator(device=device).manual_seed(seed)
    example = torch.rand(example_input.shape, generator=rng, device=device, dtype=dtype) * 2 - 1
    # The check runs on other values and another batch size than the trace, so a shape or a value baked into
    # the graph during tracing shows up as a mismatch.
    check_shape = (example.shape[0] + 1, *example.shape[1:])
    check_input = torch.rand(check_shape, generator=rng, device=device, dtype=dtype) * 2 - 1
    with torch.no_grad():
        try:
            expected = model(check_input)
        except Exception as err:
            raise ExportError(
                f"{type(generator).__name__} cannot run on an input of shape {check_shape}: {err}"
            ) from err
    if not isinstance(expected, torch.Tensor):
        raise ExportError(f"{type(generator).__name__} must return one tensor to be exported, got {type(expected)}")

    results: dict[str, Any] = {}
    if "torchscript" in formats:
        results["torchscript"] = _export_torchscript(
            model, example, check_input, expected, out / TORCHSCRIPT_FILE, tolerance
        )
        log.info(f"TorchScript: {out / TORCHSCRIPT_FILE} (max |diff| {results['torchscript']['max_abs_diff']:.2e})")
    if "onnx" in formats:
        results["onnx"] = _export_onnx(model, example, check_input, expected, out / ONNX_FILE, tolerance, opset)
        log.info(f"ONNX: {out / ONNX_FILE} (max |diff| {results['onnx']['max_abs_diff']:.2e})")

    extra = dict(metadata or {})
    out_channels = int(expected.shape[1])
    manifest = {
        "generator": f"{type(generator).__module__}.{type(generator).__qualname__}",
        "formats": results,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", *list(example.shape[1:])],
            "example_batch": int(example.shape[0]),
            "dtype": str(dtype).removeprefix("torch."),
            "layout": "NCHW",
            "range": [-1.0, 1.0],
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", *list(expected.shape[1:])],
            "dtype": str(dtype).removeprefix("torch."),
            "range": [-1.0, 1.0],
            "channels": extra.pop(
                "output_channels", CHANNEL_NAMES.get(out_channels, [f"c{i}" for i in range(out_channels)])
            ),
        },
        "inference_norm": describe_inference_norm(model),
        "inference_dropout_removed": len(stochastic),
        "device": device.type,
        "torch": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    if out_channels == 4:
        manifest["output"]["background"] = "depth channel -1 (level 0 of depth_encoding)"
    manifest["files"] = {name: str(out / entry["file"]) for name, entry in results.items()}
    manifest["files"]["manifest"] = str(out / MANIFEST_FILE)
    write_text_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest
