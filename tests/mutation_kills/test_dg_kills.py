"""DG's yaw buckets at their edges: [0, 20), [20, 40), [40, 60] by |yaw| (the last one closed), so a sample exactly on
an edge is scored in one bucket only. The existing test used yaws inside the buckets; a `<=` for `<` passed it."""

from __future__ import annotations

import math

import torch

from tests.dg.conftest import compose_model

EDGES = {"lm_error_px_yaw00_20": (0.0, 20.0, False), "lm_error_px_yaw20_40": (20.0, 40.0, False)}
EDGES["lm_error_px_yaw40_60"] = (40.0, 60.0, True)


def test_a_yaw_on_a_bucket_edge_is_scored_in_the_upper_bucket_only() -> None:
    import hydra

    torch.manual_seed(0)
    model = hydra.utils.instantiate(compose_model("dg_idsg").model).eval()
    g = torch.Generator().manual_seed(0)
    n = 5
    yaws = [20.0, -40.0, 60.0, 0.0, 60.5]
    data = {
        "reference_landmarks": torch.rand(n, 136, generator=g),
        "target_landmarks": torch.rand(n, 136, generator=g),
        "source_image": torch.rand(n, 3, 32, 32, generator=g),
        "reference_image": torch.rand(n, 3, 32, 32, generator=g),
        "same_image": torch.rand(n, 3, 32, 32, generator=g),
        "target_image": torch.rand(n, 3, 32, 32, generator=g),
        "source_label": torch.tensor([0, 1, 2, 3, 0]),
        "reference_label": torch.tensor([1, 2, 3, 0, 1]),
        "target_yaw_deg": torch.tensor(yaws),
    }
    with torch.no_grad():
        metrics = model.sample_metrics(data, model.generate(data, model.generator))
    error = metrics["lm_error_px"].tolist()
    for name, (low, high, closed) in EDGES.items():
        for i, yaw in enumerate(yaws):  # the naive rule, sample by sample
            inside = low <= abs(yaw) and (abs(yaw) <= high if closed else abs(yaw) < high)
            value = float(metrics[name][i])
            assert (value == error[i]) if inside else math.isnan(value), (name, yaw)
