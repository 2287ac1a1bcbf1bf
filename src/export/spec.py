"""What a system declares for export: deployable modules with NAMED inputs and example shapes.

A system's `export_modules(image_size)` (src/models/system.py) returns {name: ExportSpec}. Every spec is exported
to `<name>.torchscript.pt` and `<name>.onnx` with a dynamic batch axis (dimension 0 of every input and output)
and checked against eager PyTorch; export.json lists them all. Shapes exclude the batch axis, so a sequence
chunk is (T, C, H, W), a landmark vector (136,), an image (C, H, W).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

INPUT_DTYPES = ("float32", "int64")


@dataclass(frozen=True)
class ExportInput:
    """One named input: per-sample shape (no batch axis), value range of a meaningful example, dtype."""

    name: str
    shape: tuple[int, ...]
    low: float = -1.0
    high: float = 1.0
    dtype: str = "float32"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"export input name must be an identifier, got {self.name!r}")
        if any(int(s) < 1 for s in self.shape):  # () is one value per sample (an identity index)
            raise ValueError(f"export input {self.name!r}: shape must be positive sizes, got {self.shape}")
        if self.dtype not in INPUT_DTYPES:
            raise ValueError(f"export input {self.name!r}: dtype must be one of {INPUT_DTYPES}, got {self.dtype!r}")
        if not self.high > self.low:
            raise ValueError(f"export input {self.name!r}: empty range [{self.low}, {self.high}]")

    def example(self, batch: int, generator: torch.Generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Random values in [low, high) (integers for int64) of shape (batch, *shape)."""
        size = (batch, *self.shape)
        if self.dtype == "int64":
            return torch.randint(int(self.low), int(self.high), size, generator=generator, device=device)
        unit = torch.rand(size, generator=generator, device=device, dtype=dtype)
        return unit * (self.high - self.low) + self.low

    def describe(self, dtype: torch.dtype) -> dict[str, Any]:
        used = "int64" if self.dtype == "int64" else str(dtype).removeprefix("torch.")
        entry = {"name": self.name, "shape": ["batch", *self.shape], "dtype": used, "range": [self.low, self.high]}
        if len(self.shape) == 3:
            entry["layout"] = "NCHW"
        elif len(self.shape) == 4:
            entry["layout"] = "NTCHW"
        if self.description:
            entry["description"] = self.description
        return entry


@dataclass(frozen=True)
class ExportSpec:
    """A deployable module and its contract. `outputs` names the returned tensors (one name per tensor, in order).

    source: what the module is, for the manifest (e.g. "export_model() (EMA generator)").
    metadata: extra manifest entries of this module (e.g. output channel names, what the graph applies).
    """

    module: nn.Module
    inputs: Sequence[ExportInput]
    outputs: Sequence[str] = ("output",)
    source: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [i.name for i in self.inputs] + list(self.outputs)
        if not self.inputs or not self.outputs:
            raise ValueError("an export spec needs at least one input and one output")
        if len(set(names)) != len(names):
            raise ValueError(f"export spec: input / output names must be unique, got {names}")
