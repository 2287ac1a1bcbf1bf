"""`python -m src.capture ...`: the capture app (Hydra; config conf/capture.yaml).

Known problems (a missing key, a recording that is not there, a split the capture leaves empty) end with one
`error: ...` line and exit code 1; set HYDRA_FULL_ERROR=1 for the traceback.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from src.capture.app import run_capture
from src.utils.errors import UserError, run_cli


@hydra.main(version_base="1.3", config_path="../../conf", config_name="capture")
def main(cfg: DictConfig) -> None:
    try:
        summary = run_capture(cfg)
    except (ValueError, FileExistsError, ImportError) as err:  # the capture's own messages name the key or file
        raise UserError(str(err)) from err
    print(
        f"capture: {summary.counts['train']} train + {summary.counts['eval']} eval frames of session "
        f"{summary.session} in {summary.root} ({'complete' if summary.complete else 'source ended early'}; "
        f"gate: {summary.reasons})"
    )


if __name__ == "__main__":
    run_cli(main)
