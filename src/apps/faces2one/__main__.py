"""Entry point: python -m src.apps.faces2one source=<video> reference=<video> output=<out.mp4> prnet=<ckpt>.

Settings in conf/faces2one.yaml; known mistakes (missing / unreadable / empty video, no face, bad setting) are one
`error:` line and exit code 1.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[3]))

from src.utils.errors import UserError, run_cli

log = logging.getLogger(__name__)
CONF = str(Path(__file__).resolve().parents[3] / "conf")


@hydra.main(version_base="1.3", config_path=CONF, config_name="faces2one")
def main(cfg: DictConfig) -> None:
    from src.apps.faces2one.pipeline import TransferSettings, run_transfer

    for key in ("source", "reference", "output", "prnet"):
        if cfg.get(key) in (None, "", "???"):
            raise UserError(
                f"{key}=... is required (python -m src.apps.faces2one source=a.mp4 reference=b.mp4 "
                "output=out.mp4 prnet=<PRNet .ckpt>)"
            )
    settings = TransferSettings(
        source=str(cfg.source), reference=str(cfg.reference), output=str(cfg.output), prnet=str(cfg.prnet),
        keep=str(cfg.keep), uv_data=cfg.uv_data, detector=str(cfg.detector),
        redetect_every=int(cfg.redetect_every), probe_frames=int(cfg.probe_frames),
        smoothing_window=int(cfg.smoothing.window), smoothing_decay=float(cfg.smoothing.decay),
        smooth_texture_geometry=bool(cfg.smoothing.texture_geometry), erosion=float(cfg.erosion),
        poisson=bool(cfg.poisson), exposure=bool(cfg.exposure), preview=bool(cfg.preview), crf=int(cfg.crf),
        threads=int(cfg.threads), max_frames=cfg.max_frames,
    )  # fmt: skip
    stats = run_transfer(settings)
    summary = {k: stats[k] for k in ("frames", "transferred", "passed_through", "texture_failures", "audio")}
    log.info(
        f"faces2one: {settings.output} written: {json.dumps(summary)}; {stats['frames_per_s_wall']:.1f} frames/s wall"
    )


if __name__ == "__main__":
    run_cli(main)
