"""A landmark-geometry loss for DG's RFG: a frozen landmark regressor reads the generated face, and the loss is the
distance of what it reads to the landmarks the drawing was made from.

Why: at the CPU quick-start size the RFG follows its drawing only loosely (a landmark probe reads its outputs
12 - 13 px from the drawn landmarks, 5.5 px on true images), so the landmark changes IDSG makes barely reach the
image. L1 and the perceptual loss reward the right geometry only through pixel colours; this term asks for it
directly. The regressor is trained once, at the start of training, on the TRAINING crops and their landmarks
(source and true-target images; FaceWorld knows them) and then frozen; its weights and the `fitted` flag live in
the checkpoint, so a resumed run does not train it again.

It is NOT the evaluation's probe (src/models/components/dg_landmark_probe.py, trained in bench/dg_pipeline.py):
different architecture (coordinate channels, GroupNorm, SiLU, four stages, one linear head vs BatchNorm / ReLU,
three stages, two linear layers), different seed and its own training, so the measure is not the thing optimised.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 256.0


class GeometryRegressor(nn.Module):
    """(B, 3, S, S) in [0, 1] -> (B, 136) landmarks divided by S. The input gets two coordinate channels (x, y in
    [-1, 1]) so positions are explicit; four stride-2 stages; a linear head on the flattened map."""

    def __init__(self, size: int, channels: int = 24, stages: int = 4) -> None:
        super().__init__()
        if size % 2**stages:
            raise ValueError(f"GeometryRegressor: image size {size} is not divisible by 2^{stages}")
        layers: list[nn.Module] = []
        width = 5
        for index in range(stages):
            out = channels * min(2**index, 4)
            layers += [nn.Conv2d(width, out, 3, 2, 1), nn.GroupNorm(4, out), nn.SiLU()]
            layers += [nn.Conv2d(out, out, 3, 1, 1), nn.GroupNorm(4, out), nn.SiLU()]
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width * (size // 2**stages) ** 2, 136)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.size = int(size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        n, _, h, w = image.shape
        ys = torch.linspace(-1, 1, h, device=image.device, dtype=image.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=image.device, dtype=image.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        return self.head(self.features(torch.cat([image * 2 - 1, xs, ys], dim=1)).flatten(1)) + 0.5


def planar(landmarks: torch.Tensor) -> torch.Tensor:
    """(B, 68 * D) landmarks -> (B, 136): x and y of each point (z dropped for 3D landmarks)."""
    return landmarks.reshape(landmarks.shape[0], 68, -1)[..., :2].reshape(-1, 136)


class LandmarkGeometryLoss(nn.Module):
    """mean over points of the distance (in pixels of a 256 crop / 256) between the frozen regressor's landmarks of
    an image and the given landmarks. `fit` trains the regressor once; calling the loss before that is an error.

    size: side the regressor reads (the RFG's image size); steps / lr / batch_size / seed: its training."""

    def __init__(self, size: int, steps: int = 800, lr: float = 2e-3, batch_size: int = 64, seed: int = 1) -> None:
        super().__init__()
        self.regressor = GeometryRegressor(int(size))
        self.steps, self.lr, self.batch_size, self.seed = int(steps), float(lr), int(batch_size), int(seed)
        self.register_buffer("fitted", torch.tensor(False))

    def train(self, mode: bool = True) -> LandmarkGeometryLoss:
        return super().train(False)  # GroupNorm has no running statistics, but stay in eval mode regardless

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        if not bool(self.fitted):
            raise RuntimeError("LandmarkGeometryLoss: the regressor is not fitted (call fit on the training crops)")
        difference = self.regressor(image).reshape(-1, 68, 2) - planar(landmarks).reshape(-1, 68, 2)
        return difference.norm(dim=2).mean()

    def fit(self, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """Train the regressor on (images (B, 3, S, S), landmarks (B, 68 * D)) pairs for `steps` Adam steps (cosine
        decay), re-batched to batch_size; then freeze it. Returns {steps, cpu_seconds, train_error_px}."""
        images, marks = [], []
        for image, landmarks in pairs:
            images.append(image.detach().float().cpu())
            marks.append(planar(landmarks.detach().float().cpu()))
        if not images:
            raise ValueError("LandmarkGeometryLoss.fit: no training images")
        images_all, marks_all = torch.cat(images), torch.cat(marks)
        device = next(self.regressor.parameters()).device
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for module in self.regressor.modules():
                if isinstance(module, nn.Conv2d):
                    module.reset_parameters()
        self.regressor.requires_grad_(True)
        optimizer = torch.optim.Adam(self.regressor.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.steps)
        start, errors = time.process_time(), []
        with torch.enable_grad():
            for _ in range(self.steps):
                index = torch.randint(len(images_all), (min(self.batch_size, len(images_all)),), generator=generator)
                predicted = self.regressor(images_all[index].to(device)).reshape(-1, 68, 2)
                loss = (predicted - marks_all[index].to(device).reshape(-1, 68, 2)).norm(dim=2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                errors.append(float(loss.detach()) * PIXELS)
        optimizer.zero_grad(set_to_none=True)
        self.regressor.requires_grad_(False)
        self.fitted.fill_(True)
        tail = errors[-max(1, self.steps // 10) :]
        return {
            "steps": self.steps,
            "cpu_seconds": time.process_time() - start,
            "train_error_px": sum(tail) / len(tail),
        }
