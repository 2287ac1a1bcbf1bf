"""src/metrics against independent references: naive per-pixel loops, scikit-image, numpy statistics.

Written to kill mutants that the behaviour tests let live (docs/mutation.md): a mask that is ignored, an mm scale
off by a factor, a channel selection dropped, a population std turned into a sample std.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from src.io.rgbd_layout import DepthEncoding
from src.losses.depth import BACKGROUND_THRESHOLD
from src.metrics.depth import depth_mae_mm, depth_metrics_mm, depth_rmse_mm, silhouette_errors
from src.metrics.image import (
    gaussian_window,
    pixel_accuracy,
    psnr,
    rgbd_image_metrics,
    ssim,
    threshold_pixel_accuracy,
    to_255,
)
from src.metrics.stats import summarize

ENCODING = DepthEncoding(480.0, 700.0, 16)
MM_PER_UNIT = ENCODING.mm_per_level * ENCODING.max_level / 2.0


def _rgbd_pair(seed: int = 0, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Two RGBD batches in [-1, 1] with a background (depth -1) in a border, different per sample."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 4, size, size, generator=gen, dtype=torch.float64) * 1.6 - 0.6
    pred = (target + 0.2 * torch.randn(2, 4, size, size, generator=gen, dtype=torch.float64)).clamp(-1, 1)
    target[0, 3, :3] = -1.0  # background rows of sample 0
    target[1, 3, :, :5] = -1.0  # background columns of sample 1
    pred[1, 3, 10:, :] = -1.0  # sample 1 predicts holes in its face
    return pred.float(), target.float()


def _naive_depth_errors(pred, target, mask, mm_per_unit):
    maes, rmses = [], []
    for n in range(pred.shape[0]):
        abs_sum, sq_sum, count = 0.0, 0.0, 0
        for y in range(pred.shape[2]):
            for x in range(pred.shape[3]):
                if mask[n, 0, y, x]:
                    error = (float(pred[n, 3, y, x]) - float(target[n, 3, y, x])) * mm_per_unit
                    abs_sum, sq_sum, count = abs_sum + abs(error), sq_sum + error * error, count + 1
        maes.append(abs_sum / count if count else math.nan)
        rmses.append(math.sqrt(sq_sum / count) if count else math.nan)
    return maes, rmses


def test_depth_errors_in_mm_equal_a_naive_loop_over_the_target_foreground() -> None:
    pred, target = _rgbd_pair()
    foreground = target[:, 3:4] > BACKGROUND_THRESHOLD
    maes, rmses = _naive_depth_errors(pred, target, foreground, MM_PER_UNIT)
    np.testing.assert_allclose(depth_mae_mm(pred, target, MM_PER_UNIT, depth_channel=3), maes, rtol=1e-5)
    np.testing.assert_allclose(depth_rmse_mm(pred, target, MM_PER_UNIT, depth_channel=3), rmses, rtol=1e-5)


def test_depth_errors_use_the_given_mask_not_the_foreground() -> None:
    pred, target = _rgbd_pair(seed=1)
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    mask[0, 0, 4:9, 2:12] = True
    mask[1, 0, 1:15, 7:9] = True
    maes, rmses = _naive_depth_errors(pred, target, mask, MM_PER_UNIT)
    metrics = depth_metrics_mm(pred, target, MM_PER_UNIT, mask=mask, depth_channel=3)
    np.testing.assert_allclose(metrics["depth_mae_mm"], maes, rtol=1e-5)
    np.testing.assert_allclose(metrics["depth_rmse_mm"], rmses, rtol=1e-5)


def test_one_level_of_depth_error_is_one_level_in_mm() -> None:
    """FaceWorld-style truth: a prediction one encoding level deeper everywhere is off by mm_per_level mm."""
    levels = np.full((1, 1, 8, 8), 30000, dtype=np.uint16)
    target = torch.from_numpy(ENCODING.levels_to_unit(levels))
    pred = torch.from_numpy(ENCODING.levels_to_unit(levels + 1))
    true_mm = float(ENCODING.decode(levels + 1)[0, 0, 0, 0] - ENCODING.decode(levels)[0, 0, 0, 0])
    assert true_mm == pytest.approx(ENCODING.mm_per_level, rel=1e-4)
    assert float(depth_mae_mm(pred, target, MM_PER_UNIT)[0]) == pytest.approx(true_mm, rel=1e-3)
    assert float(depth_rmse_mm(pred, target, MM_PER_UNIT)[0]) == pytest.approx(true_mm, rel=1e-3)


def test_empty_mask_gives_nan_not_zero() -> None:
    pred, target = _rgbd_pair()
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    assert torch.isnan(depth_mae_mm(pred, target, MM_PER_UNIT, mask=mask, depth_channel=3)).all()


def test_silhouette_shares_equal_naive_counts() -> None:
    pred, target = _rgbd_pair(seed=2)
    pred[0, 3, :2] = 0.5  # paints face over two of sample 0's three background rows
    pred[0, 3, 2] = -1.0
    shares = silhouette_errors(pred, target, depth_channel=3)
    for n in range(2):
        true_face = target[n, 3] > BACKGROUND_THRESHOLD
        pred_face = pred[n, 3] > BACKGROUND_THRESHOLD
        painted = int((pred_face & ~true_face).sum()) / max(int((~true_face).sum()), 1)
        holes = int((~pred_face & true_face).sum()) / int(true_face.sum())
        assert float(shares["background_as_face"][n]) == pytest.approx(painted)
        assert float(shares["face_as_background"][n]) == pytest.approx(holes)
    assert float(shares["background_as_face"][0]) == pytest.approx(2 / 3)


def test_silhouette_of_different_sizes_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^pred depth \(1, 16\) and target depth \(1, 20\) differ$"):
        silhouette_errors(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))


def test_gaussian_window_is_the_normalised_ssim_gaussian() -> None:
    window = gaussian_window()
    naive = [math.exp(-((i - 5) ** 2) / (2 * 1.5**2)) for i in range(11)]
    np.testing.assert_allclose(window.numpy(), np.array(naive) / sum(naive), rtol=1e-12)
    assert window.dtype == torch.float64
    np.testing.assert_allclose(gaussian_window(5, 1.0, torch.float32).sum(), 1.0, rtol=1e-6)


def _as_uint8_images(x: torch.Tensor) -> np.ndarray:
    return to_255(x).numpy().transpose(0, 2, 3, 1)


def test_psnr_and_ssim_equal_scikit_image_per_sample_and_per_channel_selection() -> None:
    pred, target = _rgbd_pair(seed=3, size=24)
    p255, t255 = _as_uint8_images(pred), _as_uint8_images(target)
    metrics = rgbd_image_metrics(pred, target)
    for n in range(2):
        for name, channels in (("rgbd", slice(0, 4)), ("rgb", slice(0, 3))):
            ref_psnr = peak_signal_noise_ratio(t255[n, ..., channels], p255[n, ..., channels], data_range=255)
            ref_ssim = structural_similarity(
                t255[n, ..., channels], p255[n, ..., channels], data_range=255, channel_axis=-1,
                gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            )  # fmt: skip
            assert float(metrics[f"psnr_{name}"][n]) == pytest.approx(ref_psnr, rel=1e-5)
            assert float(metrics[f"ssim_{name}"][n]) == pytest.approx(ref_ssim, abs=1e-5)


def test_quantized_metrics_equal_metrics_of_rounded_levels() -> None:
    pred, target = _rgbd_pair(seed=4, size=16)
    p, t = to_255(pred).round(), to_255(target).round()
    mse = ((p - t) ** 2).flatten(1).mean(1)
    np.testing.assert_allclose(psnr(pred, target, quantize=True), 10 * torch.log10(255.0**2 / mse), rtol=1e-5)
    assert not torch.allclose(psnr(pred, target, quantize=True), psnr(pred, target))
    back = lambda v: (v / 127.5 - 1).float()  # noqa: E731
    np.testing.assert_allclose(ssim(pred, target, quantize=True), ssim(back(p), back(t)), atol=1e-5)


def test_pixel_accuracies_equal_naive_counts() -> None:
    pred, target = _rgbd_pair(seed=5, size=12)
    pred[:, :, :4] = target[:, :, :4]  # a third of the values equal
    p, t = to_255(pred, quantize=True), to_255(target, quantize=True)
    pf, tf = to_255(pred), to_255(target)
    for n in range(2):
        equal = sum(int(a == b) for a, b in zip(p[n].flatten().tolist(), t[n].flatten().tolist()))
        close = sum(int(abs(a - b) <= 5.0 + 1e-6) for a, b in zip(pf[n].flatten().tolist(), tf[n].flatten().tolist()))
        assert float(pixel_accuracy(pred, target)[n]) == pytest.approx(equal / p[n].numel())
        assert float(threshold_pixel_accuracy(pred, target)[n]) == pytest.approx(close / p[n].numel())
    rgb = threshold_pixel_accuracy(pred, target, channels=[0, 1, 2])
    only_rgb = threshold_pixel_accuracy(pred[:, :3], target[:, :3])
    torch.testing.assert_close(rgb, only_rgb)
    exact = pixel_accuracy(pred, target, channels=[3])
    torch.testing.assert_close(exact, pixel_accuracy(pred[:, 3:], target[:, 3:]))


def test_image_metrics_reject_mismatched_or_wrong_inputs() -> None:
    with pytest.raises(ValueError, match="equal"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="4 channels"):
        rgbd_image_metrics(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 1, 10, 16), torch.zeros(1, 1, 10, 16))
    assert float(ssim(torch.zeros(1, 1, 11, 11), torch.zeros(1, 1, 11, 11))[0]) == pytest.approx(1.0)
    assert math.isinf(float(psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))[0]))


def test_to_255_clamps_and_scales() -> None:
    values = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.0, 3.0])
    torch.testing.assert_close(
        to_255(values), torch.tensor([0.0, 0.0, 127.5, 254.8725, 255.0, 255.0], dtype=torch.float64)
    )
    torch.testing.assert_close(to_255(values, quantize=True)[2:4], torch.tensor([128.0, 255.0], dtype=torch.float64))


def test_summarize_equals_numpy_statistics() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]
    summary = summarize(torch.tensor(values))
    assert summary == pytest.approx(
        {"mean": np.mean(values), "median": 2.0 * 1.75, "std": np.std(values), "min": 1.0, "max": 9.0}
    )
    assert summarize(np.array(values)) == summary == summarize(iter(values))
    with pytest.raises(ValueError, match="no values"):
        summarize([])


def test_ssim_of_dark_images_equals_scikit_image() -> None:
    """Near-black images: the stabilising constant C1 = (0.01 * 255)^2 dominates, so a wrong C1 shows."""
    gen = torch.Generator().manual_seed(7)
    target = -1 + 0.04 * torch.rand(1, 1, 16, 16, generator=gen, dtype=torch.float64)
    pred = (target + 0.02 * torch.rand(1, 1, 16, 16, generator=gen, dtype=torch.float64)).float()
    p255, t255 = _as_uint8_images(pred)[0, ..., 0], _as_uint8_images(target.float())[0, ..., 0]
    reference = structural_similarity(
        t255, p255, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert float(ssim(pred, target.float())[0]) == pytest.approx(reference, abs=1e-6)


def test_forward_time_counts_warmup_and_repeats_in_milliseconds() -> None:
    import time as time_module

    from src.metrics.timing import measure_forward_time

    calls = []
    times = measure_forward_time(lambda x: calls.append(x), torch.zeros(1))
    assert len(calls) == 10 + 50 and len(times) == 50  # defaults: 10 warm-up calls, 50 timed
    calls.clear()
    assert len(measure_forward_time(lambda x: calls.append(x), torch.zeros(1), warmup=0, repeats=1)) == 1
    assert len(calls) == 1
    slow = measure_forward_time(lambda x: time_module.sleep(0.02), (torch.zeros(1),), warmup=0, repeats=2)
    assert all(19.0 <= t < 2000.0 for t in slow)  # milliseconds
    for repeats, warmup in ((0, 0), (1, -1)):
        with pytest.raises(ValueError, match=rf"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}"):
            measure_forward_time(lambda x: x, torch.zeros(1), warmup=warmup, repeats=repeats)
