"""Rich rendering of the composed config, saved as <output_dir>/config_tree.log.

The tree is written to the run folder, not the terminal: at ~20 KB it buried the one `error: ...` line of a
failing run (and repeated itself for every job of a sweep), while the same text sits next to the run's outputs
where it is needed. `to_terminal=True` prints it as well.
"""

from __future__ import annotations

import io
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
CONFIG_TREE_FILE = "config_tree.log"


def render_config_tree(cfg: DictConfig, order: Sequence[str] = DEFAULT_ORDER) -> str:
    """The config as a plain-text tree, main groups first (in `order`), Hydra's own node left out."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in order if f in cfg] + [f for f in cfg if f not in order and f != "hydra"]
    for field in fields:
        branch = tree.add(str(field), style="bold", guide_style="dim")
        value = cfg[field]
        text = OmegaConf.to_yaml(value, resolve=False) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    console = Console(record=True, width=120, file=io.StringIO())  # recorded, not shown
    console.print(tree)
    return console.export_text()


def print_config_tree(
    cfg: DictConfig, order: Sequence[str] = DEFAULT_ORDER, save_to_file: bool = False, to_terminal: bool = False
) -> str:
    """Render the tree; save it as <output_dir>/config_tree.log and / or print it; returns the text."""
    rendered = render_config_tree(cfg, order)
    if to_terminal:
        Console(width=120).print(rendered, markup=False, highlight=False)
    if save_to_file and cfg.get("paths") and cfg.paths.get("output_dir"):
        path = Path(cfg.paths.output_dir) / CONFIG_TREE_FILE
        write_text_atomic(path, rendered)
        log.info(f"Config tree: {path}")
    return rendered
