"""DFDN networks: the original parameter counts, shapes, the fixed PCA path and the region routing."""

from __future__ import annotations

import torch

from src.models.components.dfdn_networks import (
    REGIONS,
    DFDNDiscriminators,
    DFDNGenerator,
    PCAOnly,
    RegionDetailNet,
    ZeroDisplacement,
    detail_unet,
)
from src.models.components.norms import count_parameters


def test_original_parameter_counts_and_d_map():
    """The original's sizes (reference: the paper's code): PDIM 54,413,313, FC 136,875,584, PDRM 29,242,369,
    D 2,765,505 with a 35 x 35 map on a 256 patch."""
    with torch.device("meta"):  # shapes only: 220 M parameters are counted, not allocated
        net = RegionDetailNet()  # the original-size defaults
    assert count_parameters(net.pdim) == 54_413_313
    assert count_parameters(net.fc) == 136_875_584
    assert count_parameters(net.pdrm) == 29_242_369
    assert net.pca_basis.shape == (65536, 64)
    d = DFDNDiscriminators(regions=("forehead",)).nets["forehead"]
    assert count_parameters(d) == 2_765_505
    with torch.no_grad():
        assert d(torch.zeros(1, 2, 256, 256))[0][-1].shape == (1, 1, 35, 35)


def small_net(**changes) -> RegionDetailNet:
    kwargs = dict(patch_size=32, pdim_downs=4, pdim_ngf=4, fc_hidden=(16,), num_components=3, pdrm_downs=4, pdrm_ngf=4)
    return RegionDetailNet(**{**kwargs, **changes})


def test_pca_path_uses_the_fixed_basis():
    """The PCA output is mean + basis @ coefficients of the FC head (independent matrix product), clamped."""
    torch.manual_seed(0)
    net = small_net().eval()
    net.pca_mean.copy_(torch.linspace(-0.1, 0.1, 32 * 32))
    net.pca_basis.copy_(torch.randn(32 * 32, 3) * 0.05)
    texture = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        refined, pca = net(texture)
        coefficients = net.fc(net.pdim(texture))
    expected = (net.pca_mean[None] + coefficients @ net.pca_basis.T).clamp(-1, 1).view(2, 1, 32, 32)
    torch.testing.assert_close(pca, expected)
    assert refined.shape == (2, 1, 32, 32) and refined.abs().max() <= 1.0
    residual = small_net(residual=True).eval()
    residual.load_state_dict(net.state_dict())
    with torch.no_grad():
        expected = (pca + net.pdrm(torch.cat([pca, texture], 1))).clamp(-1, 1)
        torch.testing.assert_close(residual(texture)[0], expected)
    # The refiner sees the PCA output: another basis changes the refined displacement.
    net.pca_basis.mul_(3.0)
    with torch.no_grad():
        assert not torch.allclose(net(texture)[0], refined)


def test_residual_refiner_starts_at_the_pca_output_and_learns():
    """residual=True zero-initialises the PDRM's last layer: before training the refined output IS the PCA output
    (the direct refiner's is not); one Adam step on an L1 loss moves it off (the zero layer still learns)."""
    torch.manual_seed(0)
    texture = torch.randn(4, 1, 32, 32)
    net = small_net(residual=True)
    net.pca_mean.copy_(torch.linspace(-0.1, 0.1, 32 * 32))
    net.pca_basis.copy_(torch.randn(32 * 32, 3) * 0.05)
    refined, pca = net(texture)
    assert torch.equal(refined, pca)
    assert float(small_net().pdrm.unet.up[1].weight.detach().abs().sum()) > 0  # the direct refiner: random init
    optimizer = torch.optim.Adam(net.pdrm.parameters(), lr=1e-3)
    (net(texture)[0] - 0.2).abs().mean().backward()
    optimizer.step()
    refined, pca = net(texture)
    assert (refined - pca).abs().max() > 1e-4


def test_unet_checks_its_side_and_regions_route():
    try:
        small_net(patch_size=40)
    except ValueError as err:
        assert "divisible by 16" in str(err)
    else:
        raise AssertionError("a 40 patch with 4 downsamplings must be refused")
    unet = detail_unet(2, 1, 4, 4)
    assert unet(torch.zeros(1, 2, 32, 32)).shape == (1, 1, 32, 32)
    generator = DFDNGenerator(patch_size=32, pdim_downs=4, pdim_ngf=4, fc_hidden=(8,), num_components=2,
                              pdrm_downs=4, pdrm_ngf=4).eval()  # fmt: skip
    texture = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        for index, region in enumerate(REGIONS):
            torch.testing.assert_close(generator(texture, index)[0], generator.nets[region](texture)[0])
        assert not torch.allclose(generator(texture, 0)[0], generator(texture, 1)[0])
        zero, _ = ZeroDisplacement()(texture, 0)
        assert torch.count_nonzero(zero) == 0
        pca_refined, _pca = PCAOnly(generator)(texture, 1)
        torch.testing.assert_close(pca_refined, generator(texture, 1)[1])
