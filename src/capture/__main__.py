"""`python -m src.capture ...`: the capture app (Hydra; config conf/capture.yaml)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from src.capture.app import run_capture


@hydra.main(version_base="1.3", config_path="../../conf", config_name="capture")
def main(cfg: DictConfig) -> None:
    summary = run_capture(cfg)
    print(
        f"capture: {summary.counts['train']} train + {summary.counts['eval']} eval frames of session "
        f"{summary.session} in {summary.root} ({'complete' if summary.complete else 'source ended early'}; "
        f"gate: {summary.reasons})"
    )


if __name__ == "__main__":
    main()
