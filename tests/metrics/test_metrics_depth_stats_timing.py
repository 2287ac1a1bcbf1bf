"""Depth metrics in mm, summaries, LPIPS metric keys and synchronised forward timing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from src.metrics import LPIPSMetric, depth_metrics_mm, measure_forward_time, summarize


def test_depth_errors_in_mm_inside_face_mask() -> None:
    target = torch.tensor([[[[-1.0, 0.0, 0.5, 0.5]]], [[[-1.0, -1.0, -1.0, -1.0]]]])
    pred = torch.tensor([[[[0.7, 0.1, 0.2, 0.5]]], [[[0.0, 0.0, 0.0, 0.0]]]])
    result = depth_metrics_mm(pred, target, mm_per_unit=100.0)
    assert torch.allclose(result["depth_mae_mm"][0], torch.tensor((10.0 + 30.0 + 0.0) / 3))
    assert torch.allclose(result["depth_rmse_mm"][0], torch.tensor(math.sqrt((100.0 + 900.0) / 3)))
    assert torch.isnan(result["depth_mae_mm"][1])  # no face pixels: undefined, not 0
    rgbd = torch.zeros(2, 4, 1, 4)
    rgbd[:, 3:] = target
    pred_rgbd = rgbd.clone()
    pred_rgbd[:, 3:] = pred
    assert torch.allclose(
        depth_metrics_mm(pred_rgbd, rgbd, 100.0, depth_channel=3)["depth_mae_mm"][:1], result["depth_mae_mm"][:1]
    )


def test_summarize_matches_numpy() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0]
    summary = summarize(torch.tensor(values))
    assert summary == pytest.approx(
        {"mean": np.mean(values), "median": np.median(values), "std": np.std(values), "min": 1.0, "max": 9.0}
    )
    assert summarize(np.array(values)) == summary
    with pytest.raises(ValueError, match="no values"):
        summarize([])


@pytest.mark.filterwarnings("ignore:.*RANDOM:UserWarning")
def test_lpips_metric_keys_name_backbone_and_channels() -> None:
    metric = LPIPSMetric("alex", backbone_weights="random")
    x, y = torch.rand(2, 4, 32, 32) * 2 - 1, torch.rand(2, 4, 32, 32) * 2 - 1
    result = metric(x, y)
    assert set(result) == {"lpips_alex_rgb", "lpips_alex_depth"}
    assert all(v.shape == (2,) and (v > 0).all() for v in result.values())
    assert set(metric(x[:, :3], y[:, :3])) == {"lpips_alex"}


def test_measure_forward_time_cpu_counts_calls() -> None:
    calls = []
    times = measure_forward_time(lambda x: calls.append(x.sum()), torch.ones(3), warmup=2, repeats=5)
    assert len(times) == 5 and len(calls) == 7 and all(t >= 0 for t in times)


def test_measure_forward_time_synchronises_cuda(monkeypatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    measure_forward_time(lambda x: events.append("call"), torch.ones(1), warmup=1, repeats=3, device="cuda")
    # Warm-up, sync before the clock starts, then every timed call is followed by a sync.
    assert events == ["call", "sync", "call", "sync", "call", "sync", "call", "sync"]
