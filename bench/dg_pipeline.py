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

Pose / expression consistency by a landmark probe (src/models/components/dg_landmark_probe.py): a small CNN
regressor trained here on the RFG run's TRAINING crops (source and true-target images with their landmarks) reads
the landmarks of every output; `probe_lm_error_px` is their distance to the TRUE target landmarks (pixels of a 256
crop). The row `true target image (probe floor)` is the probe on the true target images: no output can do better.
The paired differences pipeline - rfg_on_reference (and - untrained_rfg) of the probe error, PSNR and SSIM (mean,
standard error, the mean in standard errors, share of pairs improved) follow the table.
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

from torchmetrics.functional import peak_signal_noise_ratio, structural_similarity_index_measure  # noqa: E402

from src.datamodules.dg import DGDataModule  # noqa: E402
from src.models.components.dg_face_features import load_idsg_generator  # noqa: E402
from src.models.components.dg_landmark_probe import fit_landmark_probe, probe_error_px  # noqa: E402
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


PROBE = "probe_lm_error_px"


def probe_batches(datamodule: DGDataModule, batch_size: int = 64) -> list[dict[str, torch.Tensor]]:
    """The training split's source / target crops and landmarks, re-batched (the probe's training data)."""
    keys = ("source_image", "source_landmarks", "target_image", "target_landmarks")
    loader = torch.utils.data.DataLoader(datamodule.datasets["train"], batch_size=batch_size, shuffle=True)
    return [{k: batch[k] for k in keys} for batch in loader]


@torch.no_grad()
def probe_errors(
    model: torch.nn.Module, datamodule: DGDataModule, source: str | None, probe: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """Per pair: probe error, PSNR and SSIM against the true target of the model's outputs drawing `source`
    landmarks (None: the true target images themselves, probe error only)."""
    values: dict[str, list[torch.Tensor]] = {PROBE: [], "psnr": [], "ssim": []}
    if source is not None:
        model.landmark_source = source
        model.eval()
    for batch in datamodule.test_dataloader():
        truth = batch["target_image"]
        image = truth if source is None else model.generate(batch, model.inference_generator)["image"].clamp(0, 1)
        values[PROBE].append(probe_error_px(probe(image), batch["target_landmarks"]))
        values["psnr"].append(peak_signal_noise_ratio(image, truth, data_range=1.0, reduction="none", dim=(1, 2, 3)))
        values["ssim"].append(structural_similarity_index_measure(image, truth, data_range=1.0, reduction="none"))
    return {name: torch.cat(parts) for name, parts in values.items()}


def summary_of(values: torch.Tensor) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std()), "count": int(values.numel())}


PAIRED = ((PROBE, "px", -1), ("psnr", "dB", 1), ("ssim", "", 1))  # (metric, unit, sign of an improvement)


def paired_line(name: str, mine: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> str:
    """Pipeline minus `name`, paired per test pair: mean, standard error, in standard errors, share improved."""
    parts = []
    for metric, unit, better in PAIRED:
        difference = mine[metric] - theirs[metric]
        error = float(difference.std() / difference.numel() ** 0.5)
        share = float((difference * better > 0).float().mean()) * 100
        parts.append(
            f"{metric} {float(difference.mean()):+.3f}{(' ' + unit) if unit else ''} (standard error {error:.3f}, "
            f"{float(difference.mean()) / max(error, 1e-12):+.1f} SE, {share:.1f} % of the pairs better)"
        )
    return f"- pipeline - {name}, paired over {len(mine[PROBE])} pairs: " + "; ".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idsg", required=True, help="dg_idsg checkpoint")
    parser.add_argument("--rfg", required=True, help="dg_rfg checkpoint")
    parser.add_argument("--out", default=None, help="markdown file for the table (default: print only)")
    parser.add_argument("--probe-steps", type=int, default=1000, help="Adam steps of the landmark probe")
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
    size = int(datamodule.hparams.image_size or datamodule.datasets["test"][0]["source_image"].shape[-1])
    probe, fitted = fit_landmark_probe(probe_batches(datamodule), size, steps=args.probe_steps)
    sources = {"dg (idsg -> rfg)": "idsg", "rfg_on_reference": "reference", "rfg_on_true_landmarks": "target"}
    errors = {row: probe_errors(rfg, datamodule, source, probe) for row, source in sources.items()}
    errors["untrained_rfg"] = probe_errors(untrained, datamodule, "idsg", probe)
    errors["true target image (probe floor)"] = probe_errors(rfg, datamodule, None, probe)
    rows["true target image (probe floor)"] = {}
    for row, values in errors.items():
        rows[row][PROBE] = summary_of(values[PROBE])
    directions = {**type(rfg).headline_metrics(), PROBE: "lower"}
    table = metric_table(rows, directions)
    paired = "".join(
        paired_line(name, errors["dg (idsg -> rfg)"], errors[name]) for name in ("rfg_on_reference", "untrained_rfg")
    )
    text = (
        f"# DG pipeline on held-out identities ({len(datamodule.datasets['test'])} pairs)\n\n"
        f"IDSG: `{args.idsg}`\n\nRFG: `{args.rfg}`\n\n{table}\n{paired}"
        f"- landmark probe: {fitted['steps']} steps, {fitted['cpu_seconds']:.0f} CPU-seconds, training L1 "
        f"{fitted['train_l1_px']:.2f} px (per value, 256 crop)\n"
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
