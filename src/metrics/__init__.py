"""Evaluation metrics: per-sample image (PSNR / SSIM / pixel accuracy), depth (mm), LPIPS, summaries, timing."""

from src.metrics.depth import depth_mae_mm, depth_metrics_mm, depth_rmse_mm
from src.metrics.image import (
    pixel_accuracy,
    psnr,
    rgbd_image_metrics,
    ssim,
    threshold_pixel_accuracy,
)
from src.metrics.perceptual import LPIPSMetric
from src.metrics.stats import summarize
from src.metrics.timing import measure_forward_time

__all__ = [
    "LPIPSMetric",
    "depth_mae_mm",
    "depth_metrics_mm",
    "depth_rmse_mm",
    "measure_forward_time",
    "pixel_accuracy",
    "psnr",
    "rgbd_image_metrics",
    "ssim",
    "summarize",
    "threshold_pixel_accuracy",
]
