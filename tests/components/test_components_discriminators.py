"""Discriminators: exact parameter counts of the reference layouts and the list-of-lists output contract."""

from __future__ import annotations

import pytest
import torch

from src.models.components.discriminators import MultiscaleDiscriminator, NLayerDiscriminator
from src.models.components.norms import count_parameters

torch.set_num_threads(1)


def _meta(factory):
    with torch.device("meta"):
        return factory()


def test_rgbd_original_discriminator_counts() -> None:
    # RGBD original: condition (1) + RGBD (4) = 5 channels, ndf 64, n_layers 4, pix2pixHD layout: ~6.96 M per scale.
    single = _meta(lambda: NLayerDiscriminator(5, 64, 4, norm="batch"))
    assert count_parameters(single) == 6_964_417
    assert count_parameters(_meta(lambda: NLayerDiscriminator(5, 64, 4, norm="instance"))) == 6_961_601
    multi = _meta(lambda: MultiscaleDiscriminator(5, 64, 4, num_D=3, norm="batch"))
    assert count_parameters(multi) == 3 * 6_964_417
    # The pix2pix layout (padding 1, no conv bias before BatchNorm) also rounds to 6.96 M.
    assert count_parameters(_meta(lambda: NLayerDiscriminator(5, 64, 4, layout="pix2pix"))) == 6_963_009


def test_other_reference_layouts() -> None:
    # DFDN patch D: 3 layers, 2 channels, pix2pixHD padding -> 35x35 map on 256x256, 2,765,505 parameters.
    dfdn = _meta(lambda: NLayerDiscriminator(2, 64, 3, norm="batch"))
    assert count_parameters(dfdn) == 2_765_505
    assert dfdn(torch.zeros(1, 2, 256, 256, device="meta"))[0][-1].shape == (1, 1, 35, 35)
    # pix2pix 70x70 PatchGAN (padding 1, no conv bias before BatchNorm) on 3 + 3 channels: 30x30 map.
    patch70 = _meta(lambda: NLayerDiscriminator(6, 64, 3, norm="batch", layout="pix2pix"))
    assert count_parameters(patch70) == 2_768_705
    assert patch70(torch.zeros(1, 6, 256, 256, device="meta"))[0][-1].shape == (1, 1, 30, 30)


def test_multiscale_structure_and_pyramid() -> None:
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(5, ndf=8, n_layers=2, num_D=3)
    x = torch.randn(2, 5, 64, 64)
    out = d(x)
    assert len(out) == 3 and all(len(scale) == 2 + 2 for scale in out)
    assert [scale[-1].shape[-1] for scale in out] == [19, 11, 7]  # 64 -> 33 -> 17 -> 18 -> 19 (padding 2)
    pooled = torch.nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    assert torch.allclose(out[1][-1], d.scales[1].features(pooled)[-1])
    sum(s[-1].mean() for s in out).backward()
    assert all(p.grad is not None for p in d.parameters())


def test_single_discriminator_has_the_same_shape_contract() -> None:
    d = NLayerDiscriminator(4, ndf=8, n_layers=3, norm="instance")
    out = d(torch.randn(1, 4, 64, 64))
    assert isinstance(out, list) and len(out) == 1 and len(out[0]) == 3 + 2
    assert out[0][-1].shape[1] == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="layout"):
        NLayerDiscriminator(3, layout="stylegan")
    with pytest.raises(ValueError, match="num_D"):
        MultiscaleDiscriminator(3, num_D=0)
