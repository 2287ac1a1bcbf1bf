"""Synthetic head2head batches in the datamodule's contract and a tiny model config (tests only).

Contract: "nmfc", "eyes", "image" (B, T, 3, H, W) in [-1, 1], "landmarks" (B, T, 70, 2) pixels, "sequence"
list[str], "frame_index" (B, T) long. The image follows the NMFC (a smooth function of it) and moves over time, so
a generator can learn it and the reference flow is not trivial.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.utils.data import Dataset

from src.models.components.flownet2 import FlowEstimator


def synthetic_sequence(length: int, size: int, seed: int, start: int = 0) -> dict[str, Any]:
    rng = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    phase = torch.rand(1, generator=rng) * 6.28
    nmfc, eyes, image, landmarks = [], [], [], []
    for t in range(start, start + length):
        cx, cy = 0.2 * torch.sin(phase + 0.3 * t), 0.1 * torch.cos(phase + 0.2 * t)
        face = ((xs - cx) ** 2 / 0.35 + (ys - cy) ** 2 / 0.5) < 1
        coords = torch.stack([(xs - cx + 1) / 2, (ys - cy + 1) / 2, torch.full_like(xs, 0.5)])
        frame_nmfc = torch.where(face, coords * 2 - 1, torch.full_like(coords, -1.0))
        nmfc.append(frame_nmfc)
        eye = torch.full((3, size, size), -1.0)
        eye[0, size // 3, size // 3 : size // 2] = 1.0
        eyes.append(eye)
        image.append(torch.tanh(1.5 * frame_nmfc + 0.2 * torch.sin(3 * xs)))
        points = torch.rand(70, 2, generator=rng) * size * 0.2 + size * 0.4
        points[48:68] = torch.tensor([(cx + 1) / 2 * size, (cy + 1) / 2 * size + size * 0.25])
        landmarks.append(points)
    return {
        "nmfc": torch.stack(nmfc),
        "eyes": torch.stack(eyes),
        "image": torch.stack(image),
        "landmarks": torch.stack(landmarks),
        "sequence": f"id{seed:03d}",
        "frame_index": torch.arange(start, start + length),
    }


class SyntheticSequences(Dataset):
    def __init__(self, count: int, length: int, size: int, seed: int = 0) -> None:
        self.items = [synthetic_sequence(length, size, seed + i) for i in range(count)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


class ZeroFlow(FlowEstimator):
    """A stand-in estimator: zero flow (so the warp target is the previous frame itself); counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _flow(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.zeros(first.shape[0], 2, *first.shape[-2:])


def patch_d(input_nc: int) -> dict[str, Any]:
    return {
        "_target_": "src.models.components.discriminators.MultiscaleDiscriminator",
        "input_nc": input_nc,
        "ndf": 4,
        "n_layers": 2,
        "num_D": 2,
        "norm": "instance",
    }


def table(input_nc: int) -> dict[str, Any]:
    return {
        "network": patch_d(input_nc),
        "loss_weights": {"real": 0.5, "fake": 0.5},
        "generator_loss_weights": {"gan": 1.0, "fm": 10.0},
    }


TINY_CONFIG: dict[str, Any] = {
    "generator": {
        "_target_": "src.models.components.head2head_generator.Head2HeadGenerator",
        "ngf": 4,
        "n_downsampling": 2,
        "n_blocks": 2,
    },
    "discriminators": {
        "image": table(9),
        "mouth": table(9),
        "eyes": table(9),
        "temporal_1": table(13),
        "temporal_3": table(13),
        "temporal_9": table(13),
    },
    "criteria": {
        "gan": {"_target_": "src.losses.gan.GANLoss", "mode": "lsgan"},
        "fm": {"_target_": "src.losses.feature_matching.FeatureMatchingLoss"},
        "l1": {"_target_": "src.losses.reconstruction.L1ReconstructionLoss"},
    },
    "loss_weights": {"warp": 10.0, "l1": 1.0},
    "flow_estimator": {
        "_target_": "src.models.components.flownet2.make_flow_estimator",
        "kind": "dis",
        "preset": "ultrafast",
    },
    "optimizer_g": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.0002, "betas": [0.5, 0.999]},
    "optimizer_d": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.0002, "betas": [0.5, 0.999]},
    "chunk_frames": 4,
    "sequence_length": {"start": 8, "double_every": 1, "max": 16},
    "num_kept_samples": 1,
}


def tiny_config(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(TINY_CONFIG)
    config.update(changes)
    return config
