"""Two runs with the same seed and thread count give identical metrics, bit for bit (what changes them:
docs/reproducibility.md). Both runs go through train.py's train() in one process, so the second also shows that
nothing a run leaves behind (caches, random streams, loaders) changes the next one. A third run with another seed
differs: the comparison can fail.
"""

from __future__ import annotations

from pathlib import Path

import torch

import train as train_entry
from tests.framework.framework_fixtures import compose_config, tiny_train_overrides


def _run(dataset: Path, out: Path, seed: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    cfg = compose_config("train.yaml", tiny_train_overrides(dataset, out, f"seed={seed}", "trainer.deterministic=true"))
    metrics, objects = train_entry.train(cfg)
    scores = {k: float(v) for k, v in metrics.items() if not k.endswith("_ms")}  # timings are not results
    return scores, objects["model"].state_dict()


def test_same_seed_and_threads_give_identical_metrics(dataset: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first, weights = _run(dataset, tmp_path / "a", seed=7)
        second, weights_again = _run(dataset, tmp_path / "b", seed=7)
        other, _ = _run(dataset, tmp_path / "c", seed=8)
    finally:
        torch.set_num_threads(threads)
    assert any(k.startswith("test/") for k in first) and any(k.startswith("train/") for k in first)
    assert first == second
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)
    assert other["test/psnr_rgbd"] != first["test/psnr_rgbd"]
