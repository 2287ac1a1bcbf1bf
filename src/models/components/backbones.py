"""Frozen ImageNet feature stacks (VGG16, VGG19, AlexNet, SqueezeNet 1.1) for perceptual losses and metrics.

Defined here (torchvision must not be imported in this project) with torchvision's state-dict keys
(``features.0.weight``, ...), so the official torchvision ``.pth`` files load directly. Nothing is downloaded:
weights come from a local file, by default ``$FACESYNTH_WEIGHTS_DIR/<torchvision file name>`` with
``FACESYNTH_WEIGHTS_DIR`` defaulting to ``~/.cache/facesynth/weights``.

Inputs are images in [-1, 1] (or [0, 1] with ``input_range="zero_one"``); ImageNet normalisation happens inside.
``forward`` returns the activations at the requested named taps, in the order given.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from src.utils.checkpoint import safe_torch_load
from src.utils.errors import CheckpointError

WEIGHT_FILES = {
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
    "alexnet": "alexnet-owt-7be5be79.pth",
    "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth",
}
# Named taps: index of the layer in `features` whose output is returned.
TAPS = {
    "vgg16": {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_3": 15, "relu4_1": 18,
              "relu4_3": 22, "relu5_1": 25, "relu5_3": 29},
    "vgg19": {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_4": 17, "relu4_1": 20,
              "relu4_4": 26, "relu5_1": 29, "relu5_4": 35},
    "alexnet": {"relu1": 1, "relu2": 4, "relu3": 7, "relu4": 9, "relu5": 11},
    "squeezenet1_1": {"relu1": 1, "fire3": 4, "fire5": 7, "fire6": 9, "fire7": 10, "fire8": 11, "fire9": 12},
}  # fmt: skip
_VGG_CONFIGS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weights_dir() -> Path:
    """Folder of local backbone weight files (``FACESYNTH_WEIGHTS_DIR`` or ``~/.cache/facesynth/weights``)."""
    return Path(os.environ.get("FACESYNTH_WEIGHTS_DIR", "~/.cache/facesynth/weights")).expanduser()


def default_weights_path(arch: str) -> Path:
    if arch not in WEIGHT_FILES:
        raise ValueError(f"unknown backbone {arch!r}; choose one of {sorted(WEIGHT_FILES)}")
    return weights_dir() / WEIGHT_FILES[arch]


class Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, then concatenated 1x1 and 3x3 expansions (torchvision names)."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(s)), self.expand3x3_activation(self.expand3x3(s))], 1
        )


def build_features(arch: str) -> nn.Sequential:
    """The convolutional ``features`` stack of a torchvision classifier, with torchvision's layer indices."""
    if arch in _VGG_CONFIGS:
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG_CONFIGS[arch]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
                channels = int(item)
        return nn.Sequential(*layers)
    if arch == "alexnet":
        return nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )  # fmt: skip
    if arch == "squeezenet1_1":
        return nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
        )  # fmt: skip
    raise ValueError(f"unknown backbone {arch!r}; choose one of {sorted(WEIGHT_FILES)}")


def load_backbone_weights(model: nn.Module, path: str | os.PathLike, arch: str = "") -> None:
    """Load the ``features.*`` entries of a torchvision-format state dict (classifier keys are ignored)."""
    path = Path(path).expanduser()
    label = arch or getattr(model, "arch", "backbone")
    if not path.is_file():
        raise FileNotFoundError(
            f"{label} weights not found: {path} (put torchvision's {WEIGHT_FILES.get(label, '<arch>.pth')} there, "
            f"set FACESYNTH_WEIGHTS_DIR, or pass the file path; nothing is downloaded)"
        )
    try:
        state = safe_torch_load(path, what=f"{label} weights file")
    except CheckpointError:
        raise
    except Exception as exc:
        raise RuntimeError(f"{label} weights file {path} could not be read as a torch state dict: {exc}") from None
    state = {
        k.removeprefix("module."): v for k, v in state.items() if k.removeprefix("module.").startswith("features.")
    }
    own = model.state_dict()
    wanted = {k for k in own if k.startswith("features.")}
    missing = sorted(wanted - set(state))
    wrong = [k for k in wanted & set(state) if state[k].shape != own[k].shape]
    if missing or wrong:
        raise RuntimeError(
            f"{label} weights file {path} does not fit: missing {missing[:3]}, shape mismatches {wrong[:3]}"
        )
    model.load_state_dict({**own, **{k: state[k] for k in wanted}})


class FeatureBackbone(nn.Module):
    """Frozen feature extractor returning the activations at ``layers`` (names from ``TAPS[arch]``).

    ``weights``: ``"default"`` (the torchvision file in ``weights_dir()``), a file path, or ``"random"``
    (untrained; for tests only, with a warning: perceptual values are then meaningless).
    """

    def __init__(
        self,
        arch: str = "vgg19",
        layers: list[str] | tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        weights: str = "default",
        input_range: str = "minus_one_one",
    ) -> None:
        super().__init__()
        if arch not in TAPS:
            raise ValueError(f"unknown backbone {arch!r}; choose one of {sorted(TAPS)}")
        unknown = [name for name in layers if name not in TAPS[arch]]
        if unknown:
            raise ValueError(f"unknown {arch} layers {unknown}; available: {list(TAPS[arch])}")
        if input_range not in ("minus_one_one", "zero_one"):
            raise ValueError(f"input_range must be minus_one_one or zero_one, got {input_range!r}")
        self.arch = arch
        self.layers = list(layers)
        self.tap_indices = [TAPS[arch][name] for name in self.layers]
        self.input_range = input_range
        self.features = build_features(arch)[: max(self.tap_indices) + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights == "random":
            warnings.warn(
                f"{arch} backbone uses RANDOM weights (requested explicitly): perceptual values are meaningless",
                stacklevel=2,
            )
        else:
            path = default_weights_path(arch) if weights == "default" else Path(weights)
            load_backbone_weights(self, path, arch)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureBackbone:
        """Always stays in eval mode: it is a fixed measuring instrument."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] != 3:
            raise ValueError(f"{self.arch} backbone expects 3 channels, got {x.shape[1]}")
        if self.input_range == "minus_one_one":
            x = (x + 1) / 2
        x = (x - self.mean) / self.std
        wanted = set(self.tap_indices)
        outputs: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                outputs[index] = x
        return [outputs[i] for i in self.tap_indices]


def to_three_channels(x: torch.Tensor, channels: list[int] | tuple[int, ...] | None = None) -> torch.Tensor:
    """Select ``channels`` (e.g. [0, 1, 2] = colour or [3] = depth of RGBD), then make 3 channels for an ImageNet
    backbone: 1 channel is repeated, 3 are kept, anything else is an error."""
    if channels is not None:
        x = x[:, list(channels)]
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"perceptual features need 1 or 3 channels, got {x.shape[1]}; select some with `channels`")
    return x
