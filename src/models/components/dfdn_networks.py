"""DFDN's networks (Chen et al., ICCV 2019): per facial region, texture patch -> wrinkle displacement patch.

    texture patch (1, p, p), (V / 255 - mean) * 2
      -> PDIM: a pix2pix U-Net (1 -> 1, tanh), "partial detail inference"
      -> FC head: flatten (p * p) -> hidden ... -> K coefficients (LeakyReLU 0.2 between layers)
      -> fixed PCA basis of training displacement patches: mean + basis @ coefficients = a coarse displacement
      -> PDRM: a U-Net on [PCA reconstruction, texture patch] (2 -> 1, tanh), "partial detail refinement"
    outputs: the refined displacement and the PCA displacement, both (1, p, p) in the displacement encoding's
    [-1, 1] (x * displacement_scale_mm = millimetres).

The PCA basis is not learned: the system fits it once from the training displacement patches (the base's
FITTED_STATISTICS hook, kept in the checkpoint). Its columns are scaled by the component standard deviation, so a
coefficient of 1 is one standard deviation of that component.

Original sizes (p = 256): PDIM U-Net 256 (8 downsamplings, ngf 64, BatchNorm, no dropout) 54,413,313
parameters; FC 65536 -> 2048 -> 1024 -> 512 -> 64 136,875,584; PDRM U-Net 64 (6 downsamplings) 29,242,369;
PatchGAN D (3 layers, 2 channels in, pix2pixHD padding: a 35 x 35 map at 256) 2,765,505. The counts say the
original's U-Net convolutions carry biases next to BatchNorm: `detail_unet` is the shared pix2pix U-Net
(src/models/components/generators.py) with conv_bias=True and no dropout.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from src.models.components.generators import UnetGenerator
from src.models.components.norms import set_norm_inference_mode

REGIONS = ("forehead", "mouth")


def detail_unet(in_channels: int, out_channels: int, num_downs: int, ngf: int = 64, norm: str = "batch") -> nn.Module:
    """DFDN's U-Net: the shared pix2pix U-Net without dropout and with biases on every convolution (the original's
    parameter counts need them next to BatchNorm); the side must divide by 2**num_downs."""
    return UnetGenerator(in_channels, out_channels, num_downs, ngf, norm, use_dropout=False, conv_bias=True)


def zero_last_layer(unet: nn.Module) -> None:
    """Zero a U-Net's last (transposed) convolution: it then outputs tanh(0) = 0 until it learns otherwise."""
    last = unet.unet.up[1]
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)


class CoefficientHead(nn.Module):
    """Flatten (1, p, p) -> Linear layers -> K coefficients; LeakyReLU 0.2 between layers, none after the last."""

    def __init__(self, patch_size: int, hidden: Sequence[int], num_coefficients: int) -> None:
        super().__init__()
        sizes = [patch_size * patch_size, *hidden, num_coefficients]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.LeakyReLU(0.2))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class RegionDetailNet(nn.Module):
    """One region's DFDN: PDIM -> FC -> fixed PCA -> PDRM (see the module docstring).

    forward(texture (B,1,p,p)) -> (refined (B,1,p,p), pca (B,1,p,p)); both in [-1, 1] units of the displacement
    encoding (the PCA output is clamped to that range). residual=True (not the original): refined = PCA + PDRM
    output with the PDRM's last layer zero-initialised, so a short training starts exactly at the PCA output
    instead of the PCA output plus a random image (same parameters)."""

    def __init__(
        self,
        patch_size: int = 256,
        pdim_downs: int = 8,
        pdim_ngf: int = 64,
        fc_hidden: Sequence[int] = (2048, 1024, 512),
        num_components: int = 64,
        pdrm_downs: int = 6,
        pdrm_ngf: int = 64,
        norm: str = "batch",
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.residual = residual
        for name, downs in (("pdim_downs", pdim_downs), ("pdrm_downs", pdrm_downs)):
            if patch_size % (2**downs):
                raise ValueError(f"{name}={downs}: patch_size {patch_size} must be divisible by {2**downs}")
        self.patch_size = patch_size
        self.num_components = num_components
        self.pdim = detail_unet(1, 1, pdim_downs, pdim_ngf, norm)
        self.fc = CoefficientHead(patch_size, fc_hidden, num_components)
        self.pdrm = detail_unet(2, 1, pdrm_downs, pdrm_ngf, norm)
        if residual:
            zero_last_layer(self.pdrm)
        dim = patch_size * patch_size
        # The fixed PCA basis (fitted by the system from training patches; zeros until then).
        self.register_buffer("pca_mean", torch.zeros(dim))
        self.register_buffer("pca_basis", torch.zeros(dim, num_components))

    def reconstruct(self, coefficients: torch.Tensor) -> torch.Tensor:
        """K coefficients (B,K) -> displacement (B,1,p,p) through the fixed basis."""
        flat = self.pca_mean + coefficients @ self.pca_basis.T
        return flat.view(-1, 1, self.patch_size, self.patch_size).clamp(-1.0, 1.0)

    def forward(self, texture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coefficients = self.fc(self.pdim(texture))
        pca = self.reconstruct(coefficients)
        refined = self.pdrm(torch.cat([pca, texture], 1))
        if self.residual:  # the refiner corrects the PCA output instead of redrawing it (starts at the PCA output)
            refined = (pca + refined).clamp(-1.0, 1.0)
        return refined, pca


class DFDNGenerator(nn.Module):
    """The two region models (forehead, mouth), each a RegionDetailNet with the same settings.

    forward(texture, region) runs region index `region` (REGIONS order) on a batch of that region."""

    def __init__(self, regions: Sequence[str] = REGIONS, inference_norm: str = "running", **region_kwargs) -> None:
        super().__init__()
        unknown = [r for r in regions if r not in REGIONS]
        if unknown or not regions:
            raise ValueError(f"regions: unknown {unknown or 'none given'}; known: {REGIONS}")
        self.regions = tuple(regions)
        self.nets = nn.ModuleDict({r: RegionDetailNet(**region_kwargs) for r in self.regions})
        set_norm_inference_mode(self, inference_norm)

    @property
    def patch_size(self) -> int:
        return next(iter(self.nets.values())).patch_size

    def forward(self, texture: torch.Tensor, region: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.nets[REGIONS[region]](texture)


class ZeroDisplacement(nn.Module):
    """Baseline: a flat surface (displacement 0 everywhere), whatever the texture."""

    def forward(self, texture: torch.Tensor, region: int) -> tuple[torch.Tensor, torch.Tensor]:
        zero = torch.zeros_like(texture[:, :1])
        return zero, zero


class PCAOnly(nn.Module):
    """Baseline: the trained model's PCA output alone (no refinement by the PDRM)."""

    def __init__(self, generator: DFDNGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, texture: torch.Tensor, region: int) -> tuple[torch.Tensor, torch.Tensor]:
        _, pca = self.generator(texture, region)
        return pca, pca


class RegionExport(nn.Module):
    """A deployable region model: texture patch -> (refined displacement, PCA displacement)."""

    def __init__(self, net: RegionDetailNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, texture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(texture)


class DFDNDiscriminators(nn.Module):
    """One PatchGAN per region (pix2pixHD layout: 35 x 35 map at 256), judging [displacement, texture] (2 channels).

    forward(x, region) -> the NLayerDiscriminator output ([[features..., prediction]]) of region index `region`."""

    def __init__(self, regions: Sequence[str] = REGIONS, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        from src.models.components.discriminators import NLayerDiscriminator

        self.nets = nn.ModuleDict({r: NLayerDiscriminator(2, ndf, n_layers, norm, "pix2pixhd") for r in regions})

    def forward(self, x: torch.Tensor, region: int) -> list[list[torch.Tensor]]:
        return self.nets[REGIONS[region]](x)
