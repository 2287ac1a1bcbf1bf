"""VGG perceptual loss (pix2pixHD / vid2vid): weighted L1 between VGG19 activations of fake and real.

Defaults are pix2pixHD's: relu1_1 .. relu5_1 of VGG19 weighted [1/32, 1/16, 1/8, 1/4, 1]. Unlike pix2pixHD the
inputs are ImageNet-normalised (the backbone does it), since the network was trained on such inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.models.components.backbones import FeatureBackbone, to_three_channels

VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class VGGPerceptualLoss(nn.Module):
    """``weight * sum_i layer_weights[i] * L1(phi_i(pred), phi_i(target))``; the target branch has no gradient.

    ``channels`` picks the channels compared (e.g. [0, 1, 2] for the colour of RGBD, [3] for its depth, which is
    repeated to 3 channels). ``backbone_weights``: "default", a torchvision .pth path, or "random" (tests only).
    """

    def __init__(
        self,
        weight: float = 1.0,
        layers: list[str] | tuple[str, ...] = VGG_LAYERS,
        layer_weights: list[float] | tuple[float, ...] = VGG_LAYER_WEIGHTS,
        arch: str = "vgg19",
        backbone_weights: str = "default",
        channels: list[int] | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != len(layer_weights):
            raise ValueError(f"{len(layers)} layers but {len(layer_weights)} layer_weights")
        self.weight = weight
        self.layer_weights = [float(w) for w in layer_weights]
        self.channels = list(channels) if channels is not None else None
        self.backbone = FeatureBackbone(arch, list(layers), weights=backbone_weights)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred_features = self.backbone(to_three_channels(pred, self.channels))
        with torch.no_grad():
            target_features = self.backbone(to_three_channels(target, self.channels))
        loss = sum(w * F.l1_loss(p, t) for w, p, t in zip(self.layer_weights, pred_features, target_features))
        return self.weight * loss
