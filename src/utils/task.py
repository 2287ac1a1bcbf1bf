"""Task wrapper, metric lookup and run extras shared by every entry point (train, eval, export).

The wrapper's job: whatever happens, say where the run's outputs went, close loggers (wandb otherwise hangs a
multirun), keep the full traceback in the run folder, and re-raise so Hydra marks the job FAILED. The sweepers
then report the failure and go on (see src/utils/hydra_callbacks.py and hparams_search/*: max_failure_rate).
"""

from __future__ import annotations

import functools
import logging
import math
import traceback
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

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
    """Optional niceties before a task starts: silence Python warnings, print and save the config tree."""
    settings = cfg.get("extras")
    if not settings:
        return
    if settings.get("ignore_warnings"):
        log.info("Disabling python warnings (extras.ignore_warnings=True)")
        warnings.filterwarnings("ignore")
    if settings.get("print_config"):
        from src.utils.rich_utils import print_config_tree

        print_config_tree(cfg, save_to_file=True)
