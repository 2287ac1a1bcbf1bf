"""Score a system on the held-out split and compare it in one table (trained vs untrained vs baselines).

The comparison is what tells a user the model learned something: a trained system that does not beat a freshly
initialised one of the same class and config, or an input-independent baseline (rgbd_face: the mean face), has
learned nothing useful, whatever its loss curve says. Which metrics count, and in which direction, is what the
system declares (HEADLINE_METRICS / METRIC_DIRECTIONS in src/models/system.py); nothing is guessed from names.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from omegaconf import DictConfig
from torch import nn

from src.io.atomic import write_text_atomic
from src.models.system import DIRECTIONS, HIGHER, SystemHooks

log = logging.getLogger(__name__)

Rows = Mapping[str, Mapping[str, Mapping[str, float]]]


def _check_directions(directions: Mapping[str, str]) -> None:
    bad = {name: d for name, d in directions.items() if d not in DIRECTIONS}
    if bad:
        raise ValueError(f"metric directions must be {DIRECTIONS}, got {bad}")


def score_on_test(
    trainer: Trainer, module: LightningModule, datamodule: LightningDataModule, baseline: Any | None = None
) -> dict[str, Any]:
    """Run a test loop; returns the scored module's eval_results['test'].

    baseline: None (the module itself), a whole system (scored with its own test loop), or a network that stands
    in for the module's inference networks through module.baseline_scope.
    """
    if baseline is None:
        trainer.test(module, datamodule=datamodule, verbose=False)
        return module.eval_results["test"]
    if isinstance(baseline, LightningModule):
        trainer.test(baseline, datamodule=datamodule, verbose=False)
        return baseline.eval_results["test"]
    if not isinstance(baseline, nn.Module):
        raise TypeError(f"a baseline must be a network or a system, got {type(baseline).__name__}")
    with module.baseline_scope(baseline):
        trainer.test(module, datamodule=datamodule, verbose=False)
    return module.eval_results["test"]


def metric_table(rows: Rows, directions: Mapping[str, str | None]) -> str:
    """Markdown table: one row per model, `mean ± std` per metric; the header arrow is the declared direction
    (↑ higher is better, ↓ lower, no arrow when the system declares none)."""
    present = [m for m in directions if any(m in summary for summary in rows.values())]
    arrows = {HIGHER: " ↑", "lower": " ↓"}
    header = [f"{m}{arrows.get(directions[m] or '', '')}" for m in present]
    lines = ["| model | " + " | ".join(header) + " |", "|---" * (len(present) + 1) + "|"]
    for name, summary in rows.items():
        cells = []
        for metric in present:
            stats = summary.get(metric)
            cells.append("n/a" if stats is None else f"{stats['mean']:.3f} ± {stats['std']:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def beats(rows: Rows, winner: str, directions: Mapping[str, str]) -> dict[str, dict[str, bool]]:
    """For each other row and metric: does `winner`'s mean beat it strictly, in the declared direction?"""
    _check_directions(directions)
    verdict: dict[str, dict[str, bool]] = {}
    for name, summary in rows.items():
        if name == winner:
            continue
        verdict[name] = {}
        for metric, direction in directions.items():
            if metric not in summary or metric not in rows[winner]:
                continue
            mine, theirs = rows[winner][metric]["mean"], summary[metric]["mean"]
            if math.isnan(mine) or math.isnan(theirs):
                verdict[name][metric] = False
            else:
                verdict[name][metric] = mine > theirs if direction == HIGHER else mine < theirs
    return verdict


def write_comparison(
    output_dir: str | Path, rows: Rows, directions: Mapping[str, str], winner: str = "trained"
) -> dict[str, Any]:
    """Write comparison.md / comparison.json into output_dir; returns the JSON payload.

    directions: the system's headline metrics, {metric: "higher" | "lower"} (SystemHooks.headline_metrics()).
    """
    if not directions:
        raise ValueError("write_comparison: no headline metrics declared (HEADLINE_METRICS of the system)")
    _check_directions(directions)
    table = metric_table(rows, directions)
    verdict = beats(rows, winner, directions)
    lines = [f"# Held-out comparison\n\n{table}"]
    for other, results in verdict.items():
        won = [m for m, ok in results.items() if ok]
        lost = [m for m, ok in results.items() if not ok]
        lines.append(
            f"- {winner} beats {other} on {', '.join(won) or 'nothing'}"
            + (f"; NOT on {', '.join(lost)}" if lost else "")
        )
    text = "\n".join(lines) + "\n"
    payload = {"rows": rows, "metrics": list(directions), "directions": dict(directions), "beats": verdict}
    out = Path(output_dir)
    write_text_atomic(out / "comparison.md", text)
    write_text_atomic(out / "comparison.json", json.dumps(payload, indent=2, default=lambda v: None) + "\n")
    log.info("Held-out comparison (test split):\n" + text)
    return payload


def untrained_system(cfg: DictConfig, trained: LightningModule | None = None) -> LightningModule:
    """The same system class built from the same model config with the same seed, exactly as train.py builds it
    before training starts (seed, then instantiate): its inference networks are the untrained baseline.

    trained: the trained system whose fitted data statistics (e.g. a PCA basis of the training split, not learned
    weights) the untrained one takes over, so it is scored without fitting them again.
    """
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    untrained = hydra.utils.instantiate(cfg.model)
    if trained is not None and callable(getattr(untrained, "copy_fitted_statistics", None)):
        untrained.copy_fitted_statistics(trained)
    return untrained


def test_and_compare(
    cfg: DictConfig, trainer: Trainer, model: LightningModule, datamodule: LightningDataModule, ckpt: str | None
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
    write_system_report(cfg, model, trained, output_dir / "report", ckpt)
    metrics = {f"test/{name}": stats["mean"] for name, stats in trained["summary"].items()}
    if cfg.get("compare_baselines"):
        if not isinstance(model, SystemHooks) or not model.HEADLINE_METRICS:
            raise TypeError(f"{type(model).__name__} declares no HEADLINE_METRICS: nothing to compare baselines on")
        rows = {"trained": trained["summary"]}
        rows["untrained"] = score_on_test(tester, model, datamodule, untrained_system(cfg, model))["summary"]
        for name, baseline in model.baselines(datamodule).items():
            if name in rows:
                raise ValueError(f"{type(model).__name__}.baselines(): the row name {name!r} is reserved")
            rows[name] = score_on_test(tester, model, datamodule, baseline)["summary"]
        write_comparison(output_dir, rows, model.headline_metrics())
    return metrics


def write_system_report(
    cfg: DictConfig, model: LightningModule, results: dict[str, Any], out_dir: Path, ckpt: str | None
) -> Path | None:
    """The eval report of a scored system (src.eval.report), or None when the system renders no samples."""
    try:
        samples = model.report_samples("test")
    except NotImplementedError:
        log.info(f"{type(model).__name__} provides no report samples: report skipped")
        return None
    from src.eval.report import write_report

    meta = {"checkpoint": ckpt, "model": type(model).__name__, "split": "test (held out)", "task": cfg.task_name}
    directions = model.metric_directions() if isinstance(model, SystemHooks) else {}
    index = write_report(
        out_dir, results["per_sample"], samples, f"{cfg.task_name}: held-out evaluation", meta, directions=directions
    )
    log.info(f"Report: {index}")
    return index
