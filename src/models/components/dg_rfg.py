"""RFG, DG's reenacted face generator (StarGAN-v2 style): landmark drawing + style code of the source -> face.

Layout of the original (core/model_lm_talking.py, the demo's settings: 256 px, style_dim 128, w_hpf 0):
- Generator: 3x3 conv from the 3-channel drawing (64 ch at 256 px, 2**14 / size), 4 InstanceNorm ResBlock
  downsamplings (64 -> 128 -> 256 -> 512 -> 512, to 16 x 16), 4 AdaIN ResBlock bottlenecks, 4 AdaIN ResBlock
  upsamplings, InstanceNorm -> LeakyReLU -> 1x1 conv to RGB, sigmoid. The original also builds an unused
  4-channel head (`to_rgb_lm`); `unused_lm_head=True` keeps it so parameter counts match its checkpoints.
- StyleEncoder: 3x3 conv, 6 ResBlock downsamplings (to 4 x 4), LeakyReLU, 4x4 conv, LeakyReLU, linear -> style.
- Discriminator: concat [image, drawing] (6 ch), 3x3 conv, 6 ResBlock downsamplings, LeakyReLU, 4x4 conv,
  LeakyReLU, 1x1 conv -> one logit (returned with the per-block features, for feature matching).
Parameter counts at the original's settings (256 px, style 128; tests/dg/test_dg_networks.py asserts them, counted
with sum(p.numel() for p in module.parameters())): generator 34,982,531 (34,982,919 with the unused head; "35.0 M"),
style encoder 20,916,928 ("20.9 M"), discriminator 20,853,505 ("20.9 M").
Channels and depth are arguments so the quick start can run smaller copies of the same layout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from src.models.components.dg_idsg import he_init


def default_channels(image_size: int) -> int:
    """StarGAN v2's first width: 2**14 / image size (64 at 256 px)."""
    return max(1, 2**14 // image_size)


class ResBlock(nn.Module):
    """Pre-activation residual block, optional InstanceNorm and 2x average-pool downsampling; output / sqrt(2)."""

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False) -> None:
        super().__init__()
        self.normalize = normalize
        self.downsample = downsample
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.norm1 = nn.InstanceNorm2d(dim_in, affine=True) if normalize else nn.Identity()
        self.norm2 = nn.InstanceNorm2d(dim_in, affine=True) if normalize else nn.Identity()
        self.shortcut = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x)
        if self.downsample:
            skip = F.avg_pool2d(skip, 2)
        out = self.conv1(F.leaky_relu(self.norm1(x), 0.2))
        if self.downsample:
            out = F.avg_pool2d(out, 2)
        out = self.conv2(F.leaky_relu(self.norm2(out), 0.2))
        return (skip + out) / math.sqrt(2.0)


class AdaIN(nn.Module):
    """Instance norm whose scale (1 + gamma) and shift beta come from the style code."""

    def __init__(self, style_dim: int, num_features: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(style)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdaINResBlock(nn.Module):
    """Residual block with AdaIN before each conv, optional 2x nearest upsampling; output / sqrt(2) (w_hpf 0)."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1 = AdaIN(style_dim, dim_in)
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.norm2 = AdaIN(style_dim, dim_out)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        skip = F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x
        skip = self.shortcut(skip)
        out = F.leaky_relu(self.norm1(x, style), 0.2)
        if self.upsample:
            out = F.interpolate(out, scale_factor=2, mode="nearest")
        out = self.conv2(F.leaky_relu(self.norm2(self.conv1(out), style), 0.2))
        return (out + skip) / math.sqrt(2.0)


class RFGGenerator(nn.Module):
    """Landmark drawing (B, 3, S, S) in [0, 1] + style (B, style_dim) -> RGB face (B, 3, S, S) in [0, 1]."""

    def __init__(
        self,
        image_size: int = 256,
        style_dim: int = 128,
        base_channels: int | None = None,
        max_channels: int = 512,
        downsamplings: int | None = None,
        bottlenecks: int = 4,
        in_channels: int = 3,
        unused_lm_head: bool = False,
    ) -> None:
        super().__init__()
        dim = base_channels or default_channels(image_size)
        steps = downsamplings if downsamplings is not None else int(math.log2(image_size)) - 4
        self.style_dim = style_dim
        self.from_rgb = nn.Conv2d(in_channels, dim, 3, 1, 1)
        encode, decode = [], []
        for _ in range(steps):
            out = min(dim * 2, max_channels)
            encode.append(ResBlock(dim, out, normalize=True, downsample=True))
            decode.insert(0, AdaINResBlock(out, dim, style_dim, upsample=True))
            dim = out
        for _ in range(bottlenecks):
            decode.insert(0, AdaINResBlock(dim, dim, style_dim))
        self.encode = nn.ModuleList(encode)
        self.decode = nn.ModuleList(decode)
        first = base_channels or default_channels(image_size)
        self.to_rgb = nn.Sequential(nn.InstanceNorm2d(first, affine=True), nn.LeakyReLU(0.2), nn.Conv2d(first, 3, 1))
        if unused_lm_head:  # built but never called by the original; only for loading its checkpoints
            self.to_rgb_lm = nn.Sequential(
                nn.InstanceNorm2d(first, affine=True), nn.LeakyReLU(0.2), nn.Conv2d(first, 4, 1)
            )

    def forward(self, drawing: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = self.from_rgb(drawing)
        for block in self.encode:
            x = block(x)
        for block in self.decode:
            x = block(x, style)
        return torch.sigmoid(self.to_rgb(x))


class StyleEncoder(nn.Module):
    """Source face (B, 3, S, S) in [0, 1] -> style code (B, style_dim)."""

    def __init__(
        self,
        image_size: int = 256,
        style_dim: int = 128,
        base_channels: int | None = None,
        max_channels: int = 512,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        dim = base_channels or default_channels(image_size)
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, dim, 3, 1, 1)]
        for _ in range(int(math.log2(image_size)) - 2):
            out = min(dim * 2, max_channels)
            blocks.append(ResBlock(dim, out, downsample=True))
            dim = out
        blocks += [nn.LeakyReLU(0.2), nn.Conv2d(dim, dim, 4, 1, 0), nn.LeakyReLU(0.2)]
        self.shared = nn.Sequential(*blocks)
        self.fc = nn.Linear(dim, style_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.shared(image).flatten(1))


class RFGDiscriminator(nn.Module):
    """Conditional D on concat [image, drawing] (6 channels): returns [features of every block..., logit (B, 1)]."""

    def __init__(
        self, image_size: int = 256, base_channels: int | None = None, max_channels: int = 512, in_channels: int = 6
    ) -> None:
        super().__init__()
        dim = base_channels or default_channels(image_size)
        self.input = nn.Conv2d(in_channels, dim, 3, 1, 1)
        blocks = []
        for _ in range(int(math.log2(image_size)) - 2):
            out = min(dim * 2, max_channels)
            blocks.append(ResBlock(dim, out, downsample=True))
            dim = out
        self.blocks = nn.ModuleList(blocks)
        self.output = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv2d(dim, dim, 4, 1, 0), nn.LeakyReLU(0.2), nn.Conv2d(dim, 1, 1, 1, 0)
        )

    def forward(self, pair: torch.Tensor) -> list[torch.Tensor]:
        x = self.input(pair)
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return [*features, self.output(x).flatten(1)]


class RFGPipeline(nn.Module):
    """The RFG generator with its style encoder: (drawing, source image) -> face. The unit the system trains,
    averages (EMA) and exports, so baselines and exports swap both together."""

    def __init__(self, generator: nn.Module, style_encoder: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.style_encoder = style_encoder

    def forward(self, drawing: torch.Tensor, source_image: torch.Tensor) -> torch.Tensor:
        return self.generator(drawing, self.style_encoder(source_image))


def build_rfg(
    image_size: int = 256,
    style_dim: int = 128,
    base_channels: int | None = None,
    max_channels: int = 512,
    downsamplings: int | None = None,
    bottlenecks: int = 4,
    style_base_channels: int | None = None,
) -> RFGPipeline:
    """RFGPipeline from one set of sizes (Hydra target of conf/model/dg_rfg.yaml)."""
    generator = RFGGenerator(image_size, style_dim, base_channels, max_channels, downsamplings, bottlenecks)
    style = StyleEncoder(image_size, style_dim, style_base_channels or base_channels, max_channels)
    pipeline = RFGPipeline(generator, style)
    he_init(pipeline)  # the original initialises every network it trains this way
    return pipeline


def build_discriminator(
    image_size: int = 256, base_channels: int | None = None, max_channels: int = 512
) -> RFGDiscriminator:
    """RFGDiscriminator with the original's He initialisation (Hydra target of conf/model/dg_rfg.yaml)."""
    discriminator = RFGDiscriminator(image_size, base_channels, max_channels)
    he_init(discriminator)
    return discriminator


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
