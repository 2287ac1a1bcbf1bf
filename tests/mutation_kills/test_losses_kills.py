"""src/losses against naive references: per-element loops, the textbook formulas, and torch's own BCE / MSE.

Written to kill the mutants the behaviour tests let live (docs/mutation.md): a label swapped, a weight or a scale
dropped, a mask ignored, a difference taken the wrong way or against the wrong neighbour.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from src.losses.depth import (
    BACKGROUND_THRESHOLD,
    DepthGradientLoss,
    DepthL1Loss,
    NormalConsistencyLoss,
    apply_depth_mask,
    depth_to_normals,
    foreground_mask,
    select_depth,
)
from src.losses.feature_matching import FeatureMatchingLoss
from src.losses.gan import GANLoss, R1Penalty, final_predictions
from src.losses.reconstruction import L1ReconstructionLoss

GEN = torch.Generator().manual_seed(0)


def rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN, dtype=torch.float64)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_gan_losses_equal_their_formulas_summed_over_scales() -> None:
    scales = [[rand(2, 3, 4, 4), rand(2, 1, 5, 5)], [rand(2, 3, 2, 2), rand(2, 1, 3, 3)]]  # features, prediction
    predictions = [s[-1].flatten().tolist() for s in scales]
    mean = lambda f, values: sum(f(v) for v in values) / len(values)  # noqa: E731
    ls_real = sum(mean(lambda v: (v - 1.0) ** 2, p) for p in predictions)
    ls_fake = sum(mean(lambda v: v**2, p) for p in predictions)
    bce_real = sum(mean(lambda v: -math.log(sigmoid(v)), p) for p in predictions)
    bce_fake = sum(mean(lambda v: -math.log(1 - sigmoid(v)), p) for p in predictions)
    hinge_real = sum(mean(lambda v: max(0.0, 1 - v), p) for p in predictions)
    hinge_fake = sum(mean(lambda v: max(0.0, 1 + v), p) for p in predictions)
    hinge_g = sum(mean(lambda v: -v, p) for p in predictions)
    lsgan, vanilla, hinge = GANLoss("lsgan"), GANLoss("vanilla"), GANLoss("hinge")
    assert float(lsgan(scales, True)) == pytest.approx(ls_real)
    assert float(lsgan(scales, False)) == pytest.approx(ls_fake)
    assert float(lsgan.generator_loss(scales)) == pytest.approx(ls_real)
    assert float(lsgan.discriminator_loss(scales, scales)) == pytest.approx(0.5 * (ls_real + ls_fake))
    assert float(vanilla(scales, True)) == pytest.approx(bce_real)
    assert float(vanilla(scales, False)) == pytest.approx(bce_fake)
    assert float(vanilla.generator_loss(scales)) == pytest.approx(bce_real)
    assert float(hinge(scales, True)) == pytest.approx(hinge_real)
    assert float(hinge(scales, False)) == pytest.approx(hinge_fake)
    assert float(hinge.generator_loss(scales)) == pytest.approx(hinge_g)
    with pytest.raises(ValueError, match="target_is_real=True only"):
        hinge(scales, False, for_discriminator=False)
    with pytest.raises(ValueError, match="GAN mode must be one of"):
        GANLoss("wgan")


def test_gan_labels_are_configurable_and_a_bare_tensor_is_one_scale() -> None:
    prediction = rand(3, 1, 4, 4)
    smooth = GANLoss("lsgan", real_label=0.9, fake_label=0.1)
    assert float(smooth(prediction, True)) == pytest.approx(float(((prediction - 0.9) ** 2).mean()))
    assert float(smooth(prediction, False)) == pytest.approx(float(((prediction - 0.1) ** 2).mean()))
    assert len(final_predictions(prediction)) == 1 and final_predictions([prediction])[0] is prediction


def test_r1_penalty_equals_half_the_squared_input_gradient() -> None:
    x = rand(2, 3, 4, 4).requires_grad_(True)
    weight = rand(1, 3, 1, 1)
    penalty = R1Penalty(weight=10.0)([[x * weight]], x)
    # d/dx sum(w x) = w everywhere: per sample 0.5 * sum over (C, H, W) of w^2, times the weight
    expected = 10.0 * 0.5 * float((weight**2).sum()) * 16
    assert float(penalty) == pytest.approx(expected)
    with pytest.raises(ValueError, match="requires_grad"):
        R1Penalty()(x.detach(), x.detach())


def test_feature_matching_weights_layers_and_scales_like_pix2pixhd() -> None:
    fake = [
        [rand(1, 2, 4, 4), rand(1, 2, 2, 2), rand(1, 2, 2, 2), rand(1, 1, 1, 1)],
        [rand(1, 2, 4, 4), rand(1, 1, 2, 2)],
    ]
    real = [[rand(*t.shape) for t in scale] for scale in fake]
    expected = 0.0
    for fake_scale, real_scale in zip(fake, real):
        n_layers_plus_one = len(fake_scale) - 1
        for f, r in zip(fake_scale[:-1], real_scale[:-1]):
            expected += 4.0 / n_layers_plus_one / 2 * float((f - r).abs().mean())
    assert float(FeatureMatchingLoss(weight=10.0)(fake, real)) == pytest.approx(10.0 * expected)
    assert float(FeatureMatchingLoss()(fake, real)) == pytest.approx(expected)  # weight 1 unless configured
    with pytest.raises(ValueError, match="scales"):
        FeatureMatchingLoss()(fake, real[:1])
    with pytest.raises(ValueError, match="intermediate features"):
        FeatureMatchingLoss()([[rand(1, 1, 2, 2)]], [[rand(1, 1, 2, 2)]])


def test_feature_matching_does_not_train_the_real_branch() -> None:
    fake = [[rand(1, 2, 3, 3).requires_grad_(True), rand(1, 1, 2, 2)]]
    real = [[rand(1, 2, 3, 3).requires_grad_(True), rand(1, 1, 2, 2)]]
    FeatureMatchingLoss()(fake, real).backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None


def test_l1_reconstruction_with_channels_and_mask_equals_a_loop() -> None:
    pred, target = rand(2, 4, 3, 3), rand(2, 4, 3, 3)
    mask = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    mask[0, 0, 1:, :2] = True
    mask[1, 0, 0, :] = True
    total, count = 0.0, 0
    for n in range(2):
        for c in (0, 1, 2):
            for y in range(3):
                for x in range(3):
                    if mask[n, 0, y, x]:
                        total += abs(float(pred[n, c, y, x] - target[n, c, y, x]))
                        count += 1
    loss = L1ReconstructionLoss(weight=100.0, channels=[0, 1, 2])(pred, target, mask)
    assert float(loss) == pytest.approx(100.0 * total / count)
    assert float(L1ReconstructionLoss()(pred, target)) == pytest.approx(float((pred - target).abs().mean()))
    assert float(L1ReconstructionLoss()(pred, target, torch.zeros(2, 1, 3, 3))) == 0.0
    one_pixel = torch.zeros(2, 1, 3, 3)
    one_pixel[1, 0, 2, 1] = 1.0
    single = float((pred[1, 3, 2, 1] - target[1, 3, 2, 1]).abs())
    assert float(L1ReconstructionLoss(channels=[3])(pred, target, one_pixel)) == pytest.approx(single)
    with pytest.raises(ValueError, match="differ"):
        L1ReconstructionLoss()(pred, target[:, :3])


def _rgbd_with_background() -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = rand(2, 4, 6, 6).clamp(-0.9, 1), rand(2, 4, 6, 6).clamp(-0.9, 1)
    target[:, 3, :, :2] = -1.0  # true background columns
    pred[:, 3, 4:, :] = -1.0  # predicted background rows
    return pred, target


def test_depth_helpers_and_the_depth_as_mask_rule() -> None:
    pred, target = _rgbd_with_background()
    assert pytest.approx(-1 + 1 / 255) == BACKGROUND_THRESHOLD
    torch.testing.assert_close(select_depth(pred, 3), pred[:, 3:4])
    with pytest.raises(ValueError, match="set depth_channel"):
        select_depth(pred, None)
    edge = torch.tensor([-1.0, BACKGROUND_THRESHOLD, BACKGROUND_THRESHOLD + 1e-6])
    assert foreground_mask(edge).tolist() == [False, False, True]
    masked_pred, masked_real = apply_depth_mask(pred, target)
    for n in range(2):
        for y in range(6):
            for x in range(6):
                background = target[n, 3, y, x] <= BACKGROUND_THRESHOLD or pred[n, 3, y, x] <= BACKGROUND_THRESHOLD
                for tensor, source in ((masked_pred, pred), (masked_real, target)):
                    expected = torch.full((4,), -1.0, dtype=tensor.dtype) if background else source[n, :, y, x]
                    torch.testing.assert_close(tensor[n, :, y, x], expected)
    with pytest.raises(ValueError, match="differ"):
        apply_depth_mask(pred, target[:, :, :5])


def test_depth_l1_is_millimetres_over_the_mask() -> None:
    pred, target = _rgbd_with_background()
    foreground = target[:, 3] > BACKGROUND_THRESHOLD
    naive = float(((pred[:, 3] - target[:, 3]).abs() * 0.5)[foreground].mean())
    assert float(DepthL1Loss(mm_per_unit=0.5, weight=2.0, depth_channel=3)(pred, target)) == pytest.approx(2 * naive)
    mask = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    mask[:, :, 2, 3] = True
    given = float(((pred[:, 3, 2, 3] - target[:, 3, 2, 3]).abs() * 0.5).mean())
    assert float(DepthL1Loss(mm_per_unit=0.5, depth_channel=3)(pred, target, mask)) == pytest.approx(given)
    with pytest.raises(ValueError, match="mm_per_unit must be > 0"):
        DepthL1Loss(mm_per_unit=0.0)


def test_depth_gradient_loss_equals_forward_differences_in_a_loop() -> None:
    pred, target = _rgbd_with_background()
    mm = 3.0
    fg = (target[:, 3] > BACKGROUND_THRESHOLD).numpy()
    p, t = pred[:, 3].numpy() * mm, target[:, 3].numpy() * mm
    total, count = 0.0, 0
    for n in range(2):
        for y in range(6):
            for x in range(6):
                if x + 1 < 6 and fg[n, y, x] and fg[n, y, x + 1]:
                    total += abs((p[n, y, x + 1] - p[n, y, x]) - (t[n, y, x + 1] - t[n, y, x]))
                    count += 1
                if y + 1 < 6 and fg[n, y, x] and fg[n, y + 1, x]:
                    total += abs((p[n, y + 1, x] - p[n, y, x]) - (t[n, y + 1, x] - t[n, y, x]))
                    count += 1
    loss = DepthGradientLoss(mm_per_unit=mm, weight=0.5, depth_channel=3)(pred, target)
    assert float(loss) == pytest.approx(0.5 * total / count)
    # an offset of the whole depth has no relief error
    shifted = target.clone()
    shifted[:, 3] += 0.05
    assert float(DepthGradientLoss(mm_per_unit=mm, depth_channel=3)(shifted, target)) == pytest.approx(0.0, abs=1e-9)


def test_normals_of_a_plane_and_the_normal_loss() -> None:
    yy, xx = torch.meshgrid(torch.arange(6.0).double(), torch.arange(7.0).double(), indexing="ij")
    slope_x, slope_y = 0.3, -0.2
    plane = (100 + slope_x * xx * 2.0 + slope_y * yy * 2.0)[None, None].double()  # 2 mm pixels
    mask = torch.ones_like(plane, dtype=torch.bool)
    mask[..., 2, 3] = False
    normals, valid = depth_to_normals(plane, 2.0, mask)
    expected = np.array([slope_x, slope_y, -1.0]) / np.linalg.norm([slope_x, slope_y, -1.0])
    inner = normals[0, :, 2:-2, 2:-2].reshape(3, -1).T.numpy()
    np.testing.assert_allclose(inner, np.broadcast_to(expected, inner.shape), atol=1e-12)
    # valid: the pixel and its 4 neighbours inside the mask (the image border counts as outside)
    inside = mask[0, 0].numpy()
    for y in range(6):
        for x in range(7):
            neighbours = [(y, x), (y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)]
            expected_valid = all(0 <= j < 6 and 0 <= i < 7 and inside[j, i] for j, i in neighbours)
            assert bool(valid[0, 0, y, x]) == expected_valid, (y, x)
    assert int(valid.sum()) == 20 - 5

    # loss: 1 - cos between the normals of two differently tilted planes (two samples, different tilts)
    def tilted(sx: float, sy: float) -> torch.Tensor:  # depth in network units (50 mm per unit), 2 mm pixels
        return (0.2 + (sx * xx * 2.0 + sy * yy * 2.0) / 50.0)[None, None]

    def unit_normal(sx: float, sy: float) -> np.ndarray:
        return np.array([sx, sy, -1.0]) / np.linalg.norm([sx, sy, -1.0])

    pairs = [((0.3, 0.0), (0.0, -0.2)), ((0.1, 0.1), (0.1, 0.1))]
    pred = torch.cat([tilted(*a) for a, _ in pairs])
    target = torch.cat([tilted(*b) for _, b in pairs])
    loss = NormalConsistencyLoss(mm_per_unit=50.0, mm_per_pixel=2.0, weight=3.0)(
        pred, target, torch.ones_like(pred) > 0
    )
    expected = np.mean([1 - unit_normal(*a) @ unit_normal(*b) for a, b in pairs])  # equal valid pixels per sample
    assert float(loss) == pytest.approx(3.0 * expected, rel=1e-6)
    with pytest.raises(ValueError, match="mm_per_pixel must be > 0"):
        NormalConsistencyLoss(mm_per_unit=1.0, mm_per_pixel=0.0)
