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
from src.utils.scoring import test_and_compare
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
        metric_dict.update(test_and_compare(cfg, trainer, model, datamodule, ckpt))

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
