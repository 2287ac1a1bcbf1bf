"""Image metrics against scikit-image and torchmetrics, pixel accuracies by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from src.metrics import pixel_accuracy, psnr, rgbd_image_metrics, ssim, threshold_pixel_accuracy


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    target = torch.rand(3, 4, 40, 48) * 2 - 1
    pred = (target + 0.15 * torch.randn_like(target)).clamp(-1, 1)
    pred[1] = target[1] * 0.5  # per-sample values must differ
    return pred, target


def _hwc_255(x: torch.Tensor) -> np.ndarray:
    return ((x.double().numpy() + 1) * 127.5).transpose(1, 2, 0)


def test_psnr_matches_skimage_and_torchmetrics(pair) -> None:
    pred, target = pair
    ours = psnr(pred, target)
    for i in range(3):
        ref = peak_signal_noise_ratio(_hwc_255(target[i]), _hwc_255(pred[i]), data_range=255)
        assert abs(ours[i].item() - ref) < 1e-4
    rgb = psnr(pred, target, channels=[0, 1, 2])
    ref_rgb = tm_psnr((pred[:1, :3].double() + 1) * 127.5, (target[:1, :3].double() + 1) * 127.5, data_range=255.0)
    assert abs(rgb[0].item() - ref_rgb.item()) < 1e-4
    assert psnr(target, target)[0] == float("inf")


def test_ssim_matches_skimage_and_torchmetrics(pair) -> None:
    pred, target = pair
    ours = ssim(pred, target)
    for i in range(3):
        ref = structural_similarity(
            _hwc_255(target[i]),
            _hwc_255(pred[i]),
            data_range=255,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert abs(ours[i].item() - ref) < 1e-5
    # torchmetrics averages over the reflect-padded border as well; its full SSIM map cropped to the valid
    # region (5 px each side) is the standard value.
    _, full_map = tm_ssim(
        (pred.double() + 1) * 127.5, (target.double() + 1) * 127.5, data_range=255.0, return_full_image=True
    )
    assert torch.allclose(ours.double(), full_map[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)), atol=1e-5)
    assert torch.allclose(ssim(target, target), torch.ones(3))
    with pytest.raises(ValueError, match="11x11"):
        ssim(pred[..., :8, :8], target[..., :8, :8])


def test_pixel_accuracies_by_hand() -> None:
    target = torch.zeros(1, 1, 1, 4)  # level 127.5 -> rounds to 128 (half away from zero in float64: 128)
    pred = target + torch.tensor([0.0, 5, 6, 0.4]).view(1, 1, 1, 4) / 127.5
    assert torch.isclose(threshold_pixel_accuracy(pred, target), torch.tensor([0.75]))  # 5 levels in, 6 out
    assert torch.isclose(pixel_accuracy(pred, target), torch.tensor([0.5]))  # exact and +0.4 level (rounds equal)


def test_rgbd_metric_table(pair) -> None:
    pred, target = pair
    table = rgbd_image_metrics(pred, target)
    assert set(table) == {
        "psnr_rgbd",
        "psnr_rgb",
        "ssim_rgbd",
        "ssim_rgb",
        "pixel_accuracy",
        "threshold_pixel_accuracy",
    }
    assert all(v.shape == (3,) for v in table.values())
    assert torch.allclose(table["psnr_rgb"], psnr(pred[:, :3], target[:, :3]))
    with pytest.raises(ValueError, match="4 channels"):
        rgbd_image_metrics(pred[:, :3], target[:, :3])
