"""python -m src.apps.dfdn ckpt=<ckpt> input=<photo | folder> output=<dir>: DFDN details on photos (pipeline.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[3]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

from src.utils.errors import UserError, run_cli  # noqa: E402

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Check the inputs and load everything before any photo is processed; returns the summary."""
    from src.apps.dfdn.emotion import EmotionPrior
    from src.apps.dfdn.pipeline import DetailPipeline, list_inputs, run_folder, settings_from_run
    from src.utils.checkpoint import load_module, stored_run_config

    inputs = list_inputs(Path(str(cfg.input)))
    module, checkpoint = load_module(str(cfg.ckpt), expected_class="src.models.dfdn.DFDNModule")
    module.eval()
    overrides = {k: cfg.get(k) for k in ("map_size", "stride", "unwrap_size", "displacement_scale_mm", "min_side",
                                         "focal_factor")}  # fmt: skip
    settings = settings_from_run(stored_run_config(checkpoint), overrides)
    prior = EmotionPrior.load(str(cfg.emotion)) if cfg.get("emotion") else None
    detector = hydra.utils.instantiate(OmegaConf.to_container(cfg.detector, resolve=True))
    output = Path(str(cfg.output))
    try:
        summary = run_folder(DetailPipeline(module, detector, settings, prior), inputs, output)
    finally:
        detector.close()
    log.info(f"{len(summary.written)} written, {len(summary.skipped)} skipped: {output / 'summary.json'}")
    if len(inputs) == 1 and summary.skipped:
        reason = next(iter(summary.skipped.values()))
        raise UserError(f"input={cfg.input}: {reason}")
    return summary.as_dict(settings)


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="dfdn_app")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    run_cli(main)
