"""Export a trained system for deployment: python export.py ckpt=<path> [formats=[onnx]] [device=cuda half=true]

Rebuilds the model from the checkpoint alone and writes TorchScript + ONNX files of every module the system
declares (export_modules), with an export.json manifest (named inputs / outputs, depth encoding, checks against
eager PyTorch); see src/export/.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from src.export.checkpoint import export_checkpoint
from src.utils.errors import run_cli
from src.utils.task import extras, require_checkpoint, task_wrapper

log = logging.getLogger(__name__)


@task_wrapper
def export(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    # An empty DictConfig is falsy, so no `or {}` here: to_container needs the config itself.
    overrides_cfg = cfg.get("model_overrides")
    overrides = OmegaConf.to_container(overrides_cfg, resolve=True) if overrides_cfg is not None else {}
    manifest = export_checkpoint(
        cfg.ckpt,
        cfg.out_dir,
        formats=list(cfg.formats),
        half=bool(cfg.half),
        image_size=cfg.get("image_size"),
        batch_size=int(cfg.batch_size),
        device=str(cfg.device),
        use_ema=bool(cfg.use_ema),
        overrides=overrides,  # type: ignore[arg-type]
        atol=cfg.get("atol"),
    )
    metrics = {}
    for module_name, module in manifest["modules"].items():
        for fmt, entry in module["formats"].items():
            diff = entry["max_abs_diff"]
            log.info(f"{module_name} {fmt}: {Path(cfg.out_dir) / entry['file']} (max |export - eager| {diff:.2e})")
            metrics[f"export/{module_name}/{fmt}_max_abs_diff"] = diff
    log.info(f"Manifest: {manifest['files']['manifest']}")
    return metrics, {"cfg": cfg, "manifest": manifest}


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="export.yaml")
def main(cfg: DictConfig) -> None:
    require_checkpoint(cfg, "export.py")
    extras(cfg)
    export(cfg)


if __name__ == "__main__":
    run_cli(main)
