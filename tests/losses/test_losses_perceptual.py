"""VGG perceptual loss and LPIPS: weighting, heads from data files, and gradients reaching the generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from src.losses import LPIPS, VGGPerceptualLoss
from src.losses.lpips import BUNDLED_HEADS_DIR, LPIPS_NETS, default_head_path
from src.models.components.generators import UnetGenerator

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*RANDOM:UserWarning")


def test_vgg_loss_layer_weighting_and_target_without_gradient() -> None:
    torch.manual_seed(0)
    loss = VGGPerceptualLoss(
        weight=2.0, layers=["relu1_1", "relu2_1"], layer_weights=[0.5, 1.0], backbone_weights="random"
    )
    pred = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    target = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    value = loss(pred, target)
    fp, ft = loss.backbone(pred), loss.backbone(target)
    assert torch.isclose(value, 2.0 * (0.5 * F.l1_loss(fp[0], ft[0]) + F.l1_loss(fp[1], ft[1])))
    value.backward()
    assert pred.grad.abs().sum() > 0 and target.grad is None
    assert loss(target, target) == 0


def test_vgg_loss_defaults_are_pix2pixhd() -> None:
    loss = VGGPerceptualLoss(backbone_weights="random", channels=[3])  # depth of RGBD, repeated to 3 channels
    assert loss.layer_weights == [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    assert loss.backbone.layers == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert loss(torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32)) > 0


@pytest.mark.parametrize("net", sorted(LPIPS_NETS))
def test_lpips_heads_are_the_v01_files(net: str) -> None:
    metric = LPIPS(net, backbone_weights="random")
    state = torch.load(default_head_path(net), map_location="cpu", weights_only=True)
    assert len(state) == len(metric.heads)
    for i, head in enumerate(metric.heads):
        assert torch.equal(head.weight, state[f"lin{i}.model.1.weight"])
    assert (BUNDLED_HEADS_DIR / "LICENSE").is_file()


def test_lpips_gradient_reaches_generator_output_and_parameters() -> None:
    torch.manual_seed(0)
    generator = UnetGenerator(1, 4, num_downs=6, ngf=4, norm="instance")
    lpips = LPIPS("alex", backbone_weights="random", channels=[0, 1, 2])
    target = torch.rand(2, 4, 64, 64) * 2 - 1
    fake = generator(torch.rand(2, 1, 64, 64) * 2 - 1)
    fake.retain_grad()
    value = lpips(fake, target)
    assert value.requires_grad and value > 0
    value.backward()
    assert fake.grad is not None and fake.grad[:, :3].abs().sum() > 0
    assert torch.all(fake.grad[:, 3] == 0)  # depth was not part of this LPIPS term
    assert all(torch.isfinite(p.grad).all() for p in generator.parameters())
    assert sum(p.grad.abs().sum() for p in generator.parameters()) > 0
    assert all(p.grad is None for p in lpips.parameters())  # the metric itself stays frozen


def test_lpips_equals_the_paper_formula_with_lpips_scaling_constants() -> None:
    torch.manual_seed(0)
    lpips = LPIPS("alex", backbone_weights="random", reduction="none")
    x, y = torch.rand(2, 3, 48, 48) * 2 - 1, torch.rand(2, 3, 48, 48) * 2 - 1
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)  # LPIPS v0.1 ScalingLayer
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(img: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], (img - shift) / scale
        for index, layer in enumerate(lpips.backbone.features):
            h = layer(h)
            if index in (1, 4, 7, 9, 11):
                out.append(h)
        return out

    expected = torch.zeros(2)
    for head, fx, fy in zip(lpips.heads, taps(x), taps(y)):
        nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        expected += (head.weight.view(1, -1, 1, 1) * (nx - ny).pow(2)).sum(1).mean(dim=(1, 2))
    assert torch.allclose(lpips(x, y), expected, rtol=1e-4, atol=1e-6)


def test_lpips_per_sample_and_identity() -> None:
    torch.manual_seed(0)
    lpips = LPIPS("vgg", backbone_weights="random", reduction="none")
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    y = x.clone()
    y[1] += 0.3 * torch.randn_like(y[1])
    d = lpips(x, y)
    assert d.shape == (3,) and d[0] == 0 and d[2] == 0 and d[1] > 0


def test_lpips_flat_black_images_have_finite_gradients() -> None:
    lpips = LPIPS("alex", backbone_weights="random")
    pred = torch.full((1, 3, 32, 32), -1.0, requires_grad=True)
    lpips(pred, torch.full((1, 3, 32, 32), -1.0)).backward()
    assert torch.isfinite(pred.grad).all()


def test_missing_head_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.pth"):
        LPIPS("alex", backbone_weights="random", head_weights=str(tmp_path / "nothere.pth"))
