"""Generate RGBD faces from your own photos or landmark files: python infer.py ckpt=<ckpt> input=<path> [output=<dir>]

    python infer.py ckpt=logs/train/runs/<date>/checkpoints/last.ckpt input=me.jpg
    python infer.py ckpt=<ckpt> input=photos/ output=out/photos on_error=skip
    python infer.py exported=logs/train/runs/<date>/export input=datasets/processed/me/eval/Landmark

The model is rebuilt from the checkpoint alone (or loaded from an export with its export.json), at the image size
it was trained at. Photos are cropped and drawn like the processed datasets; landmark files skip detection. Each
input gives colour, 16-bit depth (the training dataset's encoding), the drawing, a PLY point cloud and a preview;
see docs/inference.md and src/infer/.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from src.utils.errors import UserError, run_cli
from src.utils.task import extras, task_wrapper

log = logging.getLogger(__name__)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


@task_wrapper
def infer(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    from src.infer.run import InferenceSettings, run_inference

    settings = InferenceSettings(
        input=str(cfg.input),
        output=str(cfg.output),
        ckpt=cfg.get("ckpt"),
        exported=cfg.get("exported"),
        detector=_plain(cfg.get("detector")),
        fallback_detector=_plain(cfg.get("fallback_detector")) if cfg.get("use_fallback", True) else None,
        device=str(cfg.device),
        batch_size=int(cfg.batch_size),
        on_error=str(cfg.on_error),
        face_box=_plain(cfg.face_box),
        landmark_coords=str(cfg.landmark_coords),
        landmark_size=cfg.get("landmark_size"),
        image_size=cfg.get("image_size"),
        use_ema=bool(cfg.use_ema),
        depth_encoding=_plain(cfg.get("depth_encoding")),
        ply=bool(cfg.ply),
        preview=bool(cfg.preview),
        progress=bool(cfg.progress),
    )
    summary = run_inference(settings)
    return {f"infer/{k}": v for k, v in summary.counts.items()}, {"cfg": cfg, "summary": summary}


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="infer.yaml")
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "input"):
        raise UserError("input is required: python infer.py ckpt=<.ckpt> input=<photo | folder | landmark .txt>")
    extras(cfg)
    infer(cfg)


if __name__ == "__main__":
    run_cli(main)
