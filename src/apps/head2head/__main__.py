"""python -m src.apps.head2head ckpt=<ckpt> [mode=self|head|face] [target=<id>] [source=<id>] [output=<.mp4>]"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[3]
os.environ.setdefault("PROJECT_ROOT", str(REPO))

from src.utils.errors import UserError, run_cli  # noqa: E402


@hydra.main(version_base="1.3", config_path=str(REPO / "conf"), config_name="head2head_app.yaml")
def main(cfg: DictConfig) -> None:
    from src.apps.head2head.run import AppSettings, run_app

    if OmegaConf.is_missing(cfg, "ckpt"):
        raise UserError("ckpt is required: python -m src.apps.head2head ckpt=<head2head .ckpt> [mode=self|head|face]")
    values = OmegaConf.to_container(cfg, resolve=True)
    settings = AppSettings(**{k: v for k, v in values.items() if k in AppSettings.field_names()})
    print(run_app(settings).describe())


if __name__ == "__main__":
    run_cli(main)
