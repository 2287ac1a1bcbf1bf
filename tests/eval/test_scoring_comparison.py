"""Scoring reads what a system declares: metric directions, headline metrics, the untrained system, baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from src.models.rgbd_face import RGBDFaceModule
from src.models.system import HIGHER, LOWER, SystemHooks
from src.utils.scoring import beats, metric_table, untrained_system, write_comparison
from tests.framework.framework_fixtures import compose_config, tiny_train_overrides


def _row(**means: float) -> dict[str, dict[str, float]]:
    return {name: {"mean": value, "std": 0.5} for name, value in means.items()}


def test_declaration_mistakes_fail_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match=r"HEADLINE_METRICS \['fid'\] have no METRIC_DIRECTIONS"):

        class NoDirection(SystemHooks):
            METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {"psnr": HIGHER}
            HEADLINE_METRICS: ClassVar[tuple[str, ...]] = ("psnr", "fid")

    with pytest.raises(TypeError, match="directions must be"):

        class BadDirection(SystemHooks):
            METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {"psnr": "up"}


def test_directions_merge_along_the_class_hierarchy() -> None:
    class Parent(SystemHooks):
        METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {"nme": LOWER}

    class Child(Parent):
        METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {"psnr": HIGHER}
        HEADLINE_METRICS: ClassVar[tuple[str, ...]] = ("psnr", "nme", "forward_ms")

    assert Child.metric_directions() == {"forward_ms": LOWER, "nme": LOWER, "psnr": HIGHER}
    assert Child.headline_metrics() == {"psnr": HIGHER, "nme": LOWER, "forward_ms": LOWER}
    assert RGBDFaceModule.headline_metrics() == {
        "psnr_rgbd": HIGHER,
        "psnr_rgb": HIGHER,
        "ssim_rgbd": HIGHER,
        "depth_mae_mm": LOWER,
        "depth_rmse_mm": LOWER,
        "background_as_face": LOWER,
    }


def test_beats_follows_declared_directions_not_metric_names() -> None:
    # Names that the old substring rule got wrong: an "accuracy_gap" is an error (lower is better), and a
    # "distance_score" a similarity (higher is better).
    directions = {"accuracy_gap": LOWER, "distance_score": HIGHER, "nme": LOWER}
    rows = {
        "trained": _row(accuracy_gap=0.1, distance_score=0.9, nme=0.05),
        "untrained": _row(accuracy_gap=0.3, distance_score=0.95, nme=0.05),
        "mean": _row(accuracy_gap=0.05, distance_score=0.2),
    }
    verdict = beats(rows, "trained", directions)
    # the reference, spelled out: strict comparison of the means in the declared direction
    assert verdict == {
        "untrained": {"accuracy_gap": True, "distance_score": False, "nme": False},
        "mean": {"accuracy_gap": False, "distance_score": True},
    }
    with pytest.raises(ValueError, match="directions must be"):
        beats(rows, "trained", {"nme": "smaller"})


def test_comparison_files_show_directions_and_verdicts(tmp_path: Path) -> None:
    rows = {"trained": _row(psnr=20.0, mae=3.0), "untrained": _row(psnr=10.0, mae=2.0)}
    payload = write_comparison(tmp_path, rows, {"psnr": HIGHER, "mae": LOWER})
    text = (tmp_path / "comparison.md").read_text()
    assert "| model | psnr ↑ | mae ↓ |" in text
    assert "| trained | 20.000 ± 0.500 | 3.000 ± 0.500 |" in text
    assert "- trained beats untrained on psnr; NOT on mae" in text
    on_disk = json.loads((tmp_path / "comparison.json").read_text())
    assert on_disk["directions"] == {"psnr": HIGHER, "mae": LOWER} == payload["directions"]
    assert metric_table(rows, {"psnr": None}).splitlines()[0] == "| model | psnr |"  # undeclared: no arrow
    with pytest.raises(ValueError, match="no headline metrics"):
        write_comparison(tmp_path / "none", rows, {})


def test_untrained_system_is_the_same_class_built_like_training_starts(rgbd_tiny_cfg) -> None:
    import hydra
    import lightning as L

    L.seed_everything(rgbd_tiny_cfg.seed, workers=True, verbose=False)
    at_start = hydra.utils.instantiate(rgbd_tiny_cfg.model)  # what train.py builds before fit
    baseline = untrained_system(rgbd_tiny_cfg)
    assert type(baseline) is type(at_start) is RGBDFaceModule
    expected = at_start.state_dict()
    got = baseline.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    other_cfg = rgbd_tiny_cfg.copy()
    other_cfg.seed = rgbd_tiny_cfg.seed + 1
    other = untrained_system(other_cfg).state_dict()
    assert not all(torch.equal(expected[k], other[k]) for k in expected)  # the seed matters


@pytest.fixture
def rgbd_tiny_cfg(tmp_path: Path):
    return compose_config("train.yaml", tiny_train_overrides(tmp_path / "unused-data", tmp_path / "run"))
