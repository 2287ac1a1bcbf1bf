"""Evaluate a checkpoint on the held-out split: python eval.py ckpt=<path> [experiment=...] [data=rgbd data.root=...]

The model is rebuilt from the checkpoint alone (class, architecture, weights), whatever system it holds; an
`experiment=` / `model=` on the command line also checks the checkpoint holds that class. Scores every held-out
frame (mean / median / std / min / max per metric), prints the table with the system's declared directions, and
writes a report folder (index.html, metrics.json, metrics.md, and the system's own sample renderings).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch import LightningDataModule
from omegaconf import DictConfig, OmegaConf

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from src.utils.checkpoint import load_module, stored_run_config
from src.utils.errors import UserError, run_cli
from src.utils.instantiators import instantiate_loggers
from src.utils.scoring import score_on_test
from src.utils.task import extras, require_checkpoint, task_wrapper

log = logging.getLogger(__name__)
DATA_FROM_CHOICES = ("auto", "checkpoint", "config")


def _overridden_on_command_line(*groups: str) -> bool:
    """Whether the user named one of these config groups / keys (data, model, experiment) on the command line."""
    if not HydraConfig.initialized():
        return False
    return any(
        o.lstrip("+~").split("=")[0].split(".")[0].split("/")[0] in groups for o in HydraConfig.get().overrides.task
    )


def expected_model_class(cfg: DictConfig) -> str | None:
    """The model class the checkpoint must hold: only when the user chose one (experiment= or model=); a bare
    `eval.py ckpt=...` evaluates whatever system the checkpoint holds."""
    if not cfg.get("model") or not _overridden_on_command_line("experiment", "model"):
        return None
    return cfg.model.get("_target_")


def choose_data_config(cfg: DictConfig, checkpoint: dict[str, Any]) -> DictConfig:
    """The checkpoint's own dataset unless the user chose data (command line or data_from=config)."""
    data_from = cfg.get("data_from", "auto")
    if data_from not in DATA_FROM_CHOICES:
        raise UserError(f"data_from must be one of {DATA_FROM_CHOICES}, got {data_from!r}")
    stored = stored_run_config(checkpoint).get("data")
    use_config = data_from == "config" or (data_from == "auto" and _overridden_on_command_line("data"))
    if use_config or not stored:
        if data_from == "checkpoint":
            raise UserError(f"{cfg.ckpt}: the checkpoint stores no data config; use data_from=config")
        return cfg.data
    log.info("Evaluating on the dataset the checkpoint was trained on (override data=... to change it)")
    return OmegaConf.create(stored)


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    expected = expected_model_class(cfg)
    model_overrides = cfg.get("model_overrides")
    overrides = OmegaConf.to_container(model_overrides, resolve=True) if model_overrides else {}
    log.info(f"Loading {cfg.ckpt}")
    model, checkpoint = load_module(cfg.ckpt, expected_class=expected, overrides=overrides)  # type: ignore[arg-type]
    model.num_kept_samples = int(cfg.get("num_report_samples", model.num_kept_samples))
    data_cfg = choose_data_config(cfg, checkpoint)
    datamodule: LightningDataModule = hydra.utils.instantiate(data_cfg)
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[], enable_checkpointing=False)
    results = score_on_test(trainer, model, datamodule)

    from src.utils.scoring import metric_table

    declared = model.metric_directions() if hasattr(model, "metric_directions") else {}
    directions = {name: declared.get(name) for name in results["summary"]}
    table = metric_table({"mean ± std": results["summary"]}, directions)
    log.info(f"Held-out metrics of {cfg.ckpt} ({len(results['frame_ids'])} frames):\n{table}")
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("report"):
        from src.eval.report import write_report

        try:
            samples = model.report_samples("test")
        except NotImplementedError:
            samples = []
        meta = {
            "checkpoint": str(Path(cfg.ckpt).resolve()),
            "model": type(model).__name__,
            "epoch": checkpoint.get("epoch"),
            "dataset": str(getattr(datamodule, "root", "")),
            "split": "test (held out)",
            "generator": "EMA" if getattr(model, "generator_ema", None) is not None else "G",
        }
        index = write_report(
            output_dir / "report", results["per_sample"], samples, "Held-out evaluation", meta, directions=declared
        )
        log.info(f"Report: {index}")
    metric_dict = {f"test/{name}": stats["mean"] for name, stats in results["summary"].items()}
    return metric_dict, {"cfg": cfg, "model": model, "datamodule": datamodule, "results": results}


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    require_checkpoint(cfg, "eval.py")
    extras(cfg)
    evaluate(cfg)


if __name__ == "__main__":
    run_cli(main)
