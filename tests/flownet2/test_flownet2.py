"""FlowNet2 in plain PyTorch: the custom layers against naive loops, the original checkpoint layout, the wrapper's
pre / post-processing, one-line errors, and the light DIS estimator against a known shift."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src.models.components.flownet2 import (
    FLOWNET2_PARAMETERS,
    DISFlowEstimator,
    FlowNet2,
    FlowNet2Estimator,
    confidence_mask,
    count_parameters,
    load_flownet2,
)
from src.models.components.flownet2_ops import channel_norm, correlation, naive_correlation, resample2d
from src.utils.errors import CheckpointError

TSV = Path(__file__).resolve().parent / "data" / "flownet2-state-dict.tsv"


def reference_shapes() -> dict[str, tuple[int, ...]]:
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line.strip()]
    return {key: tuple(int(v) for v in shape.strip("()").split(",") if v.strip()) for key, shape in rows}


def loop_correlation(first: torch.Tensor, second: torch.Tensor, max_disp: int, stride2: int) -> torch.Tensor:
    """The CUDA kernel's definition, one output value at a time."""
    _, channels, height, width = first.shape
    radius = max_disp // stride2
    size = 2 * radius + 1
    out = torch.zeros(first.shape[0], size * size, height, width, dtype=torch.float64)
    for b in range(first.shape[0]):
        for iy in range(size):
            for ix in range(size):
                dy, dx = (iy - radius) * stride2, (ix - radius) * stride2
                for y in range(height):
                    for x in range(width):
                        y2, x2 = y + dy, x + dx
                        if 0 <= y2 < height and 0 <= x2 < width:
                            value = float((first[b, :, y, x].double() * second[b, :, y2, x2].double()).sum())
                            out[b, iy * size + ix, y, x] = value / channels
    return out


def loop_resample(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Resample2d's CUDA kernel: floor, clamp the integer taps to the image, bilinear weights."""
    batch, channels, height, width = image.shape
    out = torch.zeros_like(image, dtype=torch.float64)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                xf, yf = x + float(flow[b, 0, y, x]), y + float(flow[b, 1, y, x])
                alpha, beta = xf - math.floor(xf), yf - math.floor(yf)
                xl = max(min(math.floor(xf), width - 1), 0)
                xr = max(min(math.floor(xf) + 1, width - 1), 0)
                yt = max(min(math.floor(yf), height - 1), 0)
                yb = max(min(math.floor(yf) + 1, height - 1), 0)
                for c in range(channels):
                    img = image[b, c].double()
                    out[b, c, y, x] = (
                        (1 - alpha) * (1 - beta) * img[yt, xl]
                        + alpha * (1 - beta) * img[yt, xr]
                        + (1 - alpha) * beta * img[yb, xl]
                        + alpha * beta * img[yb, xr]
                    )
    return out


@pytest.mark.parametrize(("max_disp", "stride2", "side"), [(4, 2, 7), (3, 1, 6), (20, 2, 9)])
def test_correlation_matches_the_kernel_definition(max_disp: int, stride2: int, side: int) -> None:
    rng = torch.Generator().manual_seed(0)
    first, second = torch.randn(2, 3, side, side + 1, generator=rng), torch.randn(2, 3, side, side + 1, generator=rng)
    expected = loop_correlation(first, second, max_disp, stride2)
    for rows in (1, 2, 50):
        got = correlation(first, second, max_disp, stride2, rows_per_chunk=rows)
        assert got.shape == expected.shape
        assert torch.allclose(got.double(), expected, atol=1e-5)
    assert torch.allclose(naive_correlation(first, second, max_disp, stride2).double(), expected, atol=1e-5)


def test_correlation_channel_order_is_row_major_dy_dx() -> None:
    """A pure shift of f2 by (dy, dx) = (+2, -4) peaks in channel (dy/2 + 10) * 21 + (dx/2 + 10)."""
    rng = torch.Generator().manual_seed(1)
    first = torch.randn(1, 16, 24, 24, generator=rng)
    second = torch.roll(first, shifts=(2, -4), dims=(2, 3))
    scores = correlation(first, second)[0, :, 8:16, 8:16].mean((1, 2))
    assert int(scores.argmax()) == (1 + 10) * 21 + (-2 + 10)


def test_resample2d_matches_the_kernel_including_the_border() -> None:
    rng = torch.Generator().manual_seed(2)
    image = torch.randn(2, 3, 6, 7, generator=rng)
    flow = torch.randn(2, 2, 6, 7, generator=rng) * 4  # many samples fall outside: clamped to the border
    assert torch.allclose(resample2d(image, flow).double(), loop_resample(image, flow), atol=1e-5)


def test_channel_norm() -> None:
    x = torch.tensor([[[[3.0]], [[4.0]]]])
    assert float(channel_norm(x)) == 5.0


def test_state_dict_has_the_original_keys_shapes_and_parameter_count() -> None:
    shapes = reference_shapes()
    assert len(shapes) == 220
    model = FlowNet2()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    assert count_parameters(model) == FLOWNET2_PARAMETERS == sum(math.prod(s) for s in shapes.values())


def write_original_checkpoint(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, float]:
    """The original's format {'state_dict': ...}; each tensor one distinct value (stride-0, so the file is tiny)."""
    values = {key: 0.001 * (index + 1) for index, key in enumerate(shapes)}
    state = {key: torch.full((1,), values[key]).expand(shape) for key, shape in shapes.items()}
    torch.save({"state_dict": state, "epoch": 0, "best_EPE": 1.0}, path)
    return values


def test_original_checkpoint_loads_every_key(tmp_path: Path) -> None:
    path = tmp_path / "FlowNet2_checkpoint.pth.tar"
    values = write_original_checkpoint(path, reference_shapes())
    model = load_flownet2(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for key, tensor in model.state_dict().items():
        assert torch.all(tensor == values[key]), key


def test_a_checkpoint_that_is_not_flownet2_names_the_first_mismatched_keys(tmp_path: Path) -> None:
    shapes = reference_shapes()
    shapes["flownetc.conv1.0.weight"] = (64, 4, 7, 7)
    shapes["extra.weight"] = (1,)
    del shapes["flownetfusion.predict_flow0.bias"]
    path = tmp_path / "other.pth"
    write_original_checkpoint(path, shapes)
    with pytest.raises(CheckpointError) as err:
        load_flownet2(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    for key in ("flownetfusion.predict_flow0.bias", "extra.weight", "flownetc.conv1.0.weight"):
        assert key in message


def test_missing_weights_name_the_file_and_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESYNTH_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(CheckpointError) as err:
        load_flownet2()
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "weights" / "FlowNet2_checkpoint.pth.tar") in message and "FACESYNTH_WEIGHTS_DIR" in message


class _ConstantFlow(torch.nn.Module):
    """Stands in for the network: records the size it saw, answers a constant flow (1, 2) pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, int]] = []

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(first.shape[-2:]))
        flow = torch.zeros(first.shape[0], 2, *first.shape[-2:])
        flow[:, 0], flow[:, 1] = 1.0, 2.0
        return flow


def test_estimator_rounds_to_64_and_rescales_the_flow() -> None:
    estimator = FlowNet2Estimator.__new__(FlowNet2Estimator)
    torch.nn.Module.__init__(estimator)
    stub = _ConstantFlow()
    estimator._network = [stub]
    frames = torch.rand(2, 3, 3, 150, 200) * 2 - 1  # (B, T, 3, H, W)
    flow, confidence = estimator(frames, frames)
    assert stub.seen == [(128, 192)]
    assert flow.shape == (2, 3, 2, 150, 200) and confidence.shape == (2, 3, 1, 150, 200)
    assert torch.allclose(flow[:, :, 0], torch.full_like(flow[:, :, 0], 200 / 192))
    assert torch.allclose(flow[:, :, 1], torch.full_like(flow[:, :, 1], 2 * 150 / 128))


def smooth_texture(seed: int, size: int = 96) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 8, size // 8, generator=rng)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1


def test_dis_flow_recovers_a_known_shift_in_the_resample_convention() -> None:
    first = smooth_texture(3)
    true_flow = torch.zeros(1, 2, 96, 96)
    true_flow[:, 0], true_flow[:, 1] = 3.0, -2.0
    second = torch.roll(first, shifts=(-2, 3), dims=(2, 3))  # first(p) = second(p + (3, -2))
    flow, confidence = DISFlowEstimator("medium")(first, second)
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    assert torch.allclose(flow[inner].median(-1).values.median(-1).values, true_flow[inner][..., 0, 0], atol=0.25)
    assert float(confidence[inner].mean()) > 0.9
    assert torch.allclose(confidence, confidence_mask(first, second, flow))
    error_warped = (resample2d(second, flow) - first)[inner].abs().mean()
    assert float(error_warped) < 0.25 * float((second - first)[inner].abs().mean())


def test_zero_frame_pairs_give_empty_flow_and_confidence() -> None:
    """A one-frame chunk at a sequence start has no previous frame: (B, 0, 3, H, W) pairs in, empty maps out."""
    frames = torch.rand(2, 0, 3, 32, 48)
    flow, confidence = DISFlowEstimator("medium")(frames, frames)
    assert flow.shape == (2, 0, 2, 32, 48) and confidence.shape == (2, 0, 1, 32, 48)


def test_confidence_mask_threshold() -> None:
    first = torch.zeros(1, 3, 2, 2)
    second = first.clone()
    second[0, :, 0, 0] = 0.1  # squared error 0.03 >= 0.02: not confident
    second[0, 0, 1, 1] = 0.1  # squared error 0.01 < 0.02: confident
    mask = confidence_mask(first, second, torch.zeros(1, 2, 2, 2))
    assert mask[0, 0].tolist() == [[0.0, 1.0], [1.0, 1.0]]


def test_flownet2_forward_shape_and_size_rule() -> None:
    torch.manual_seed(0)
    model = FlowNet2().eval()
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        flow = model(images, images)
    assert flow.shape == (1, 2, 64, 64) and torch.isfinite(flow).all()
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.zeros(1, 3, 60, 64), torch.zeros(1, 3, 60, 64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_layers_agree_on_the_gpu() -> None:
    rng = torch.Generator().manual_seed(4)
    first, second = torch.randn(1, 8, 16, 16, generator=rng), torch.randn(1, 8, 16, 16, generator=rng)
    flow = torch.randn(1, 2, 16, 16, generator=rng) * 3
    assert torch.allclose(correlation(first.cuda(), second.cuda()).cpu(), correlation(first, second), atol=1e-5)
    assert torch.allclose(resample2d(first.cuda(), flow.cuda()).cpu(), resample2d(first, flow), atol=1e-5)
    np.testing.assert_allclose(channel_norm(first.cuda()).cpu().numpy(), channel_norm(first).numpy(), atol=1e-5)
