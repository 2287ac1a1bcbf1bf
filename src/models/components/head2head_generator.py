"""Head2Head's sequential generator: two encoders summed at the bottleneck, previous generated frames fed back.

One encoder reads the conditioning of `n_frames` frames (NMFC + eye-gaze image, 6 channels each: 18), the other
the `n_frames - 1` previously generated frames (3 channels each: 6; zeros before the first frame). Each encoder:
reflection-padded 7x7 conv (ngf), `n_downsampling` stride-2 3x3 convs doubling the width, then
`n_blocks - n_blocks // 2` ResBlocks; the sum goes through `n_blocks // 2` shared ResBlocks, `n_downsampling`
transposed convs and a 7x7 conv with tanh. InstanceNorm without affine parameters, ReLU, no flow head.
At the original's settings (ngf 64, 3 downsamplings, 9 blocks): 70,806,531 parameters (the reported ~70.8 M).

Difference: the original's InstanceNorm tracks running statistics and uses them in eval mode; ours normalises
every frame by its own statistics in training and inference alike (no train / test mismatch).
"""

from __future__ import annotations

import torch
from torch import nn

HEAD2HEAD_GENERATOR_PARAMETERS = 70_806_531


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False)


class ResnetBlock(nn.Module):
    """x + [reflect pad, 3x3 conv, norm, ReLU, reflect pad, 3x3 conv, norm](x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _encoder(in_channels: int, ngf: int, n_downsampling: int, n_blocks: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), _norm(ngf), nn.ReLU(True)]
    for level in range(n_downsampling):
        width = ngf * 2**level
        layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), _norm(width * 2), nn.ReLU(True)]
    layers += [ResnetBlock(ngf * 2**n_downsampling) for _ in range(n_blocks)]
    return nn.Sequential(*layers)


class Head2HeadGenerator(nn.Module):
    """forward(conditioning (B, n_frames*input_nc, H, W), previous (B, (n_frames-1)*output_nc, H, W)) -> frame.

    H and W must be multiples of 2**n_downsampling. Init N(0, 0.02) for convs, as the original.
    """

    def __init__(
        self,
        input_nc: int = 6,
        output_nc: int = 3,
        n_frames: int = 3,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 9,
    ) -> None:
        super().__init__()
        if n_frames < 2:
            raise ValueError(f"n_frames must be >= 2 (one previous frame at least), got {n_frames}")
        self.input_nc, self.output_nc, self.n_frames = input_nc, output_nc, n_frames
        self.n_downsampling = n_downsampling
        encoder_blocks = n_blocks - n_blocks // 2
        self.encoder_conditioning = _encoder(input_nc * n_frames, ngf, n_downsampling, encoder_blocks)
        self.encoder_previous = _encoder(output_nc * (n_frames - 1), ngf, n_downsampling, encoder_blocks)
        bottleneck = ngf * 2**n_downsampling
        self.shared = nn.Sequential(*[ResnetBlock(bottleneck) for _ in range(n_blocks // 2)])
        up: list[nn.Module] = []
        for level in range(n_downsampling, 0, -1):
            width = ngf * 2**level
            up += [
                nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(width // 2),
                nn.ReLU(True),
            ]
        self.decoder = nn.Sequential(*up, nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh())
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(module.weight, 0.0, 0.02)

    @property
    def conditioning_channels(self) -> int:
        return self.input_nc * self.n_frames

    @property
    def previous_channels(self) -> int:
        return self.output_nc * (self.n_frames - 1)

    def forward(self, conditioning: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        features = self.encoder_conditioning(conditioning) + self.encoder_previous(previous)
        return self.decoder(self.shared(features))
