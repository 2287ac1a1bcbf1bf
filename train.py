"""Train a facesynth system: python train.py experiment=rgbd_face [quickstart=cpu] [key=value ...]

Multirun:  python train.py -m experiment=rgbd_face model.optimizer_g.lr=1e-4,2e-4
Optuna:    python train.py -m experiment=rgbd_face hparams_search=rgbd_face_optuna
Resume:    python train.py ckpt_path=<run>/checkpoints/last.ckpt [trainer.max_epochs=N]
Fine-tune: python train.py experiment=rgbd_face init_from=<run>/checkpoints/last.ckpt [key=value ...]

A resume restores the run's own config from the checkpoint and goes on in the run's own folder (same metrics.csv);
a fine-tune builds the model from this command line, loads only the checkpoint's weights and starts a new run.
Before any training, a preflight checks data and model together (src/utils/task.py: preflight).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from src.callbacks.run_config import RunConfigInCheckpoint
from src.utils.checkpoint import (
    CHECKPOINT_KEY,
    describe_weight_mismatch,
    load_weights,
    read_checkpoint,
    restore_run_config,
    resume_run_folder,
)
from src.utils.errors import CheckpointError, UserError, run_cli
from src.utils.hydra_callbacks import sweep_failure_message
from src.utils.instantiators import instantiate_callbacks, instantiate_loggers
from src.utils.scoring import test_and_compare
from src.utils.task import check_accelerator, extras, get_metric_value, preflight, task_wrapper

log = logging.getLogger(__name__)


def _best_checkpoint(trainer: Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    for path in (getattr(callback, "best_model_path", ""), getattr(callback, "last_model_path", "")):
        if path and Path(path).is_file():
            return path
    return None


def _command_line(cfg: DictConfig) -> tuple[list[str], dict[str, Any]]:
    """The task overrides and config-group choices of this run (empty outside Hydra)."""
    hydra_cfg = cfg.get("hydra") if "hydra" in cfg else None
    if hydra_cfg is None and HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
    if hydra_cfg is None:
        return [], {}
    overrides = [str(o) for o in hydra_cfg.overrides.task]
    choices = OmegaConf.to_container(hydra_cfg.runtime.choices) if hydra_cfg.get("runtime") else {}
    return overrides, dict(choices or {})


def _is_multirun(cfg: DictConfig) -> bool:
    hydra_cfg = cfg.get("hydra") if "hydra" in cfg else (HydraConfig.get() if HydraConfig.initialized() else None)
    return hydra_cfg is not None and hydra_cfg.get("mode") == RunMode.MULTIRUN


def start_config(cfg: DictConfig) -> tuple[DictConfig, list[str], dict[str, Any], dict[str, Any] | None]:
    """(config to run, overrides, choices, resume checkpoint) after the ckpt_path / init_from rules.

    Both files are read first, so a missing or corrupt checkpoint is one line before anything is built.
    """
    overrides, choices = _command_line(cfg)
    ckpt_path, init_from = cfg.get("ckpt_path"), cfg.get("init_from")
    if ckpt_path and init_from:
        raise UserError(
            "ckpt_path (resume the run) and init_from (new run from its weights) exclude each other; give one"
        )
    if init_from:
        read_checkpoint(init_from)  # fails fast; the weights are loaded once the model is built
    if not ckpt_path:
        return cfg, overrides, choices, None
    if _is_multirun(cfg):
        raise UserError("ckpt_path resumes one run and cannot be swept (-m); sweep from its weights with init_from=")
    checkpoint = read_checkpoint(ckpt_path)
    if not checkpoint.get(CHECKPOINT_KEY, {}).get("config"):
        log.warning(f"{ckpt_path} stores no run config: resuming with this command line's config")
        return cfg, overrides, choices, checkpoint
    restored, meta = restore_run_config(cfg, checkpoint, str(ckpt_path), overrides, choices)
    return restored, list(meta.get("overrides") or []), dict(meta.get("choices") or choices), checkpoint


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg, overrides, choices, resume_checkpoint = start_config(cfg)
    extras(cfg)
    check_accelerator(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    log.info(f"Instantiating datamodule <{cfg.data._target_}>")
    datamodule: LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info(f"Instantiating model <{cfg.model._target_}>")
    model: LightningModule = hydra.utils.instantiate(cfg.model)
    if cfg.get("channels_last"):
        model.use_channels_last(True)
    if resume_checkpoint is not None:
        problem = describe_weight_mismatch(model.state_dict(), resume_checkpoint["state_dict"])
        if problem:
            raise CheckpointError(f"{cfg.ckpt_path}: weights do not fit the model this run builds: {problem}")
        done = int(resume_checkpoint.get("epoch", -1)) + 1
        if cfg.trainer.get("max_epochs") is not None and done >= cfg.trainer.max_epochs:
            log.warning(
                f"{cfg.ckpt_path} has trained {done} of trainer.max_epochs={cfg.trainer.max_epochs} epochs: nothing "
                "left to train (add trainer.max_epochs=<more> to go on)"
            )
    elif cfg.get("init_from"):
        load_weights(model, read_checkpoint(cfg.init_from)["state_dict"], cfg.init_from)
    preflight(cfg, datamodule, model)

    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    run_config = RunConfigInCheckpoint(cfg, overrides, choices)
    callbacks.append(run_config)
    loggers = instantiate_loggers(cfg.get("logger"), resume=resume_checkpoint is not None)
    log.info(f"Instantiating trainer <{cfg.trainer._target_}>")
    trainer: Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(run_config.config)

    if cfg.get("train"):
        log.info("Starting training" + (f" from {cfg.ckpt_path}" if cfg.get("ckpt_path") else ""))
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
        files = [path for module in manifest.get("modules", {}).values() for path in module.get("files", {}).values()]
        log.info(f"Exported: {', '.join(str(f) for f in files) or manifest}")

    return metric_dict, {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="train.yaml")
def _hydra_main(cfg: DictConfig) -> float | None:
    metric_dict, _ = train(cfg)
    return get_metric_value(metric_dict, cfg.get("optimized_metric"))


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resume_arguments(argv: list[str]) -> list[str]:
    """Hydra arguments that make a resume run in the checkpoint's own run folder (none for other commands).

    Hydra creates its run folder before train() can read the checkpoint, so the folder is chosen here, from the
    path alone: <run>/checkpoints/<file>.ckpt resumes in <run>. The resume's Hydra record (.hydra/) goes into a
    subfolder so the run's original one is kept.
    """
    if any(a in ("-m", "--multirun") or a.startswith(("hydra.run.dir=", "hydra.output_subdir=")) for a in argv):
        return []
    values = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("ckpt_path=")]
    if not values or not values[-1] or values[-1] == "null":
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    value = OverridesParser.create().parse_override(f"ckpt_path={values[-1]}").value()
    run = resume_run_folder(str(value)) if isinstance(value, str) else None
    if run is None:
        return []
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return [f"hydra.run.dir={_quoted(str(run))}", f"hydra.output_subdir={_quoted(f'.hydra/resume_{stamp}')}"]


SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process the signal ended


def main() -> float | None:
    sys.argv[1:] = [*sys.argv[1:], *resume_arguments(sys.argv[1:])]
    try:
        return _hydra_main()
    except SIGTERMException:
        # Lightning stops at the next batch end and raises SystemExit() (exit code 0): a scheduler or a user would
        # read an interrupted run as a finished one.
        print(
            "error: training was stopped by SIGTERM before it finished; continue it with "
            "python train.py ckpt_path=<run>/checkpoints/last.ckpt",
            file=sys.stderr,
        )
        sys.exit(SIGTERM_EXIT_CODE)
    except Exception as err:
        message = sweep_failure_message(err)  # e.g. Optuna's "no trial completed" after every trial failed
        if message is None:
            raise
        raise UserError(message) from err


if __name__ == "__main__":
    run_cli(main)
