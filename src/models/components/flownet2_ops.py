"""FlowNet2's three custom CUDA layers as plain tensor code (CPU and GPU, no compiled extension).

The original flownet2-pytorch ships Correlation, Resample2d and ChannelNorm as CUDA extensions; compiling them is
the main install pain of the vid2vid family ("no kernel image", ABI errors, no CPU version). Their meaning:

- ``correlation``: out[k, y, x] = mean_c f1[c, y, x] * f2[c, y + dy_k, x + dx_k] with zero outside f2, for the
  displacements dy, dx in -max_displacement..max_displacement step stride2 (kernel 1, stride1 1, pad =
  max_displacement, so the output keeps the input size). Channel k = row-major over (dy, dx): k = iy * n + ix.
  Computed one displacement row at a time, so memory stays at ~n x one feature map instead of n^2 x.
- ``resample2d``: bilinear sampling of an image at (x + u, y + v), coordinates clamped to the border (the CUDA
  kernel clamps its integer taps), i.e. grid_sample with border padding and align_corners=True.
- ``channel_norm``: the L2 norm over channels, sqrt(sum_c x_c^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def correlation(
    first: torch.Tensor, second: torch.Tensor, max_displacement: int = 20, stride2: int = 2, rows_per_chunk: int = 1
) -> torch.Tensor:
    """FlowNetC's cost volume (see the module docstring): (B, C, H, W) x2 -> (B, n*n, H, W), n = 2*(d//s2)+1.

    ``rows_per_chunk`` displacement rows are evaluated together: peak extra memory is about
    rows_per_chunk * n * C * H * W values (one row: 21 x one feature map at FlowNet2's settings).
    """
    if first.shape != second.shape or first.dim() != 4:
        raise ValueError(f"correlation needs two (B, C, H, W) tensors of one shape, got {first.shape}, {second.shape}")
    if max_displacement < 0 or stride2 < 1 or rows_per_chunk < 1:
        raise ValueError("correlation: max_displacement >= 0, stride2 >= 1 and rows_per_chunk >= 1 are required")
    radius = max_displacement // stride2
    size = 2 * radius + 1
    _, channels, height, width = first.shape
    reach = radius * stride2
    padded = F.pad(second, (reach, reach, reach, reach))
    scale = 1.0 / channels
    rows = []
    for start in range(0, size, rows_per_chunk):
        stop = min(size, start + rows_per_chunk)
        chunk_rows = []
        for iy in range(start, stop):
            band = padded[:, :, iy * stride2 : iy * stride2 + height, :]  # (B, C, H, W + 2 reach)
            shifted = band.unfold(3, width, stride2)  # (B, C, H, n, W): a view, the x shifts of this row
            chunk_rows.append(torch.einsum("bchw,bchkw->bkhw", first, shifted))
        rows.append(torch.cat(chunk_rows, 1) * scale)
    return torch.cat(rows, 1)


def naive_correlation(first: torch.Tensor, second: torch.Tensor, max_displacement: int = 20, stride2: int = 2):
    """The textbook formulation (all n^2 shifted copies of f2 at once); the benchmark's memory reference."""
    radius = max_displacement // stride2
    reach = radius * stride2
    height, width = first.shape[-2:]
    padded = F.pad(second, (reach, reach, reach, reach))
    shifted = torch.stack(
        [
            padded[:, :, iy * stride2 : iy * stride2 + height, ix * stride2 : ix * stride2 + width]
            for iy in range(2 * radius + 1)
            for ix in range(2 * radius + 1)
        ],
        1,
    )  # (B, n^2, C, H, W)
    return (first.unsqueeze(1) * shifted).mean(2)


class Correlation(nn.Module):
    """FlowNetC's correlation layer (pad 20, kernel 1, max displacement 20, stride1 1, stride2 2: 441 channels)."""

    def __init__(self, max_displacement: int = 20, stride2: int = 2, rows_per_chunk: int = 1) -> None:
        super().__init__()
        self.max_displacement = max_displacement
        self.stride2 = stride2
        self.rows_per_chunk = rows_per_chunk

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return correlation(first, second, self.max_displacement, self.stride2, self.rows_per_chunk)

    def extra_repr(self) -> str:
        return f"max_displacement={self.max_displacement}, stride2={self.stride2}"


def pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 2, H, W) pixel coordinates (x, y) of every pixel, in the dtype / device of `like`."""
    ys = torch.arange(height, dtype=like.dtype, device=like.device)
    xs = torch.arange(width, dtype=like.dtype, device=like.device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], 0).unsqueeze(0)


def resample2d(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image sampled at pixel + flow (flow (B, 2, H, W) in pixels, x then y); bilinear, border-clamped."""
    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != image.shape[0] or flow.shape[2:] != image.shape[2:]:
        raise ValueError(f"resample2d: flow must be (B, 2, H, W) matching the image {tuple(image.shape)}")
    height, width = image.shape[-2:]
    position = pixel_grid(height, width, flow) + flow
    # align_corners=True: -1 / +1 are the centres of the first / last pixel.
    norm_x = position[:, 0] * (2.0 / max(width - 1, 1)) - 1.0
    norm_y = position[:, 1] * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack([norm_x, norm_y], dim=-1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)


class Resample2d(nn.Module):
    """Module form of resample2d (the original's layer name)."""

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return resample2d(image, flow)


def channel_norm(x: torch.Tensor) -> torch.Tensor:
    """sqrt(sum over channels of x^2), keeping a 1-channel axis."""
    return torch.sqrt((x * x).sum(1, keepdim=True))


class ChannelNorm(nn.Module):
    """Module form of channel_norm (the original's layer name)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_norm(x)
