"""Export deployable modules: TorchScript and ONNX, each checked against eager PyTorch.

A system declares its deployable modules and their NAMED inputs with example shapes (src/export/spec.py,
SystemHooks.export_modules); every module `<name>` is written as

    <out_dir>/<name>.torchscript.pt   torch.jit.trace of the module in eval mode (the original's deliverable)
    <out_dir>/<name>.onnx             opset >= 17, batch axis (dim 0 of every input and output) dynamic, weights inside
    <out_dir>/export.json             every module's input / output contract, checks and provenance

rgbd_face declares one module, `generator` (feature drawing -> RGBD), so its files keep their names
(generator.torchscript.pt, generator.onnx). A manifest of exactly one module also carries that module's
contract at the top level (`input`, `output`, `formats`, `exported_network`, ...), the single-network manifest
deployers already read. `export_generator` is the one-input shortcut for a bare network.

Inference semantics: a module is exported in eval mode with whatever eval-mode norm behaviour it was configured
with (``inference_norm`` of src.models.components.norms: running statistics, or the original pix2pix per-batch
BatchNorm statistics; InstanceNorm is the same either way). Dropout that was left active in eval mode (the
original's test-time noise) is switched off by default: a deployed module should be deterministic and an export
with random dropout cannot be checked against eager output.

Every file is verified before it is moved into place (written to a temporary name, re-loaded, run on fresh random
inputs with a different batch size than the trace example, compared with the eager module); a failed check
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

from src.export.spec import ExportInput, ExportSpec
from src.io.atomic import atomic_path, write_text_atomic
from src.utils.errors import UserError

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("torchscript", "onnx")
FILE_SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
TORCHSCRIPT_FILE = "generator" + FILE_SUFFIXES["torchscript"]
ONNX_FILE = "generator" + FILE_SUFFIXES["onnx"]
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


def _max_diff_of_all(results: Sequence[Any], expected: Sequence[torch.Tensor]) -> float:
    if len(results) != len(expected):
        return float("inf")
    return max(_max_abs_diff(r, e) for r, e in zip(results, expected))


def _as_outputs(value: Any, what: str, count: int) -> list[torch.Tensor]:
    """A module's return value as a list of tensors: one tensor, or a tuple / list of them (len == outputs)."""
    values = list(value) if isinstance(value, tuple | list) else [value]
    if not all(isinstance(v, torch.Tensor) for v in values):
        raise ExportError(f"{what} must return a tensor or a tuple of tensors, got {type(value).__name__}")
    if len(values) != count:
        raise ExportError(f"{what} returns {len(values)} tensor(s) but its export spec names {count} output(s)")
    return values


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check(name: str, target: Path, diff: float, atol: float) -> None:
    if not diff <= atol:  # also catches NaN
        raise ExportError(f"{target}: {name} export differs from eager PyTorch by {diff:.3g} (> tolerance {atol:g})")


def _export_torchscript(
    module: nn.Module,
    examples: tuple[torch.Tensor, ...],
    check_inputs: tuple[torch.Tensor, ...],
    expected: list[torch.Tensor],
    target: Path,
    atol: float,
) -> dict[str, Any]:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, examples, check_trace=False)
    with atomic_path(target) as tmp:
        torch.jit.save(traced, str(tmp))
        reloaded = torch.jit.load(str(tmp), map_location=check_inputs[0].device)
        with torch.no_grad():
            result = _as_outputs(reloaded(*check_inputs), f"{target.name}", len(expected))
        diff = _max_diff_of_all(result, expected)
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


def _onnx_bytes(
    module: nn.Module, examples: tuple[torch.Tensor, ...], input_names: list[str], output_names: list[str], opset: int
) -> bytes:
    """ONNX model bytes from the torch.export-based exporter, batch axis dynamic, weights inlined (< 2 GB)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    loggers = {logging.getLogger(name): level for name, level in _EXPORTER_LOGGERS.items()}
    previous = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                examples,
                input_names=input_names,
                output_names=output_names,
                opset_version=opset,
                dynamic_shapes=tuple({0: batch} for _ in examples),
                dynamo=True,
                verbose=False,
            )
    finally:
        for logger, level in previous.items():
            logger.setLevel(level)
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
    spec: ExportSpec,
    module: nn.Module,
    examples: tuple[torch.Tensor, ...],
    check_inputs: tuple[torch.Tensor, ...],
    expected: list[torch.Tensor],
    target: Path,
    atol: float,
    opset: int,
) -> dict[str, Any]:
    import onnx
    import onnxruntime

    input_names = [i.name for i in spec.inputs]
    try:
        data = _onnx_bytes(module, examples, input_names, list(spec.outputs), opset)
    except Exception as err:  # the exporter's own errors are long; keep the first line, name the target
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"{target}: ONNX export failed ({first[:300]})") from err
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        onnx.checker.check_model(str(tmp))
        try:
            session = _onnx_session(tmp, check_inputs[0].device)
            graph_inputs = [i.name for i in session.get_inputs()]
            if graph_inputs != input_names:
                raise ExportError(f"{target}: the ONNX graph's inputs are {graph_inputs}, expected {input_names}")
            feed = {name: x.detach().cpu().numpy() for name, x in zip(input_names, check_inputs)}
            result = session.run(list(spec.outputs), feed)
        except ExportError:
            raise
        except Exception as err:  # e.g. float16 kernels missing on the CPU provider (needs onnxruntime-gpu)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ExportError(f"{target}: ONNX Runtime cannot run the exported model ({first[:300]})") from err
        diff = _max_diff_of_all(result, expected)
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


def _check_request(formats: Sequence[str], opset: int, half: bool, device: torch.device, out: Path) -> None:
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise ExportError(f"export formats must be a non-empty subset of {EXPORT_FORMATS}, got {list(formats)}")
    if "onnx" in formats and opset < 17:
        raise ExportError(f"ONNX opset {opset} is too old: use >= 17")
    if half and device.type != "cuda":
        raise ExportError(
            f"half precision export needs a CUDA device (export device is {device}); export float32 on CPU "
            "or run with a GPU"
        )


def _prepared(spec_module: nn.Module, device: torch.device, dtype: torch.dtype, keep_dropout: bool, out: Path):
    """An eval-mode, frozen copy of the module (the caller's is untouched) and how many dropouts were removed."""
    model = copy.deepcopy(spec_module).to(device=device, dtype=dtype).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    stochastic = _stochastic_layers(model)
    if stochastic and keep_dropout:
        raise ExportError(
            f"{out}: {len(stochastic)} dropout layers are active in eval mode; such an export is random and cannot "
            "be checked against eager output (keep_inference_dropout=False exports the deterministic generator)"
        )
    for layer in stochastic:
        layer.active_in_eval = False
    if stochastic:
        log.warning(f"Exporting without test-time dropout: {len(stochastic)} dropout layers were active in eval mode")
    return model, len(stochastic)


def _describe_outputs(spec: ExportSpec, expected: list[torch.Tensor], dtype: torch.dtype) -> list[dict[str, Any]]:
    described = []
    declared_channels = spec.metadata.get("output_channels")
    for name, tensor in zip(spec.outputs, expected):
        entry: dict[str, Any] = {"name": name, "shape": ["batch", *list(tensor.shape[1:])], "dtype": str(tensor.dtype)}
        entry["dtype"] = entry["dtype"].removeprefix("torch.")
        if tensor.dim() == 4:
            channels = int(tensor.shape[1])
            if declared_channels is not None and len(spec.outputs) == 1:
                entry["channels"] = list(declared_channels)
            else:
                entry["channels"] = CHANNEL_NAMES.get(channels, [f"c{i}" for i in range(channels)])
        described.append(entry)
    return described


def export_module(
    name: str,
    spec: ExportSpec,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = EXPORT_FORMATS,
    half: bool = False,
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    atol: float | None = None,
    keep_inference_dropout: bool = False,
    opset: int = ONNX_OPSET,
    seed: int = 0,
) -> dict[str, Any]:
    """Export one declared module as `<name>.torchscript.pt` / `<name>.onnx`; returns its manifest entry."""
    if not name.isidentifier():
        raise ExportError(f"export module name must be an identifier (it names files), got {name!r}")
    if batch_size < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}")
    out, device = Path(out_dir), torch.device(device)
    _check_request(formats, opset, half, device, out)
    dtype = torch.float16 if half else torch.float32
    tolerance = DEFAULT_ATOL[dtype] if atol is None else float(atol)
    model, removed = _prepared(spec.module, device, dtype, keep_inference_dropout, out)

    rng = torch.Generator(device=device).manual_seed(seed)
    examples = tuple(i.example(batch_size, rng, device, dtype) for i in spec.inputs)
    # The check runs on other values and another batch size than the trace, so a shape or a value baked into
    # the graph during tracing shows up as a mismatch.
    check_inputs = tuple(i.example(batch_size + 1, rng, device, dtype) for i in spec.inputs)
    what = f"{name} ({type(spec.module).__name__})"
    with torch.no_grad():
        try:
            raw = model(*check_inputs)
        except Exception as err:
            shapes = ", ".join(f"{i.name} {tuple(x.shape)}" for i, x in zip(spec.inputs, check_inputs))
            raise ExportError(f"{what} cannot run on its declared inputs ({shapes}): {err}") from err
    expected = _as_outputs(raw, what, len(spec.outputs))

    results: dict[str, Any] = {}
    if "torchscript" in formats:
        target = out / f"{name}{FILE_SUFFIXES['torchscript']}"
        results["torchscript"] = _export_torchscript(model, examples, check_inputs, expected, target, tolerance)
        log.info(f"TorchScript: {target} (max |diff| {results['torchscript']['max_abs_diff']:.2e})")
    if "onnx" in formats:
        target = out / f"{name}{FILE_SUFFIXES['onnx']}"
        results["onnx"] = _export_onnx(spec, model, examples, check_inputs, expected, target, tolerance, opset)
        log.info(f"ONNX: {target} (max |diff| {results['onnx']['max_abs_diff']:.2e})")
    return {
        "module": f"{type(spec.module).__module__}.{type(spec.module).__qualname__}",
        "source": spec.source or type(spec.module).__name__,
        "formats": results,
        "inputs": [i.describe(dtype) for i in spec.inputs],
        "outputs": _describe_outputs(spec, expected, dtype),
        "example_batch": batch_size,
        "inference_norm": describe_inference_norm(model),
        "inference_dropout_removed": removed,
        **{k: v for k, v in spec.metadata.items() if k != "output_channels"},
        "files": {fmt: str(out / entry["file"]) for fmt, entry in results.items()},
    }


def export_modules(
    specs: Mapping[str, ExportSpec],
    out_dir: str | os.PathLike,
    formats: Sequence[str] = EXPORT_FORMATS,
    half: bool = False,
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    metadata: Mapping[str, Any] | None = None,
    atol: float | None = None,
    keep_inference_dropout: bool = False,
    opset: int = ONNX_OPSET,
    seed: int = 0,
) -> dict[str, Any]:
    """Export every declared module (see the module docstring); returns the manifest also written to export.json.

    Every request is checked before the first file is written; a failing module raises ExportError and leaves
    the files of earlier exports (and the previous export.json) in place.
    """
    if not specs:
        raise ExportError("nothing to export: the system declares no export modules")
    out, torch_device = Path(out_dir), torch.device(device)
    _check_request(formats, opset, half, torch_device, out)
    bad = [name for name in specs if not name.isidentifier()]
    if bad:
        raise ExportError(f"export module names must be identifiers (they name files), got {bad}")
    modules = {
        name: export_module(
            name,
            spec,
            out,
            formats,
            half,
            batch_size=batch_size,
            device=torch_device,
            atol=atol,
            keep_inference_dropout=keep_inference_dropout,
            opset=opset,
            seed=seed,
        )
        for name, spec in specs.items()
    }
    dtype = "float16" if half else "float32"
    manifest: dict[str, Any] = {
        "modules": modules,
        "device": torch_device.type,
        "dtype": dtype,
        "torch": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **dict(metadata or {}),
    }
    if len(modules) == 1:
        manifest.update(_single_module_fields(next(iter(modules.values()))))
    # files: {format: path} of a one-module export (the single-network layout), else {"<module>.<format>": path}.
    if len(modules) == 1:
        files = dict(next(iter(modules.values()))["files"])
    else:
        files = {f"{name}.{fmt}": path for name, entry in modules.items() for fmt, path in entry["files"].items()}
    manifest["files"] = {**files, "manifest": str(out / MANIFEST_FILE)}
    write_text_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def _single_module_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The single-network manifest layout (one input, one output at the top level) of a one-module export."""
    fields: dict[str, Any] = {
        "generator": entry["module"],
        "exported_network": entry["source"],
        "formats": entry["formats"],
        "inference_norm": entry["inference_norm"],
        "inference_dropout_removed": entry["inference_dropout_removed"],
    }
    listed = {"module", "source", "formats", "inputs", "outputs", "example_batch", "files", *fields}
    fields.update({key: value for key, value in entry.items() if key not in listed})
    if len(entry["inputs"]) == 1:
        fields["input"] = {**entry["inputs"][0], "example_batch": entry["example_batch"]}
    if len(entry["outputs"]) == 1:
        output = {**entry["outputs"][0], "range": [-1.0, 1.0]}
        if output.get("channels") == CHANNEL_NAMES[4]:
            output["background"] = "depth channel -1 (level 0 of depth_encoding)"
        fields["output"] = output
    return fields


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
    """Export a bare one-input network (NCHW in, NCHW out) as the module `generator`; returns the manifest.

    example_input: one input batch on the device to export on (its shape and device are used; its values do
    not matter). half=True exports float16 and needs a CUDA device. metadata: extra manifest entries; an
    "output_channels" entry names the output channels.
    """
    if not isinstance(example_input, torch.Tensor) or example_input.ndim != 4:
        shape = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else type(example_input)
        raise ExportError(f"example_input must be an NCHW tensor, got {shape}")
    extra = dict(metadata or {})
    channels = extra.pop("output_channels", None)
    spec = ExportSpec(
        generator,
        inputs=(ExportInput(INPUT_NAME, tuple(int(s) for s in example_input.shape[1:])),),
        outputs=(OUTPUT_NAME,),
        source="generator",
        metadata={"output_channels": channels} if channels is not None else {},
    )
    return export_modules(
        {"generator": spec}, out_dir, formats, half, batch_size=int(example_input.shape[0]),
        device=example_input.device, metadata=extra, atol=atol, keep_inference_dropout=keep_inference_dropout,
        opset=opset, seed=seed,
    )  # fmt: skip
