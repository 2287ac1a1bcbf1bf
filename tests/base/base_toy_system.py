"""A small third system that exercises the whole base (not shipped): the one docs/adding_a_system.md walks through.

Sequences of 4 frames run in chunks of 2; G sees the source frame and its previous output (carried between
chunks). Three optimizers step in a stated order (D, then an identity classifier, then G, as DG's IDSG), a lazy
R1 update shares D's optimizer every 2 iterations, two named Ds (per-frame `image`, chunk-level `temporal`)
judge the output, phases switch the terms by epoch and batch parity, and the mean target level is a fitted
statistic (a buffer fitted once on the training split) that G adds to its output.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from src.models.gan import Batch, GANModule

FRAMES, SIDE, IDENTITIES = 4, 8, 3


class ToySequences(Dataset):
    """`count` deterministic sequences: a 2-channel source, a target that follows it, an identity label."""

    def __init__(self, count: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.items = []
        for index in range(count):
            source = torch.rand(FRAMES, 2, SIDE, SIDE, generator=generator) * 2 - 1
            target = 0.5 * source[:, :1] - 0.25 * source[:, 1:] + 0.3
            self.items.append(
                {"source": source, "target": target, "identity": index % IDENTITIES, "frame_id": f"seq_{index:03d}"}
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


# --8<-- [start:system]
class ToySequenceSystem(GANModule):
    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = ("l1",)
    ADVERSARIAL_TERMS: ClassVar[tuple[str, ...]] = ("gan",)
    LOSS_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {"r1_losses": ("r1",), "classifier_losses": ("ce",)}
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "gan": ("gan",),
        "real": ("gan",),
        "fake": ("gan",),
        "l1": ("l1",),
        "r1": ("r1",),
    }
    SEQUENCE_KEYS: ClassVar[tuple[str, ...]] = ("source", "target")
    FITTED_STATISTICS: ClassVar[tuple[str, ...]] = ("target_mean",)
    PROGRESS_BAR_METRIC: ClassVar[str | None] = "l1"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_buffer("target_mean", torch.zeros(1))

    def fit_statistics(self, train_batches: Any) -> dict[str, torch.Tensor]:
        total, count = 0.0, 0
        for batch in train_batches:
            total += float(batch["target"].double().sum())
            count += batch["target"].numel()
        return {"target_mean": torch.tensor([total / count])}

    def generate(self, batch: Batch, generator: nn.Module) -> dict[str, Any]:
        source = batch["source"]
        previous = batch["carry"] if batch.get("carry") is not None else torch.zeros_like(source[:, 0, :1])
        frames = []
        for t in range(source.shape[1]):
            previous = torch.tanh(generator(torch.cat([source[:, t], previous], 1))) + self.target_mean
            frames.append(previous)
        # Not every output is a tensor: a list of per-scale maps and a label survive evaluation too.
        return {"frames": torch.stack(frames, 1), "carry": previous, "pyramid": [previous[:, :, ::2, ::2]], "tag": "g"}

    def discriminator_inputs(self, batch: Batch, outputs: dict[str, Any], name: str) -> tuple[Any, Any]:
        real, fake = batch["target"], outputs["frames"]
        if name == "image":  # every frame on its own
            return real.flatten(0, 1), fake.flatten(0, 1)
        return real.flatten(1, 2), fake.flatten(1, 2)  # temporal: the chunk's frames as channels

    def generator_losses(self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]) -> dict:
        losses = self.adversarial_losses(batch, outputs, terms)
        if "l1" in terms:
            losses["l1"] = self.criteria["l1"](outputs["frames"].flatten(0, 1), batch["target"].flatten(0, 1))
        return losses

    def r1_losses(self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]) -> dict:
        real = batch["target"].flatten(0, 1).detach().requires_grad_(True)
        return {"r1": self.criteria["r1"](self.discriminators["image"](real), real)}

    def classifier_losses(self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]) -> dict:
        frames = outputs["frames"]
        labels = batch["identity"].repeat_interleave(frames.shape[1])
        return {"ce": F.cross_entropy(self.classifier(frames.flatten(0, 1).flatten(1)), labels)}

    def sample_metrics(self, batch: Batch, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"l1": (outputs["frames"] - batch["target"]).abs().flatten(1).mean(1)}


# --8<-- [end:system]


def conv(in_channels: int, out_channels: int) -> dict[str, Any]:
    return {"_target_": "torch.nn.Conv2d", "in_channels": in_channels, "out_channels": out_channels, "kernel_size": 3}


def sgd(lr: float) -> dict[str, Any]:
    return {"_target_": "torch.optim.SGD", "_partial_": True, "lr": lr}


def toy_config() -> dict[str, Any]:
    """The model config a conf/model/<system>.yaml would hold (here as a dict; same keys, same meaning)."""
    # --8<-- [start:config]
    return {
        "generator": {**conv(3, 1), "padding": 1},
        "networks": {"classifier": {"_target_": "torch.nn.Linear", "in_features": SIDE * SIDE, "out_features": 3}},
        "discriminators": {
            "image": {
                "network": conv(1, 1),
                "loss_weights": {"real": 0.5, "fake": 0.5},
                "generator_loss_weights": {"gan": 1.0},
            },
            "temporal": {
                "network": conv(2, 1),
                "loss_weights": {"real": 0.5, "fake": 0.5},
                "generator_loss_weights": {"gan": 0.5},
            },
        },
        "criteria": {
            "gan": {"_target_": "src.losses.gan.GANLoss", "mode": "lsgan"},
            "l1": {"_target_": "src.losses.reconstruction.L1ReconstructionLoss"},
            "r1": {"_target_": "src.losses.gan.R1Penalty"},
        },
        "loss_weights": {"l1": 10.0},
        "updates": [
            {
                "name": "D",
                "parameters": ["discriminators"],
                "optimizer": sgd(0.01),
                "loss": "discriminator_losses",
                "detach_outputs": True,
            },
            {
                "name": "D_r1",
                "optimizer": "D",
                "loss": "r1_losses",
                "loss_weights": {"r1": 0.5},
                "every_k_steps": 2,
                "detach_outputs": True,
            },
            {
                "name": "aux",
                "parameters": ["classifier"],
                "optimizer": sgd(0.05),
                "loss": "classifier_losses",
                "loss_weights": {"ce": 1.0},
                "detach_outputs": True,
            },
            {"name": "G", "parameters": ["generator"], "optimizer": sgd(0.1), "loss": "generator_losses"},
        ],
        "phases": [
            {
                "name": "warmup",
                "epochs": [0, 1],
                "updates": ["G"],
                "loss_weights": {"G": {"image/gan": 0.0, "temporal/gan": 0.0}},
            },
            {"name": "supervised", "epochs": [1, None], "batch_cycle": [2, 0]},
            {"name": "unsupervised", "epochs": [1, None], "batch_cycle": [2, 1], "loss_weights": {"G": {"l1": 0.0}}},
        ],
        "chunk_frames": 2,
        "ema": {"generator": 0.5, "classifier": 0.5},
        "num_kept_samples": 5,
    }
    # --8<-- [end:config]
