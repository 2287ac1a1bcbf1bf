"""Normalisation layers, weight init and explicit inference-mode semantics shared by all networks.

Why this exists: the original pix2pix never calls ``eval()`` at test time, so BatchNorm normalises with the
statistics of the (size 1) test batch and dropout stays on. Lightning puts modules in ``eval()`` for
validation, which silently switches to running statistics. The layers here make that choice explicit:

- ``inference_norm="running"``: ordinary eval behaviour (running mean / variance).
- ``inference_norm="batch"``: in eval mode BatchNorm uses the statistics of the current batch, exactly as the
  original's train-mode BatchNorm, but without touching the running buffers.
- ``inference_dropout=True``: dropout stays active in eval mode (the original's test-time behaviour).

``SwitchableBatchNorm2d`` / ``SwitchableDropout`` keep the state-dict keys of ``nn.BatchNorm2d`` /
``nn.Dropout``, so checkpoints of the originals load unchanged. For new configs InstanceNorm is recommended:
it behaves the same in train and eval and needs none of this.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

NORM_CHOICES = ("batch", "instance", "none")
INFERENCE_NORM_CHOICES = ("running", "batch")


class SwitchableBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose eval-mode statistics are selectable: running buffers or the current batch."""

    def __init__(self, num_features: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.inference_norm = "running"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.inference_norm == "running":
            return super().forward(x)
        # Batch statistics without updating the running buffers (they stay what training left).
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, inference_norm={self.inference_norm}"


class SwitchableDropout(nn.Dropout):
    """Dropout that can stay active in eval mode (pix2pix test-time behaviour)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)
        self.active_in_eval = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training or self.active_in_eval, self.inplace)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, active_in_eval={self.active_in_eval}"


def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Factory of 2-d norm layers by name: batch (affine, running stats), instance (no affine), none."""
    if norm == "batch":
        return functools.partial(SwitchableBatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda num_features: nn.Identity()
    raise ValueError(f"norm must be one of {NORM_CHOICES}, got {norm!r}")


def conv_bias_for(norm: str) -> bool:
    """pix2pix rule: convolutions followed by BatchNorm carry no bias (the norm's shift replaces it).

    With ``norm="none"`` convs keep their bias; the original dropped it there too (a quirk with no benefit).
    """
    if norm not in NORM_CHOICES:
        raise ValueError(f"norm must be one of {NORM_CHOICES}, got {norm!r}")
    return norm != "batch"


def set_norm_inference_mode(module: nn.Module, inference_norm: str = "running", dropout: bool = False) -> nn.Module:
    """Choose how ``module`` behaves in eval mode; see the module docstring. Returns ``module``.

    ``set_norm_inference_mode(G, "batch", dropout=True)`` reproduces the original pix2pix test behaviour.
    Only the switchable layers of this package are affected; plain ``nn.BatchNorm2d`` keeps running stats.
    """
    if inference_norm not in INFERENCE_NORM_CHOICES:
        raise ValueError(f"inference_norm must be one of {INFERENCE_NORM_CHOICES}, got {inference_norm!r}")
    for layer in module.modules():
        if isinstance(layer, SwitchableBatchNorm2d):
            layer.inference_norm = inference_norm
        elif isinstance(layer, SwitchableDropout):
            layer.active_in_eval = bool(dropout)
    return module


def init_weights(module: nn.Module, init_gain: float = 0.02) -> nn.Module:
    """pix2pix 'normal' init: conv / linear weights N(0, gain), biases 0; BatchNorm scale N(1, gain), shift 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Conv1d | nn.Conv3d):
            nn.init.normal_(layer.weight, 0.0, init_gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d | nn.BatchNorm1d) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, init_gain)
            nn.init.zeros_(layer.bias)
    return module


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BatchNorm running stats are not parameters)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
