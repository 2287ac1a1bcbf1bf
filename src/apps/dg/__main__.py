"""python -m src.apps.dg idsg=<ckpt> rfg=<ckpt> source=<photo> reference=<video | webcam index | CSV folder>"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[3]
os.environ.setdefault("PROJECT_ROOT", str(REPO))

from src.utils.errors import UserError, run_cli  # noqa: E402


@hydra.main(version_base="1.3", config_path=str(REPO / "conf"), config_name="dg_app.yaml")
def main(cfg: DictConfig) -> None:
    from src.apps.dg.run import AppSettings, run_app

    for key in ("rfg", "source", "reference"):
        if OmegaConf.is_missing(cfg, key):
            raise UserError(
                f"{key} is required: python -m src.apps.dg idsg=<dg_idsg .ckpt> rfg=<dg_rfg .ckpt> "
                "source=<photo> reference=<video | webcam index | folder of landmark CSVs>"
            )
    settings = AppSettings(
        **{k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k in AppSettings.field_names()}
    )
    summary = run_app(settings)
    print(summary.describe())


if __name__ == "__main__":
    run_cli(main)
