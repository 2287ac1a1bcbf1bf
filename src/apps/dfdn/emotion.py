"""DFDN's emotion feature: a small CNN on a 64x64 grey face (8 emotion classes) whose 128-d feature keys the
expression prior of the proxy fit (src.geometry.fitting.ExpressionDictionary), trained on FaceWorld expressions.

The original keyed its dictionary by the feature of an emotion classifier trained on real photos. Here the
8 classes are FaceWorld expression mixes (EMOTIONS), rendered on random identities, poses, lights and intensities;
the dictionary maps the training faces' features to their TRUE expression coefficients.

    python -m src.apps.dfdn.emotion --out models/dfdn_emotion.pt [--samples 1600 --epochs 20]

writes one file (weights, the dictionary, the class names) that `python -m src.apps.dfdn` reads (emotion=...).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from src.faceworld.writers.common import world_for
from src.geometry.fitting import ExpressionDictionary

log = logging.getLogger(__name__)

FACE_SIZE = 64
FEATURE_DIM = 128
# The 8 emotion classes as FaceWorld expression mixes (component weights in [0, 1]).
EMOTIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"smile": 0.9},
    "sad": {"mouth_frown": 0.9, "brow_raise": 0.3},
    "surprise": {"brow_raise": 1.0, "jaw_open": 0.6},
    "fear": {"brow_raise": 0.7, "brow_frown": 0.5, "jaw_open": 0.3},
    "disgust": {"brow_frown": 0.6, "mouth_frown": 0.4, "lips_pucker": 0.4},
    "anger": {"brow_frown": 1.0, "lips_pucker": 0.5},
    "contempt": {"smile": 0.4, "cheek_puff": 0.6},
}
CLASSES = tuple(EMOTIONS)


def face_crop(image_rgb: np.ndarray, landmarks68: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """(size,size) uint8 grey face: the square around the 68 landmarks (25 % margin), resized."""
    points = np.asarray(landmarks68, np.float64)[:68]
    lo, hi = points.min(0), points.max(0)
    centre, side = (lo + hi) / 2.0, float((hi - lo).max()) * 1.25
    x0, y0 = centre - side / 2.0
    scale = size / side
    affine = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    grey = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2GRAY)
    return cv2.warpAffine(grey, affine, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


class EmotionNet(nn.Module):
    """64x64 grey face -> 128-d feature -> 8 logits. forward returns (logits, feature)."""

    def __init__(self, num_classes: int = len(CLASSES), width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for out in (width, width * 2, width * 4, width * 8):  # 64 -> 4
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        self.feature = nn.Sequential(nn.Linear(channels * 16, FEATURE_DIM), nn.ReLU())
        self.classifier = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.feature(self.trunk(faces))
        return self.classifier(feature), feature


def faces_to_tensor(faces: np.ndarray) -> torch.Tensor:
    """(N,64,64) uint8 -> (N,1,64,64) float, each face standardised (zero mean, unit std: light and skin tone
    are not the expression)."""
    x = np.asarray(faces, np.float32)
    x = (x - x.mean(axis=(1, 2), keepdims=True)) / (x.std(axis=(1, 2), keepdims=True) + 1e-3)
    return torch.from_numpy(x).unsqueeze(1)


@dataclass
class EmotionSamples:
    faces: np.ndarray  # (N,64,64) uint8
    labels: np.ndarray  # (N,) int
    expressions: np.ndarray  # (N,K) true expression coefficients


def render_emotion_samples(count: int, seed: int, render_size: int = 160) -> EmotionSamples:
    """`count` FaceWorld photos, emotions cycling through CLASSES at random intensity (0.6-1.1), with random
    identity, pose (+-12 degrees), light and small expression noise; each cropped by its true 68 landmarks."""
    world = world_for(64, 64)
    rng = np.random.default_rng(seed)
    faces, labels, expressions = [], [], []
    for index in range(count):
        label = index % len(CLASSES)
        params = world.sample_params(int(rng.integers(1 << 30)), pose_range_deg=12.0)
        intensity = rng.uniform(0.6, 1.1)
        named = {k: float(np.clip(v * intensity, 0, 1)) for k, v in EMOTIONS[CLASSES[label]].items()}
        expression = np.clip(world.expression(**named) + rng.normal(0, 0.04, len(world.expression_names)), 0, 1)
        params = params.replace(expression=expression)
        camera = world.framing_camera(params, render_size)
        frame = world.render(params, camera, ("rgb", "landmarks"))
        faces.append(face_crop(frame["rgb"], frame["landmarks2d"]))
        labels.append(label)
        expressions.append(expression)
    return EmotionSamples(np.stack(faces), np.asarray(labels), np.stack(expressions))


def train_emotion_net(
    samples: EmotionSamples, epochs: int = 20, batch_size: int = 32, lr: float = 1e-3, seed: int = 0
) -> EmotionNet:
    """Adam on cross-entropy, random horizontal shifts of a few pixels as augmentation."""
    torch.manual_seed(seed)
    net = EmotionNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    faces, labels = faces_to_tensor(samples.faces), torch.from_numpy(samples.labels).long()
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(faces), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            shift = [int(v) for v in torch.randint(-3, 4, (2,), generator=generator)]
            batch = torch.roll(faces[rows], shifts=shift, dims=(2, 3))
            logits, _ = net(batch)
            loss = nn.functional.cross_entropy(logits, labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        log.info(f"emotion net epoch {epoch + 1}/{epochs}: loss {total / len(faces):.3f}")
    return net.eval()


@torch.no_grad()
def features_of(net: EmotionNet, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes (N,), 128-d features (N,128)) of uint8 faces (N,64,64)."""
    net.eval()
    logits, feature = net(faces_to_tensor(faces))
    return logits.argmax(1).numpy(), feature.numpy()


@dataclass
class EmotionPrior:
    """The trained net and its dictionary: a photo's face -> expression prior (FaceWorld coefficients)."""

    net: EmotionNet
    dictionary: ExpressionDictionary

    def prior(self, image_rgb: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        _, feature = features_of(self.net, face_crop(image_rgb, landmarks68)[None])
        return self.dictionary.lookup(feature[0])

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "state_dict": self.net.state_dict(),
            "keys": torch.from_numpy(self.dictionary.keys),
            "expressions": torch.from_numpy(self.dictionary.expressions),
            "classes": list(CLASSES),
        }
        torch.save(payload, str(path))

    @classmethod
    def load(cls, path: str | Path) -> EmotionPrior:
        from src.utils.errors import CheckpointError

        try:
            payload = torch.load(str(path), map_location="cpu", weights_only=True)
            net = EmotionNet(num_classes=len(payload["classes"]))
            net.load_state_dict(payload["state_dict"])
            dictionary = ExpressionDictionary(payload["keys"].numpy(), payload["expressions"].numpy())
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as err:
            raise CheckpointError(f"{path}: not a readable DFDN emotion prior ({type(err).__name__})") from None
        return cls(net.eval(), dictionary)


def build_emotion_prior(samples: int, epochs: int, seed: int = 0) -> tuple[EmotionPrior, dict[str, float]]:
    """Render, train, key the dictionary by the training faces' features; returns the prior and CPU seconds."""
    start = time.process_time()
    data = render_emotion_samples(samples, seed)
    rendered = time.process_time()
    net = train_emotion_net(data, epochs, seed=seed)
    trained = time.process_time()
    _, features = features_of(net, data.faces)
    prior = EmotionPrior(net, ExpressionDictionary(features, data.expressions))
    return prior, {"render_cpu_s": rendered - start, "train_cpu_s": trained - rendered}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.apps.dfdn.emotion", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="file to write (weights + dictionary)")
    parser.add_argument("--samples", type=int, default=1600)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.samples < len(CLASSES) or args.epochs < 1:
        parser.exit(2, f"error: --samples must be >= {len(CLASSES)} and --epochs >= 1\n")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prior, cost = build_emotion_prior(args.samples, args.epochs, args.seed)
    prior.save(args.out)
    test = render_emotion_samples(max(len(CLASSES), args.samples // 4), args.seed + 1)
    predicted, _ = features_of(prior.net, test.faces)
    accuracy = float((predicted == test.labels).mean())
    print(f"wrote {args.out}: held-out accuracy {accuracy:.3f} on {len(test.labels)} new faces; {cost}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
