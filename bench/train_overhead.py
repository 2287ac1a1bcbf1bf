"""What the framework costs per training step: RGBDFaceModule under a Lightning Trainer vs a plain PyTorch loop.

Both sides train the same networks (same configs, same seed, same initial weights) with the same losses
(LSGAN + L1 x100, D loss 0.5 (real + fake)), the same D-then-G order with the other network frozen during each
update, the same Adam optimizers, the same depth-as-mask rule (rgbd_face's "prediction" rule) and the same
DataLoader over one fixed in-memory dataset. The difference is the framework: Lightning's loop, manual
optimization hooks, the GAN base's loss table and per-term logging. Target: within 5 %.

    python bench/train_overhead.py                         # CPU defaults: unet_128 at 128 px, batch 4
    python bench/train_overhead.py --size 256 --generator unet_256 --ngf 32 --steps 50 --device cuda

The two measurements alternate (plain, framework, plain, framework, ...) so drift of a shared machine hits
both; the best repeat of each is compared. Numbers on a shared CPU are noisy and pessimistic.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra
import lightning as L

from src.losses.depth import BACKGROUND_THRESHOLD
from src.models.rgbd_face import RGBDFaceModule, mask_background, mask_background_straight_through


class InMemoryRGBD(Dataset):
    """`count` fixed synthetic frames with the rgbd datamodule's batch keys (an ellipse 'face' with depth)."""

    def __init__(self, count: int, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        self.items = []
        for index in range(count):
            scale = 0.6 + 0.2 * torch.rand((), generator=generator)
            r2 = (xx / scale) ** 2 + (yy / (scale * 1.2)) ** 2
            face = r2 < 1
            depth = torch.where(face, 0.2 + 0.5 * r2, torch.full_like(r2, -1.0))
            colour = torch.where(face, 0.6 - 0.4 * r2, torch.full_like(r2, -1.0)).expand(3, -1, -1)
            feature = torch.where((r2 - 0.8).abs() < 0.05, 1.0, -1.0)[None]
            self.items.append(
                {
                    "feature": feature,
                    "rgbd": torch.cat([colour, depth[None]], 0),
                    "face_mask": face[None],
                    "depth_near_mm": torch.tensor(480.0),
                    "depth_far_mm": torch.tensor(700.0),
                    "depth_bits": torch.tensor(16),
                    "frame_id": f"bench_{index:06d}",
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def network_configs(args: argparse.Namespace) -> dict[str, Any]:
    """The model's constructor arguments as the Hydra configs train.py passes (so both sides build the same)."""
    return {
        "generator": {
            "_target_": "src.models.components.generators.build_generator",
            "name": args.generator,
            "input_nc": 1,
            "output_nc": 4,
            "ngf": args.ngf,
            "norm": "batch",
            "dropout": True,
        },
        "discriminator": {
            "_target_": "src.models.components.discriminators.NLayerDiscriminator",
            "input_nc": 5,
            "ndf": args.ndf,
            "n_layers": args.n_layers,
            "norm": "batch",
        },
        "criteria": {
            "gan": {"_target_": "src.losses.gan.GANLoss", "mode": "lsgan"},
            "l1": {"_target_": "src.losses.reconstruction.L1ReconstructionLoss"},
        },
        "loss_weights": {"gan": 1.0, "l1": 100.0},
        "optimizer_g": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-4, "betas": [0.5, 0.999]},
        "optimizer_d": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-4, "betas": [0.5, 0.999]},
    }


def cycle(loader: DataLoader):
    while True:
        yield from loader


def plain_loop(args: argparse.Namespace, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """(wall, CPU-time) steps/s of a hand-written loop doing what GANModule.training_step does for rgbd_face."""
    configs = network_configs(args)
    torch.manual_seed(args.seed)
    generator = hydra.utils.instantiate(configs["generator"]).to(device).train()
    discriminator = hydra.utils.instantiate(configs["discriminator"]).to(device).train()
    gan_loss = hydra.utils.instantiate(configs["criteria"]["gan"])
    l1_loss = hydra.utils.instantiate(configs["criteria"]["l1"])
    opt_g = hydra.utils.instantiate(configs["optimizer_g"])(params=generator.parameters())
    opt_d = hydra.utils.instantiate(configs["optimizer_d"])(params=discriminator.parameters())
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batches = cycle(loader)
    start = cpu_start = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
        batch = next(batches)
        feature, real = batch["feature"].to(device), batch["rgbd"].to(device)
        fake = mask_background_straight_through(generator(feature), BACKGROUND_THRESHOLD)
        target = mask_background(real, BACKGROUND_THRESHOLD)
        # D step, G frozen (its graph is not needed: the fake is detached).
        generator.requires_grad_(False)
        loss_d = 0.5 * gan_loss(discriminator(torch.cat([feature, target], 1)), True) + 0.5 * gan_loss(
            discriminator(torch.cat([feature, fake.detach()], 1)), False
        )
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        generator.requires_grad_(True)
        # G step, D frozen.
        discriminator.requires_grad_(False)
        loss_g = gan_loss.generator_loss(discriminator(torch.cat([feature, fake], 1))) + 100.0 * l1_loss(fake, target)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        discriminator.requires_grad_(True)
        float(loss_g.detach())  # a loop reads its loss (the framework logs it); this also syncs the device
    sync()
    return args.steps / (time.perf_counter() - start), args.steps / (time.process_time() - cpu_start)


class _StepTimer(L.Callback):
    """Wall time from the start of training batch number `warmup` (counted across epochs) to the end of the last."""

    def __init__(self, warmup: int, sync) -> None:
        self.warmup, self.sync = warmup, sync
        self.batches = 0
        self.start = self.end = self.cpu_start = self.cpu_end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.batches == self.warmup:
            self.sync()
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        self.sync()
        self.end, self.cpu_end = time.perf_counter(), time.process_time()


def framework_loop(args: argparse.Namespace, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """(wall, CPU-time) steps/s of RGBDFaceModule under Trainer.fit (manual optimization: max_steps counts each
    optimizer step, so two per training step)."""
    torch.manual_seed(args.seed)
    module = RGBDFaceModule(**network_configs(args), lpips_metric=None)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    timer = _StepTimer(args.warmup, sync)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        max_steps=2 * (args.warmup + args.steps),
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    if timer.batches != args.warmup + args.steps:
        raise RuntimeError(f"the Trainer ran {timer.batches} batches, expected {args.warmup + args.steps}")
    return args.steps / (timer.end - timer.start), args.steps / (timer.cpu_end - timer.cpu_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="unet_128")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--n-layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16, help="size of the fixed in-memory dataset")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (one D + one G update each)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared CPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    device = torch.device(args.device)
    loader = DataLoader(InMemoryRGBD(args.frames, args.size, args.seed), batch_size=args.batch_size, shuffle=False)
    print(
        f"{args.generator} ngf {args.ngf} / PatchGAN n_layers {args.n_layers} ndf {args.ndf}, {args.size} px, "
        f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup}, device {device}, "
        f"{torch.get_num_threads()} threads"
    )
    plain, framework = [], []
    for repeat in range(args.repeats):
        plain.append(plain_loop(args, loader, device))
        framework.append(framework_loop(args, loader, device))
        print(
            f"  repeat {repeat + 1}: plain {plain[-1][0]:.3f} steps/s (CPU time {plain[-1][1]:.3f}), "
            f"framework {framework[-1][0]:.3f} steps/s (CPU time {framework[-1][1]:.3f})"
        )
    print(f"\n{'best of ' + str(args.repeats):<22}{'steps/s':>9}{'ms/step':>10}{'CPU steps/s':>13}{'CPU ms/step':>13}")
    rows = (("plain PyTorch loop", plain), ("Lightning framework", framework))
    best = {}
    for name, runs in rows:
        wall, cpu = max(r[0] for r in runs), max(r[1] for r in runs)
        best[name] = (wall, cpu)
        print(f"{name:<22}{wall:>9.3f}{1e3 / wall:>10.1f}{cpu:>13.3f}{1e3 / cpu:>13.1f}")
    for index, clock in ((0, "wall-clock"), (1, "CPU-time")):
        overhead = (best["plain PyTorch loop"][index] / best["Lightning framework"][index] - 1.0) * 100.0
        verdict = "within" if overhead <= 5.0 else "over"
        print(f"framework overhead ({clock}): {overhead:+.1f} % per step ({verdict} the 5 % target)")
    if device.type == "cpu":
        print("CPU time counts this process only, so other load on a shared machine distorts it less than wall time")


if __name__ == "__main__":
    main()
