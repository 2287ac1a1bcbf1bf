"""A landmark probe: a small CNN regressor from a face crop to its 68 landmarks, trained on the TRAINING crops of a
DG dataset (FaceWorld knows every crop's landmarks) and used to read the pose and expression of generated faces.

Why: the pose / expression consistency of the DG pipeline (landmarks of the output vs those of the true target) is
what IDSG changes, but mediapipe does not find faces in 32 - 64 px crops (it found 6 - 10 of 192 in the quick start),
and the classical detector's landmarks ignore pose and expression. The probe is trained on real (rendered) crops
of the training identities only and read on the outputs of held-out identities; its error on the TRUE target
images is the floor any output can reach (reported beside the rows). Its error on an output, against the true
target landmarks, is `probe_lm_error_px` (pixels of a 256 crop).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 256.0


class LandmarkProbe(nn.Module):
    """(B, 3, S, S) in [0, 1] -> (B, 68 * 2) landmarks / S. Stride-2 conv blocks keep a spatial map (no global pool:
    the points' positions are what is read), then two linear layers."""

    def __init__(self, size: int, channels: int = 16, blocks: int = 3, hidden: int = 256) -> None:
        super().__init__()
        if size % 2**blocks:
            raise ValueError(f"LandmarkProbe: image size {size} is not divisible by 2^{blocks}")
        layers: list[nn.Module] = []
        width = 3
        for index in range(blocks):
            out = channels * 2**index
            layers += [nn.Conv2d(width, out, 3, 1, 1), nn.BatchNorm2d(out), nn.ReLU()]
            layers += [nn.Conv2d(out, out, 3, 2, 1), nn.BatchNorm2d(out), nn.ReLU()]
            width = out
        self.features = nn.Sequential(*layers)
        cells = (size // 2**blocks) ** 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * cells, hidden), nn.ReLU(), nn.Linear(hidden, 136))
        self.size = int(size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.head(self.features(image * 2.0 - 1.0)) + 0.5


def probe_error_px(predicted: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """(B,) mean point distance (x, y) in pixels of a 256 crop; landmarks (B, 68 * D) divided by the crop side."""
    truth = landmarks.reshape(landmarks.shape[0], 68, -1)[..., :2]
    return (predicted.reshape(-1, 68, 2) - truth).norm(dim=2).mean(dim=1) * PIXELS


def fit_landmark_probe(
    batches: Iterable[dict[str, torch.Tensor]],
    size: int,
    steps: int = 1500,
    lr: float = 2e-3,
    seed: int = 0,
    pairs: tuple[tuple[str, str], ...] = (("source_image", "source_landmarks"), ("target_image", "target_landmarks")),
) -> tuple[LandmarkProbe, dict[str, float]]:
    """Train a probe on (image, landmarks) pairs of the given batches (cycled) for `steps` Adam steps with a cosine
    decay; returns the probe in eval mode and {steps, cpu_seconds, train_error_px}."""
    torch.manual_seed(seed)
    probe = LandmarkProbe(size)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    cached = [
        (batch[image].float(), batch[marks].float().reshape(batch[marks].shape[0], 68, -1)[..., :2].reshape(-1, 136))
        for batch in batches
        for image, marks in pairs
        if image in batch and marks in batch
    ]
    if not cached:
        raise ValueError(f"fit_landmark_probe: no batch holds any of the image / landmark pairs {pairs}")
    start, step, errors = time.process_time(), 0, []
    probe.train()
    while step < steps:
        for images, landmarks in cached:
            loss = (probe(images) - landmarks).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            errors.append(float(loss.detach()) * PIXELS)
            if step >= steps:
                break
    probe.eval()
    tail = errors[-max(1, len(cached)) :]
    return probe, {"steps": steps, "cpu_seconds": time.process_time() - start, "train_l1_px": sum(tail) / len(tail)}
