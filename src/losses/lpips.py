"""LPIPS (Zhang et al. 2018) as a differentiable loss / per-sample distance.

distance = sum over layers l of mean_hw( w_l . (n(phi_l(x)) - n(phi_l(y)))^2 ), n = unit-normalised over channels,
phi = AlexNet / VGG16 / SqueezeNet features of [-1, 1] inputs, w_l = the calibrated linear heads of LPIPS v0.1.

The RGBD original computed LPIPS under ``no_grad``, so its "LPIPS loss" never trained anything; here the
distance backpropagates to ``pred`` (tested). Linear heads come from an installed ``lpips`` package (its files
only: importing it would import torchvision) or else from the copies bundled in ``lpips_weights/``; backbone
weights from the user's local torchvision file (``backbones.py``). ``"random"`` for either is for tests only.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from src.models.components.backbones import FeatureBackbone, to_three_channels
from src.utils.checkpoint import safe_torch_load

LPIPS_NETS = {
    "alex": ("alexnet", ("relu1", "relu2", "relu3", "relu4", "relu5"), (64, 192, 384, 256, 256)),
    "vgg": ("vgg16", ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"), (64, 128, 256, 512, 512)),
    "squeeze": (
        "squeezenet1_1",
        ("relu1", "fire3", "fire5", "fire6", "fire7", "fire8", "fire9"),
        (64, 128, 256, 384, 384, 512, 512),
    ),
}
BUNDLED_HEADS_DIR = Path(__file__).parent / "lpips_weights"


def default_head_path(net: str) -> Path:
    """The v0.1 linear-head file: from an installed ``lpips`` package when present, else the bundled copy."""
    spec = importlib.util.find_spec("lpips")  # locates the package without executing it
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
        if candidate.is_file():
            return candidate
    return BUNDLED_HEADS_DIR / f"{net}.pth"


class LPIPS(nn.Module):
    """Learned perceptual distance; ``reduction="none"`` gives one value per sample (shape (N,)).

    ``channels`` as in ``to_three_channels``: e.g. [0, 1, 2] colour or [3] depth of RGBD inputs.
    """

    def __init__(
        self,
        net: str = "alex",
        weight: float = 1.0,
        backbone_weights: str = "default",
        head_weights: str = "default",
        channels: list[int] | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_NETS)}, got {net!r}")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be mean or none, got {reduction!r}")
        arch, layers, widths = LPIPS_NETS[net]
        self.net = net
        self.weight = weight
        self.reduction = reduction
        self.channels = list(channels) if channels is not None else None
        self.backbone = FeatureBackbone(arch, list(layers), weights=backbone_weights)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in widths)
        if head_weights == "random":
            warnings.warn(
                f"LPIPS-{net} uses RANDOM linear heads (requested explicitly): values are meaningless", stacklevel=2
            )
            for head in self.heads:
                nn.init.uniform_(head.weight, 0.0, 1.0 / head.in_channels)
        else:
            self.load_heads(default_head_path(net) if head_weights == "default" else Path(head_weights))
        self.heads.requires_grad_(False)

    def load_heads(self, path: str | os.PathLike) -> None:
        """Load an LPIPS head file (keys ``lin<i>.model.1.weight``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"LPIPS-{self.net} linear-head file not found: {path}")
        state = safe_torch_load(path, what=f"LPIPS-{self.net} head file")
        for index, head in enumerate(self.heads):
            key = f"lin{index}.model.1.weight"
            if key not in state or state[key].shape != head.weight.shape:
                raise RuntimeError(f"LPIPS head file {path} lacks {key} of shape {tuple(head.weight.shape)}")
            head.weight.data.copy_(state[key])

    def train(self, mode: bool = True) -> LPIPS:
        """A fixed metric: always in eval mode."""
        return super().train(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        pred_features = self.backbone(to_three_channels(pred, self.channels))
        target_features = self.backbone(to_three_channels(target, self.channels))
        distance = torch.zeros(pred.shape[0], device=pred.device, dtype=pred.dtype)
        for head, p, t in zip(self.heads, pred_features, target_features):
            # F.normalize clamps the norm, so all-zero activations give a zero (not NaN) gradient.
            diff = (F.normalize(p, dim=1, eps=1e-10) - F.normalize(t, dim=1, eps=1e-10)).pow(2)
            distance = distance + head(diff).mean(dim=(1, 2, 3))
        if self.reduction == "none":
            return self.weight * distance
        return self.weight * distance.mean()
