"""Task wrapper, metric lookup, run extras and the training preflight shared by the entry points.

The wrapper's job: whatever happens, say where the run's outputs went, close loggers (wandb otherwise hangs a
multirun), keep the full traceback in the run folder, and re-raise so Hydra marks the job FAILED. The sweepers
then report the failure and go on (see src/utils/hydra_callbacks.py and hparams_search/*: max_failure_rate).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import random
import re
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.io.atomic import write_text_atomic
from src.utils.errors import UserError

log = logging.getLogger(__name__)

TaskResult = tuple[dict[str, Any], dict[str, Any]]


def close_loggers() -> None:
    """Finish a wandb run if one is open (other Lightning loggers flush on teardown)."""
    try:
        import wandb
    except ImportError:  # wandb is optional at run time
        return
    if wandb.run is not None:
        log.info("Closing wandb")
        wandb.finish()


def task_wrapper(task: Callable[[DictConfig], TaskResult]) -> Callable[[DictConfig], TaskResult]:
    """Decorate a `task(cfg) -> (metric_dict, object_dict)`; see the module docstring."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> TaskResult:
        output_dir = Path(cfg.paths.output_dir)
        try:
            return task(cfg)
        except Exception:
            if output_dir.is_dir():
                write_text_atomic(output_dir / "traceback.txt", traceback.format_exc())
            raise
        finally:
            log.info(f"Output dir: {output_dir}")
            close_loggers()

    return wrapped


def get_metric_value(metric_dict: Mapping[str, Any], metric_name: str | None) -> float | None:
    """The value a sweeper optimises; a misspelt name is a user error listing what was logged."""
    if not metric_name:
        log.info("No optimized_metric set: the run returns no value to a sweeper")
        return None
    if metric_name not in metric_dict:
        available = ", ".join(sorted(metric_dict)) or "nothing"
        raise UserError(f"optimized_metric {metric_name!r} was not logged; logged metrics: {available}")
    value = metric_dict[metric_name]
    value = float(value.item() if hasattr(value, "item") else value)
    if not math.isfinite(value):
        log.warning(f"optimized_metric {metric_name} is {value}")
    log.info(f"Retrieved metric value {metric_name}={value}")
    return value


def require_checkpoint(cfg: DictConfig, script: str) -> None:
    """The checkpoint-reading entry points (eval.py, export.py) have no default ``ckpt``: say how to give one."""
    if OmegaConf.is_missing(cfg, "ckpt"):
        raise UserError(f"ckpt is required: python {script} ckpt=<path to a .ckpt written by train.py>")


def extras(cfg: DictConfig) -> None:
    """Optional niceties before a task starts: silence Python warnings, save the config tree in the run folder.

    The tree goes to <output_dir>/config_tree.log (its path is logged), not to the terminal unless
    extras.config_tree_to_terminal: a failing run then shows its one `error: ...` line, not 20 KB of config.
    """
    settings = cfg.get("extras")
    if not settings:
        return
    if settings.get("ignore_warnings"):
        log.info("Disabling python warnings (extras.ignore_warnings=True)")
        warnings.filterwarnings("ignore")
    if settings.get("print_config"):
        from src.utils.rich_utils import print_config_tree

        print_config_tree(cfg, save_to_file=True, to_terminal=bool(settings.get("config_tree_to_terminal")))


# ---------------------------------------------------------------------------------------------- preflight
@contextlib.contextmanager
def _rng_kept() -> Iterator[None]:
    """Leave Python, NumPy and torch random streams as they were: a preflight must not change the training run."""
    state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide the throwaway trainer's banner ("GPU available ...") and loader warnings."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _data_keys_named_in(message: str, data_cfg: Mapping[str, Any] | None) -> list[str]:
    """`data.<key>=<value>` for every scalar data setting the message mentions by name (e.g. batch_size)."""
    if not data_cfg:
        return []
    named = []
    for key, value in data_cfg.items():
        if isinstance(value, str | int | float | bool | None) and re.search(rf"\b{re.escape(str(key))}\b", message):
            named.append(f"data.{key}={value}")
    return named


def _size_settings(data_cfg: Mapping[str, Any] | None) -> list[str]:
    """The data settings that decide tensor shapes (image_size, crop_size, ...), for a shape error's message."""
    if not data_cfg:
        return []
    return [
        f"data.{key}={value}"
        for key, value in data_cfg.items()
        if "size" in str(key) and key != "batch_size" and isinstance(value, int | float | list | tuple)
    ]


def _model_part(cfg: DictConfig) -> str:
    """How the config names the network that ran: model.generator=<name> when it has one, else the model class."""
    model_cfg = cfg.get("model") or {}
    generator = model_cfg.get("generator") if isinstance(model_cfg, Mapping) else None
    if isinstance(generator, Mapping):
        return f"model.generator={generator.get('name') or generator.get('_target_')}"
    return f"model={model_cfg.get('_target_', 'the model')}" if isinstance(model_cfg, Mapping) else "the model"


def _shapes(batch: Any) -> str:
    if isinstance(batch, Mapping):
        items = batch.items()
    elif isinstance(batch, list | tuple):
        items = enumerate(batch)
    else:
        items = [("batch", batch)]
    return ", ".join(f"{k} {list(v.shape)}" for k, v in items if isinstance(v, torch.Tensor) and v.dim() >= 3)


def _checked_loader(cfg: DictConfig, datamodule: LightningDataModule, split: str) -> Any:
    """The split's loader, built as Lightning will build it; bad loader settings and empty splits are one line."""
    try:
        loader = getattr(datamodule, f"{split}_dataloader")()
    except (ValueError, TypeError) as err:  # e.g. DataLoader(batch_size=-1)
        named = _data_keys_named_in(str(err), cfg.get("data"))
        prefix = f"{', '.join(named)}: " if named else "data: "
        raise UserError(f"{prefix}the {split} loader cannot be built: {str(err).splitlines()[0]}") from err
    try:
        batches = len(loader)
    except TypeError:  # an iterable dataset without a length: checked when the batch is drawn
        batches = None
    if batches == 0:
        raise UserError(f"data: the {split} split of {type(datamodule).__name__} yields no batch (empty split)")
    return loader


def _first_batch(loader: Any, split: str) -> Any:
    try:
        return next(iter(loader))
    except StopIteration:
        raise UserError(f"data: the {split} split yields no batch (empty split)") from None


def _check_forward(cfg: DictConfig, model: LightningModule, batch: Any) -> None:
    """One no-grad, eval-mode forward of the system's generator on a real batch: shape errors become one line."""
    generate, generator = getattr(model, "generate", None), getattr(model, "generator", None)
    if not callable(generate) or not isinstance(generator, nn.Module):
        log.info(f"Preflight: {type(model).__name__} has no generate(batch, generator); forward check skipped")
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            generate(batch, generator)
    except (RuntimeError, ValueError) as err:
        sizes = _size_settings(cfg.get("data")) or ["data"]
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{', '.join(sizes)} does not fit {_model_part(cfg)} (batch: {_shapes(batch)}): {detail}"
        ) from err
    finally:
        model.train(was_training)


def _monitored_metrics(cfg: DictConfig) -> dict[str, str]:
    """{config key: metric} of every metric the run will look up after validation (checkpoint, early stop, sweep)."""
    monitored: dict[str, str] = {}
    top = cfg.get("monitor")
    for name, entry in (cfg.get("callbacks") or {}).items():
        metric = entry.get("monitor") if isinstance(entry, Mapping) and "_target_" in entry else None
        if isinstance(metric, str):
            key = "monitor" if metric == top else f"callbacks.{name}.monitor"
            monitored.setdefault(key, metric)
    metric = cfg.get("optimized_metric")
    if isinstance(metric, str) and metric.startswith("val/"):
        monitored["optimized_metric"] = metric
    return monitored


def _metric_probe(model: LightningModule) -> LightningModule:
    """The model whose validation names the logged metrics. A system with fitted statistics has not fitted them yet
    at preflight (that happens at fit start) and its evaluation refuses to run: a copy marked fitted logs the same
    metric names (their values are meaningless and are thrown away), and the real model is left untouched."""
    if not getattr(model, "FITTED_STATISTICS", ()) or bool(model.statistics_fitted):
        return model
    probe = copy.deepcopy(model)
    probe.statistics_fitted.fill_(True)
    return probe


def _check_monitors(cfg: DictConfig, model: LightningModule, val_loader: Any) -> None:
    """Validate one batch with a throwaway trainer and check that every monitored metric is among those logged."""
    monitored = _monitored_metrics(cfg)
    if not monitored:
        return
    from lightning.pytorch import Trainer

    with _quiet_lightning():
        trainer = Trainer(
            accelerator="cpu",
            devices=1,
            limit_val_batches=1,
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.validate(_metric_probe(model), dataloaders=val_loader, verbose=False)
    logged = sorted(str(k) for k in trainer.callback_metrics)
    known = set(logged) | {"epoch", "step"}
    wrong = [f"{key}={metric!r}" for key, metric in monitored.items() if metric not in known]
    if wrong:
        shown = ", ".join(m for m in logged if m.startswith("val/")) or ", ".join(logged) or "nothing"
        raise UserError(
            f"{'; '.join(wrong)} is not logged by {type(model).__name__}'s validation; logged val metrics: {shown}"
        )


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one is one line before any data is read or generated."""
    import torch

    trainer_cfg = cfg.get("trainer") or {}
    accelerator = str(trainer_cfg.get("accelerator") or "auto").lower()
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} but torch sees no CUDA GPU on this machine (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); drop trainer=gpu to train on the CPU"
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("trainer.accelerator=mps but this machine has no Apple MPS device")
    if trainer_cfg.get("sync_batchnorm") and accelerator == "cpu":
        raise UserError(
            "trainer.sync_batchnorm=true needs GPUs (PyTorch's SyncBatchNorm); for DDP on CPUs (gloo) add "
            "trainer.sync_batchnorm=false"
        )


def preflight(cfg: DictConfig, datamodule: LightningDataModule, model: LightningModule) -> None:
    """Check data and model together before any training, so a bad setting is one line, not a crash hours later.

    Generic over systems: prepares and sets up the datamodule, checks that the train / val (and, with cfg.test,
    test) loaders can be built and are not empty, runs the system's generator on one real batch (no grad, eval
    mode), and validates one batch to check every monitored metric (checkpoint monitor, early stopping, the
    sweep's val/ metric) is logged. Random streams are restored afterwards: training is unchanged.
    """
    trainer_cfg = cfg.get("trainer") or {}
    splits = ["train"]
    if trainer_cfg.get("limit_val_batches") != 0 and is_overridden("val_dataloader", datamodule):
        splits.append("val")
    if cfg.get("test") and is_overridden("test_dataloader", datamodule):
        splits.append("test")
    with _rng_kept():
        datamodule.prepare_data()
        datamodule.setup("fit")
        if "test" in splits:
            datamodule.setup("test")
        loaders = {split: _checked_loader(cfg, datamodule, split) for split in splits}
        probe = "val" if "val" in loaders else "train"
        _check_forward(cfg, model, _first_batch(loaders[probe], probe))
        if "val" in loaders:
            _check_monitors(cfg, model, loaders["val"])
    log.info(f"Preflight passed: {', '.join(splits)} data and {type(model).__name__} fit together")
