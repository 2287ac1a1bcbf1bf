"""Rich rendering of the composed config: printed at start and saved next to the run's outputs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from src.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

DEFAULT_ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths", "extras")


def print_config_tree(cfg: DictConfig, order: Sequence[str] = DEFAULT_ORDER, save_to_file: bool = False) -> str:
    """Print the config as a tree (main groups first, in `order`); optionally save it as config_tree.log."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in order if f in cfg] + [f for f in cfg if f not in order and f != "hydra"]
    for field in fields:
        branch = tree.add(str(field), style="bold", guide_style="dim")
        value = cfg[field]
        text = OmegaConf.to_yaml(value, resolve=False) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    console = Console(record=True, width=120)
    console.print(tree)
    rendered = console.export_text()
    if save_to_file and cfg.get("paths") and cfg.paths.get("output_dir"):
        write_text_atomic(Path(cfg.paths.output_dir) / "config_tree.log", rendered)
    return rendered
