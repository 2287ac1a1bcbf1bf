"""`python -m src.convert.video input=<mp4 | folder | FaceForensics++ root> output=<dataset root> [key=value ...]`."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf


def settings_from_config(cfg: DictConfig):
    """The output-affecting settings of conf/convert_video.yaml (nested groups flattened)."""
    from src.convert.video.pipeline import VideoSettings

    plain = OmegaConf.to_container(cfg, resolve=True)
    flat = {k: v for k, v in plain.items() if k not in ("detection", "fitting", "hydra")}
    detection, fitting = plain.get("detection") or {}, plain.get("fitting") or {}
    flat.update(min_face_px=detection.get("min_face_px"), face_confidence=detection.get("face_confidence", 0.5))
    renamed = {"identity_frames": "identity_frames", "iterations": "fit_iterations",
               "expression_iterations": "expression_iterations", "smooth_window": "coefficient_smoothing",
               "use_jaw": "fit_jaw"}  # fmt: skip
    flat.update({renamed[k]: v for k, v in fitting.items() if k in renamed})
    return VideoSettings.from_config(flat)


@hydra.main(version_base="1.3", config_path="../../../conf", config_name="convert_video")
def main(cfg: DictConfig) -> None:
    from src.convert.video.pipeline import run_video_conversion
    from src.utils.errors import UserError

    try:
        report = run_video_conversion(
            cfg.input, cfg.output, settings_from_config(cfg), compression=cfg.compression, workers=cfg.workers,
            overwrite=cfg.overwrite, progress=cfg.progress,
        )  # fmt: skip
    except (UserError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(report.table())
    ok = report.count("ok")
    print(f"{ok} of {len(report.videos)} videos converted into {report.output} (report: convert_video_report.json)")
    if ok == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
