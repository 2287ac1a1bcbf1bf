"""`python -m src.convert input=<unprocessed root> output=<processed root> [key=value ...]` (conf/convert.yaml)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from src.utils.errors import run_cli


@hydra.main(version_base="1.3", config_path="../../conf", config_name="convert")
def main(cfg: DictConfig) -> None:
    from src.convert.pipeline import NothingUsableError, run_conversion

    try:
        report = run_conversion(cfg)
    except (NothingUsableError, FileNotFoundError, FileExistsError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"converted {report.accepted_total} of {report.frames_total} frames into {report.output}")
    print(report.table())


if __name__ == "__main__":
    run_cli(main)  # Hydra's own errors (an unknown key) and DiskFullError become one `error: ...` line too
