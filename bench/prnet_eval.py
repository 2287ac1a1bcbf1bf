"""PRNet on held-out identities by yaw bucket: NME of the 68 keypoints and of the dense face vertices (normalised by
the face size sqrt(w h) of the true keypoint box) for the trained network, the untrained one (same seed) and the
mean training position map (the system's declared baseline, SystemHooks.baselines).

    python bench/prnet_eval.py --ckpt logs/train/runs/<date>/checkpoints/last.ckpt [--out docs/faces2one/comparison.md]

The test split is the one the checkpoint's run held out (its datamodule settings are stored in the checkpoint); yaw
is FaceWorld's truth (each sample's .json). Buckets of |yaw|: 0-15, 15-30, 30-45, 45-60 degrees.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

from src.datamodules.prnet import PRNetDataModule
from src.io.atomic import write_text_atomic
from src.models.prnet import position_map_nme
from src.utils.checkpoint import load_module, read_checkpoint
from src.utils.scoring import untrained_system

BUCKETS = ((0, 15), (15, 30), (30, 45), (45, 61))
METRICS = ("nme_kpt68", "nme_dense_2d", "nme_dense_3d")


def evaluate(network: torch.nn.Module, module, loader) -> dict[str, np.ndarray]:
    """Per-sample NMEs and |yaw| of a network run through `module.generate` (its mean prior, if any) on a loader."""
    values: dict[str, list[np.ndarray]] = {name: [] for name in (*METRICS, "yaw")}
    network.eval()
    with torch.inference_mode():
        for batch in loader:
            prediction = module.generate(batch, network)["posmap"] * module.max_pos
            for name, value in position_map_nme(
                prediction, batch["posmap"], module.uv_face_mask, module.uv_keypoints
            ).items():
                values[name].append(value.numpy())
            values["yaw"].append(batch["yaw_deg"].abs().numpy())
    return {name: np.concatenate(chunks) for name, chunks in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, _ = load_module(args.ckpt, expected_class="src.models.prnet.PRNetModule")
    checkpoint = read_checkpoint(args.ckpt)
    data_settings = dict(checkpoint["datamodule_hyper_parameters"])
    data_settings["cache_dir"] = data_settings.get("cache_dir") or "data/cache/faceworld"
    datamodule = PRNetDataModule(**data_settings)
    datamodule.setup()
    loader = datamodule.test_dataloader()
    from omegaconf import OmegaConf

    config = OmegaConf.create({"seed": 12345, "model": checkpoint["hyper_parameters"]})
    config.model._target_ = "src.models.prnet.PRNetModule"
    config.model._recursive_ = False
    untrained = untrained_system(config, module)
    rows = {
        "trained": (module.inference_generator, module),
        "untrained": (untrained.inference_generator, untrained),
        "mean_position_map": (module.baselines(datamodule)["mean_position_map"], module),
    }
    cpu = time.process_time()
    results = {name: evaluate(network, system, loader) for name, (network, system) in rows.items()}
    yaw = results["trained"]["yaw"]
    lines = [
        f"Held-out identities: {len(yaw)} crops ({len(datamodule.items['test'])} in test/), checkpoint {args.ckpt}",
        "",
        "NME (mean over crops; x 100 = % of the face size) by |yaw| bucket; n = crops in the bucket.",
        "",
    ]
    for metric in METRICS:
        header = " | ".join(f"{lo}-{min(hi, 60)}° (n={int(((yaw >= lo) & (yaw < hi)).sum())})" for lo, hi in BUCKETS)
        lines += [f"**{metric}**", "", f"| model | all | {header} |", "|---" * (len(BUCKETS) + 2) + "|"]
        for name, values in results.items():
            cells = [f"{100 * values[metric].mean():.2f}"]
            for lo, hi in BUCKETS:
                picked = (yaw >= lo) & (yaw < hi)
                cells.append(f"{100 * values[metric][picked].mean():.2f}" if picked.any() else "n/a")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"(evaluation: {time.process_time() - cpu:.1f} CPU-s, 1 thread)")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
