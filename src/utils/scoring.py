"""Score generators on the held-out split and compare them in one table (trained vs untrained vs baselines).

The comparison is what tells a user the model learned something: a trained generator that does not beat a
freshly initialised one of the same architecture, or the input-independent mean face, has learned nothing
useful, whatever its loss curve says.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch import LightningDataModule, Trainer
from omegaconf import DictConfig
from torch import nn

from src.io.atomic import write_text_atomic
from src.models.gan import GANModule

log = logging.getLogger(__name__)

# Metrics where larger is better; all others (errors, times) are better when smaller.
HIGHER_IS_BETTER = ("psnr", "ssim", "accuracy")
# The comparison's headline metrics: colour+depth fidelity and depth error in mm inside the face.
HEADLINE_METRICS = ("psnr_rgbd", "psnr_rgb", "ssim_rgbd", "depth_mae_mm", "depth_rmse_mm")


def higher_is_better(metric: str) -> bool:
    return any(key in metric for key in HIGHER_IS_BETTER)


def score_on_test(
    trainer: Trainer, module: GANModule, datamodule: LightningDataModule, generator: nn.Module | None = None
) -> dict[str, Any]:
    """Run the module's test loop (optionally with another generator); returns its eval_results['test']."""
    if generator is None:
        trainer.test(module, datamodule=datamodule, verbose=False)
    else:
        with module.generator_replaced(generator):
            trainer.test(module, datamodule=datamodule, verbose=False)
    return module.eval_results["test"]


def metric_table(rows: Mapping[str, Mapping[str, Mapping[str, float]]], metrics: Sequence[str]) -> str:
    """Markdown table: one row per generator, `mean (± std)` per metric."""
    present = [m for m in metrics if any(m in summary for summary in rows.values())]
    arrows = [f"{m} {'↑' if higher_is_better(m) else '↓'}" for m in present]
    lines = ["| generator | " + " | ".join(arrows) + " |", "|---" * (len(present) + 1) + "|"]
    for name, summary in rows.items():
        cells = []
        for metric in present:
            stats = summary.get(metric)
            cells.append("n/a" if stats is None else f"{stats['mean']:.3f} ± {stats['std']:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def beats(
    rows: Mapping[str, Mapping[str, Mapping[str, float]]], winner: str, metrics: Sequence[str]
) -> dict[str, dict[str, bool]]:
    """For each other row and metric: does `winner`'s mean beat it (strictly, in the metric's direction)?"""
    verdict: dict[str, dict[str, bool]] = {}
    for name, summary in rows.items():
        if name == winner:
            continue
        verdict[name] = {}
        for metric in metrics:
            if metric not in summary or metric not in rows[winner]:
                continue
            mine, theirs = rows[winner][metric]["mean"], summary[metric]["mean"]
            if math.isnan(mine) or math.isnan(theirs):
                verdict[name][metric] = False
            else:
                verdict[name][metric] = mine > theirs if higher_is_better(metric) else mine < theirs
    return verdict


def write_comparison(
    output_dir: str | Path,
    rows: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str] = HEADLINE_METRICS,
    winner: str = "trained",
) -> dict[str, Any]:
    """Write comparison.md / comparison.json into output_dir; returns the JSON payload."""
    table = metric_table(rows, metrics)
    verdict = beats(rows, winner, metrics)
    lines = [f"# Held-out comparison\n\n{table}"]
    for other, results in verdict.items():
        won = [m for m, ok in results.items() if ok]
        lost = [m for m, ok in results.items() if not ok]
        lines.append(
            f"- {winner} beats {other} on {', '.join(won) or 'nothing'}"
            + (f"; NOT on {', '.join(lost)}" if lost else "")
        )
    text = "\n".join(lines) + "\n"
    payload = {"rows": rows, "metrics": list(metrics), "beats": verdict}
    out = Path(output_dir)
    write_text_atomic(out / "comparison.md", text)
    write_text_atomic(out / "comparison.json", json.dumps(payload, indent=2, default=lambda v: None) + "\n")
    log.info("Held-out comparison (test split):\n" + text)
    return payload


def _untrained_generator(cfg: DictConfig) -> Any:
    """G of the same architecture, initialised exactly as training started (same seed, same construction order)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    return hydra.utils.instantiate(cfg.model.generator)


def test_and_compare(
    cfg: DictConfig, trainer: Trainer, model: GANModule, datamodule: LightningDataModule, ckpt: str | None
) -> dict[str, float]:
    """Score the best checkpoint on the test split, write its report, and optionally compare with baselines."""
    output_dir = Path(cfg.paths.output_dir)
    if ckpt is None:
        log.warning("No checkpoint found: testing the current weights")
    # A logger-free trainer: the comparison rows must not be mixed into the training curves.
    tester = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
    if ckpt is not None:
        from src.utils.checkpoint import read_checkpoint

        model.load_state_dict(read_checkpoint(ckpt)["state_dict"])
    trained = score_on_test(tester, model, datamodule)
    _write_report(cfg, model, trained, output_dir / "report", ckpt)
    metrics = {f"test/{name}": stats["mean"] for name, stats in trained["summary"].items()}
    if cfg.get("compare_baselines"):
        rows = {"trained": trained["summary"]}
        rows["untrained"] = score_on_test(tester, model, datamodule, _untrained_generator(cfg))["summary"]
        for name, generator in model.baseline_generators(datamodule).items():
            rows[name] = score_on_test(tester, model, datamodule, generator)["summary"]
        write_comparison(output_dir, rows)
    return metrics


def _write_report(cfg: DictConfig, model: GANModule, results: dict[str, Any], out_dir: Path, ckpt: str | None) -> None:
    try:
        samples = model.report_samples("test")
    except NotImplementedError:
        log.info(f"{type(model).__name__} provides no report samples: report skipped")
        return
    from src.eval.report import write_report

    meta = {"checkpoint": ckpt, "model": type(model).__name__, "split": "test (held out)", "task": cfg.task_name}
    index = write_report(out_dir, results["per_sample"], samples, f"{cfg.task_name}: held-out evaluation", meta)
    log.info(f"Report: {index}")
