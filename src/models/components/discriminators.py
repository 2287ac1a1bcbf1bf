"""PatchGAN discriminators that expose their intermediate features (for feature matching).

Both discriminators return the same structure, a list over scales of lists of feature maps with the patch
prediction last: ``[[f_1, ..., f_{n_layers+1}, prediction]]`` for a single ``NLayerDiscriminator`` and
``num_D`` such lists (full resolution first) for ``MultiscaleDiscriminator``. Losses therefore treat both alike.

Two layouts of the n-layer PatchGAN exist; ``layout`` selects one:
- ``pix2pixhd`` (default): 4x4 convs with padding 2 and a bias everywhere; with 5 input channels, ndf 64,
  n_layers 4 and BatchNorm one scale has 6,964,417 parameters (the RGBD original's ~6.96 M).
- ``pix2pix``: padding 1, convs before BatchNorm without bias (the 70x70 PatchGAN of pix2pix).
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.components.norms import conv_bias_for, get_norm_layer, init_weights

LAYOUTS = ("pix2pixhd", "pix2pix")


class NLayerDiscriminator(nn.Module):
    """PatchGAN: a stride-2 conv stem, ``n_layers - 1`` stride-2 conv/norm/lrelu stages, a stride-1 stage and
    a 1-channel stride-1 prediction conv. Channel widths double from ``ndf`` up to 512.

    ``forward`` returns ``[[features..., prediction]]`` (one scale); ``features`` are the outputs of each stage.
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        layout: str = "pix2pixhd",
        use_sigmoid: bool = False,
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.n_layers = n_layers
        norm_layer = get_norm_layer(norm)
        pad = 2 if layout == "pix2pixhd" else 1
        bias = True if layout == "pix2pixhd" else conv_bias_for(norm)
        stages: list[list[nn.Module]] = [[nn.Conv2d(input_nc, ndf, 4, stride=2, padding=pad), nn.LeakyReLU(0.2)]]
        width = ndf
        for n in range(1, n_layers + 1):
            previous, width = width, min(width * 2, 512)
            stride = 2 if n < n_layers else 1
            stages.append(
                [
                    nn.Conv2d(previous, width, 4, stride=stride, padding=pad, bias=bias),
                    norm_layer(width),
                    nn.LeakyReLU(0.2),
                ]
            )
        head: list[nn.Module] = [nn.Conv2d(width, 1, 4, stride=1, padding=pad)]
        if use_sigmoid:
            head.append(nn.Sigmoid())
        stages.append(head)
        self.stages = nn.ModuleList(nn.Sequential(*stage) for stage in stages)
        init_weights(self, init_gain)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every stage; the last one is the patch prediction."""
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        return [self.features(x)]


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs on an image pyramid (AvgPool2d(3, stride 2, padding 1, count_include_pad=False)).

    ``forward`` returns a list over scales (full resolution first) of lists of features, prediction last.
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        num_D: int = 3,
        norm: str = "batch",
        layout: str = "pix2pixhd",
        use_sigmoid: bool = False,
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if num_D < 1:
            raise ValueError(f"num_D must be >= 1, got {num_D}")
        self.num_D = num_D
        self.n_layers = n_layers
        self.scales = nn.ModuleList(
            NLayerDiscriminator(input_nc, ndf, n_layers, norm, layout, use_sigmoid, init_gain) for _ in range(num_D)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for index, discriminator in enumerate(self.scales):
            if index > 0:
                x = self.downsample(x)
            results.append(discriminator.features(x))
        return results
