"""dfdn: where the refiner's headroom is. Scores a trained checkpoint's test split against oracle rows that FaceWorld's
truth makes possible, with the system's own metrics (DFDNModule.sample_metrics):

    trained              the model's refined displacement
    pca_only             the model's own PCA stage (what the `pca_only` baseline of comparison.md scores)
    pca_projection       the TRUE displacement projected onto the model's fitted PCA basis (least squares
                         coefficients): the best any PCA stage with this basis can do, whatever the PDIM / FC
    truth_minus_pores    the true displacement without FaceWorld's static fine-texture group (pore noise and the
                         faint lip groove, always on, 0.08 mm) but with its mean over the patch: what a model
                         reaches that gets every expression wrinkle exactly right and no pore
    oracle_refiner       a fresh PDRM of the checkpoint's size (residual, zero-initialised last layer) trained with L1
                         for --oracle-steps steps per region on [PCA projection of the truth, texture] of the
                         training split, applied to the test patches' PCA projections: what the refiner adds to a
                         PERFECT PCA stage, i.e. what the texture tells beyond the PCA basis
    truth_blurred        the true displacement blurred (Gaussian, sigma 1 texel): a model that gets all detail
                         coarser than ~2 texels right
    zero_displacement    a flat surface

    python bench/dfdn_oracle.py --ckpt <run>/checkpoints/last.ckpt [--max-patches 1200] [--out file.md]

The dataset is the one the checkpoint's run used (its datamodule settings are stored in the checkpoint); 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

from torch.utils.data import Dataset

from src.datamodules.dfdn import DFDNDataModule, PatchItem
from src.faceworld import appearance
from src.faceworld.writers.common import world_for
from src.faceworld.writers.details import META_FILE, expression_params
from src.geometry.uv import resample_uv_box
from src.io.atomic import write_text_atomic
from src.models.components.dfdn_networks import REGIONS, RegionDetailNet, detail_unet, zero_last_layer
from src.utils.checkpoint import load_module, read_checkpoint

STATIC_GROUP = 4  # src.faceworld.appearance._wrinkle_maps: forehead, crows, nasolabial, glabella, static
ROWS = (
    "trained",
    "pca_only",
    "pca_projection",
    "oracle_refiner",
    "truth_minus_pores",
    "truth_blurred",
    "zero_displacement",
)


def static_maps(dataset_root: Path) -> Callable[[str], np.ndarray]:
    """sample folder -> the static group's displacement (x units, map_size^2) of that identity x expression."""
    meta = json.loads((dataset_root / META_FILE).read_text())
    world = world_for(int(meta["unwrap_size"]), int(meta["unwrap_size"]))
    box, size, scale = world.prnet_uv_box(), int(meta["map_size"]), float(meta["displacement_scale_mm"])
    cache: dict[str, np.ndarray] = {}

    def lookup(sample_dir: str) -> np.ndarray:
        if sample_dir not in cache:
            folder = Path(sample_dir)
            identity = int(folder.parent.name.removeprefix("id"))
            params = expression_params(world, identity, int(meta["seed"]), folder.name)
            look = world._identity_appearance(params)
            named = dict(zip(world.model.expression_names, params.expression.tolist(), strict=True))
            weight = appearance.wrinkle_weights(named, float(params.displacement_strength))[STATIC_GROUP]
            cache[sample_dir] = resample_uv_box(look.wrinkles[STATIC_GROUP] * weight, box, size) / scale
        return cache[sample_dir]

    return lookup


def patch_of(statics: Callable[[str], np.ndarray], item: PatchItem, size: int) -> torch.Tensor:
    """(1,p,p) static-group displacement under one FaceWorld patch."""
    full = statics(item.sample_dir)
    return torch.from_numpy(full[item.row : item.row + size, item.col : item.col + size][None].copy()).float()


def project(pca: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Least-squares PCA reconstruction of (B,1,p,p) patches through mean + basis @ c (basis columns scaled)."""
    flat = pca.flatten(1) - mean
    coefficients = torch.linalg.lstsq(basis, flat.T).solution.T
    return (mean + coefficients @ basis.T).view_as(pca).clamp(-1.0, 1.0)


def blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    radius = int(np.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = torch.nn.functional.conv2d(padded, kernel.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(out, kernel.view(1, 1, -1, 1))


def train_oracle_refiner(
    net: RegionDetailNet, dataset: Dataset, indices: list[int], steps: int, seed: int = 0
) -> nn.Module:
    """A fresh PDRM like `net`'s, trained on [PCA projection of the truth, texture] -> truth (residual, L1, Adam 1e-3,
    batch 16); returned in eval mode (BatchNorm running statistics)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    refiner = detail_unet(2, 1, net.pdrm.num_downs, net.pdrm.unet.down[0].out_channels)
    zero_last_layer(refiner)
    optimizer = torch.optim.Adam(refiner.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(steps):
        batch = torch.utils.data.default_collate([dataset[int(i)] for i in rng.choice(indices, 16, replace=False)])
        true = batch["displacement"]
        projection = project(true, net.pca_mean, net.pca_basis)
        refined = (projection + refiner(torch.cat([projection, batch["texture"]], 1))).clamp(-1.0, 1.0)
        loss = (refined - true).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return refiner.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--max-patches", type=int, default=None, help="evenly spaced test patches (default all)")
    parser.add_argument("--oracle-steps", type=int, default=900, help="oracle refiner steps per region (0: no row)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpu = time.process_time()
    module, _ = load_module(args.ckpt, expected_class="src.models.dfdn.DFDNModule")
    module.eval()
    settings = dict(read_checkpoint(args.ckpt)["datamodule_hyper_parameters"])
    settings["cache_dir"] = settings.get("cache_dir") or "data/cache/faceworld"
    settings["max_patches_per_split"] = {"test": args.max_patches, "train": None}
    datamodule = DFDNDataModule(**settings)
    datamodule.setup()
    dataset = datamodule.datasets["test"]
    statics = static_maps(Path(datamodule.root))
    generator = module.inference_generator
    train = datamodule.datasets["train"]
    oracles = {
        region: train_oracle_refiner(
            generator.nets[REGIONS[region]],
            train,
            [i for i, r in enumerate(train.regions) if r == region],
            args.oracle_steps,
        )
        for region in sorted(set(train.regions))
        if args.oracle_steps > 0
    }
    rows = [row for row in ROWS if row != "oracle_refiner" or oracles]
    scores: dict[str, dict[str, list[np.ndarray]]] = {row: {} for row in rows}
    p = dataset.patch_size
    with torch.inference_mode():
        for region in sorted(set(dataset.regions)):
            indices = [i for i, r in enumerate(dataset.regions) if r == region]
            net = generator.nets[REGIONS[region]]
            for start in range(0, len(indices), 64):
                chunk = indices[start : start + 64]
                batch = torch.utils.data.default_collate([dataset[i] for i in chunk])
                true = batch["displacement"]
                refined, pca = generator(batch["texture"], region)
                pores = torch.stack([patch_of(statics, dataset.items[i], p) for i in chunk])
                projection = project(true, net.pca_mean, net.pca_basis)
                predictions = {
                    "trained": refined,
                    "pca_only": pca,
                    "pca_projection": projection,
                    "truth_minus_pores": true - pores + pores.mean(dim=(1, 2, 3), keepdim=True),
                    "truth_blurred": blur(true),
                    "zero_displacement": torch.zeros_like(true),
                }
                if oracles:
                    correction = oracles[region](torch.cat([projection, batch["texture"]], 1))
                    predictions["oracle_refiner"] = (projection + correction).clamp(-1.0, 1.0)
                for row, prediction in predictions.items():
                    metrics = module.sample_metrics(batch, {"displacement": prediction, "pca": pca})
                    for name, values in metrics.items():
                        scores[row].setdefault(name, []).append(values.numpy())
    headline = module.HEADLINE_METRICS
    lines = [
        f"Test patches: {len(dataset)} ({args.ckpt}); mean ± std over patches",
        "",
        "| row | " + " | ".join(f"{m} ↓" for m in headline) + " |",
        "|---" * (len(headline) + 1) + "|",
    ]
    for row in rows:
        cells = []
        for name in headline:
            values = np.concatenate(scores[row][name])
            cells.append(f"{values.mean():.4f} ± {values.std():.3f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", f"({time.process_time() - cpu:.1f} CPU-s, 1 thread)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
