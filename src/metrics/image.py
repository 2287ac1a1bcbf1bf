"""Per-sample image metrics of the RGBD original, computed on [-1, 1] tensors at the 0-255 scale.

Every function takes ``pred`` and ``target`` (N, C, H, W) in [-1, 1] and returns a (N,) tensor, one value per
sample (aggregate with ``stats.summarize``). ``channels`` restricts the comparison (e.g. [0, 1, 2] = colour of
RGBD). ``quantize=True`` first rounds to 8-bit levels, as metrics computed on saved PNGs would.

- PSNR: 10 log10(255^2 / MSE) over all selected channels (inf for identical inputs).
- SSIM: Wang et al., Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 255, valid region only
  (equals scikit-image ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``; torchmetrics
  also averages its reflect-padded border, which shifts values by ~1e-3), averaged over channels.
- pixel accuracy: fraction of values whose 8-bit levels are equal.
- threshold pixel accuracy: fraction of values with |pred - target| <= threshold in [0, 1] units (5/255).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_255(x: torch.Tensor, quantize: bool = False) -> torch.Tensor:
    """[-1, 1] -> [0, 255] (float64 for exact metrics), optionally rounded to integer levels."""
    scaled = (x.detach().to(torch.float64).clamp(-1, 1) + 1) * 127.5
    return scaled.round() if quantize else scaled


def _prepare(pred: torch.Tensor, target: torch.Tensor, channels, quantize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected equal (N, C, H, W) shapes, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if channels is not None:
        pred, target = pred[:, list(channels)], target[:, list(channels)]
    return to_255(pred, quantize), to_255(target, quantize)


def psnr(
    pred: torch.Tensor, target: torch.Tensor, channels: list[int] | None = None, quantize: bool = False
) -> torch.Tensor:
    p, t = _prepare(pred, target, channels, quantize)
    mse = (p - t).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(255.0**2 / mse)).to(torch.float32)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    channels: list[int] | None = None,
    quantize: bool = False,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    p, t = _prepare(pred, target, channels, quantize)
    if min(p.shape[-2:]) < window_size:
        raise ValueError(f"SSIM needs images of at least {window_size}x{window_size}, got {tuple(p.shape[-2:])}")
    n_channels = p.shape[1]
    g = gaussian_window(window_size, sigma).to(p.device)
    row = g.view(1, 1, 1, -1).expand(n_channels, 1, 1, window_size)
    col = g.view(1, 1, -1, 1).expand(n_channels, 1, window_size, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, row, groups=n_channels), col, groups=n_channels)

    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    c1, c2 = (k1 * 255.0) ** 2, (k2 * 255.0) ** 2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return ssim_map.flatten(1).mean(1).to(torch.float32)


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, channels: list[int] | None = None) -> torch.Tensor:
    p, t = _prepare(pred, target, channels, quantize=True)
    return (p == t).flatten(1).to(torch.float32).mean(1)


def threshold_pixel_accuracy(
    pred: torch.Tensor,
    target: torch.Tensor,
    threshold: float = 5.0 / 255.0,
    channels: list[int] | None = None,
    quantize: bool = False,
) -> torch.Tensor:
    p, t = _prepare(pred, target, channels, quantize)
    return ((p - t).abs() <= threshold * 255.0 + 1e-6).flatten(1).to(torch.float32).mean(1)


def rgbd_image_metrics(pred: torch.Tensor, target: torch.Tensor, quantize: bool = False) -> dict[str, torch.Tensor]:
    """The original's image metrics for RGBD (4-channel) outputs, each (N,): RGBD and colour-only variants."""
    if pred.shape[1] != 4:
        raise ValueError(f"rgbd_image_metrics expects 4 channels (R, G, B, depth), got {pred.shape[1]}")
    rgb = [0, 1, 2]
    return {
        "psnr_rgbd": psnr(pred, target, quantize=quantize),
        "psnr_rgb": psnr(pred, target, rgb, quantize=quantize),
        "ssim_rgbd": ssim(pred, target, quantize=quantize),
        "ssim_rgb": ssim(pred, target, rgb, quantize=quantize),
        "pixel_accuracy": pixel_accuracy(pred, target),
        "threshold_pixel_accuracy": threshold_pixel_accuracy(pred, target, quantize=quantize),
    }
