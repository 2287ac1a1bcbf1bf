"""Score the whole DG pipeline (IDSG -> eye fix -> drawing -> RFG) against FaceWorld's true targets.

    python bench/dg_pipeline.py --idsg <dg_idsg run>/checkpoints/last.ckpt --rfg <dg_rfg run>/checkpoints/last.ckpt \
        --out docs/dg/pipeline.md

The RFG run's own held-out test used the IDSG given at training time (model.idsg_checkpoint), or, without one, the
true target's landmarks. This bench puts any IDSG in front of any trained RFG and scores, on the RFG run's test
split (held-out identities), the rows:
    dg (idsg -> rfg)          the pipeline
    rfg_on_reference          the same RFG on the reference's landmarks (DG without IDSG)
    rfg_on_true_landmarks     the same RFG on the true target's landmarks (what a perfect IDSG would give)
    untrained_rfg             the RFG of the same config and seed before training, behind the same IDSG
and writes the comparison table (comparison.md format: mean +- std per headline metric) to --out.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import lightning as L
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from src.datamodules.dg import DGDataModule  # noqa: E402
from src.models.components.dg_face_features import load_idsg_generator  # noqa: E402
from src.utils.checkpoint import load_module, read_checkpoint, stored_run_config  # noqa: E402
from src.utils.scoring import metric_table, score_on_test  # noqa: E402

log = logging.getLogger("dg_pipeline")


COUNTS: dict[str, dict] = {}


def score(model: torch.nn.Module, datamodule: DGDataModule, source: str, row: str) -> dict:
    """The test summary of `model` drawing `source` landmarks; the detector-metric sample counts go to COUNTS."""
    model.landmark_source = source
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    results = score_on_test(trainer, model, datamodule)
    COUNTS[row] = results.get("subset_sizes", {})
    return results["summary"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idsg", required=True, help="dg_idsg checkpoint")
    parser.add_argument("--rfg", required=True, help="dg_rfg checkpoint")
    parser.add_argument("--out", default=None, help="markdown file for the table (default: print only)")
    args = parser.parse_args(argv)
    start = time.process_time()
    checkpoint = read_checkpoint(args.rfg)
    datamodule = DGDataModule(**checkpoint["datamodule_hyper_parameters"])
    datamodule.setup()
    rfg, _ = load_module(args.rfg, expected_class="src.models.dg_rfg.DGRFGModule")
    rfg.idsg = load_idsg_generator(args.idsg)
    rows = {"dg (idsg -> rfg)": score(rfg, datamodule, "idsg", "dg (idsg -> rfg)")}
    rows["rfg_on_reference"] = score(rfg, datamodule, "reference", "rfg_on_reference")
    rows["rfg_on_true_landmarks"] = score(rfg, datamodule, "target", "rfg_on_true_landmarks")
    L.seed_everything(int(stored_run_config(checkpoint).get("seed") or 12345), verbose=False)  # as train.py
    untrained = type(rfg)(**checkpoint["hyper_parameters"])
    untrained.idsg = rfg.idsg
    rows["untrained_rfg"] = score(untrained, datamodule, "idsg", "untrained_rfg")
    table = metric_table(rows, type(rfg).headline_metrics())
    text = (
        f"# DG pipeline on held-out identities ({len(datamodule.datasets['test'])} pairs)\n\n"
        f"IDSG: `{args.idsg}`\n\nRFG: `{args.rfg}`\n\n{table}\n"
        + "".join(f"- {row}: pairs with both faces detected: {counts}\n" for row, counts in COUNTS.items())
        + "\n"
        f"Scored in {time.process_time() - start:.0f} CPU-seconds (bench/dg_pipeline.py).\n"
    )
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
