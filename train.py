"""Train a facesynth system: python train.py experiment=rgbd_face [quickstart=cpu] [key=value ...]

Multirun: python train.py -m experiment=rgbd_face model.optimizer_g.lr=1e-4,2e-4
Optuna:   python train.py -m experiment=rgbd_face hparams_search=rgbd_face_optuna
Resume:   python train.py experiment=rgbd_face ckpt_path=<run>/checkpoints/last.ckpt
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch import LightningDataModule, Trainer
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from src.callbacks.run_config import RunConfigInCheckpoint
from src.models.gan import GANModule
from src.utils.errors import run_cli
from src.utils.instantiators import instantiate_callbacks, instantiate_loggers
from src.utils.scoring import score_on_test, write_comparison
from src.utils.task import extras, get_metric_value, task_wrapper

log = logging.getLogger(__name__)


def _best_checkpoint(trainer: Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    for path in (getattr(callback, "best_model_path", ""), getattr(callback, "last_model_path", "")):
        if path and Path(path).is_file():
            return path
    return None


def _untrained_generator(cfg: DictConfig) -> Any:
    """G of the same architecture, initialised exactly as training started (same seed, same construction order)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    return hydra.utils.instantiate(cfg.model.generator)


def _test_and_compare(
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


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    log.info(f"Instantiating datamodule <{cfg.data._target_}>")
    datamodule: LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info(f"Instantiating model <{cfg.model._target_}>")
    model: GANModule = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    run_config = RunConfigInCheckpoint(cfg)
    callbacks.append(run_config)
    loggers = instantiate_loggers(cfg.get("logger"))
    log.info(f"Instantiating trainer <{cfg.trainer._target_}>")
    trainer: Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(run_config.config)

    if cfg.get("train"):
        log.info("Starting training")
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metric_dict: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    ckpt = _best_checkpoint(trainer)
    if ckpt:
        log.info(f"Best checkpoint: {ckpt}")

    if cfg.get("test"):
        log.info("Scoring the held-out test split")
        metric_dict.update(_test_and_compare(cfg, trainer, model, datamodule, ckpt))

    if cfg.get("export") and ckpt:
        from src.export import export_checkpoint

        manifest = export_checkpoint(ckpt, Path(cfg.paths.output_dir) / "export")
        log.info(f"Exported generator: {', '.join(str(v) for v in manifest.get('files', {}).values()) or manifest}")

    return metric_dict, {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    extras(cfg)
    metric_dict, _ = train(cfg)
    return get_metric_value(metric_dict, cfg.get("optimized_metric"))


if __name__ == "__main__":
    run_cli(main)
