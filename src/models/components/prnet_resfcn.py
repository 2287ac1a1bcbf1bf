"""PRNet's resfcn256 encoder-decoder (image -> UV position map) in PyTorch, faithful to the original's TF layers,
its weighted position-map loss, and the importer of its released TensorFlow weights.

The original (yfeng95/PRNet predictor.py, TF-slim): every conv / transposed conv has no bias, is followed by batch
norm (scale=True, epsilon 1e-3) and ReLU, and pads 'SAME'. TF's SAME puts the odd pixel of padding at the bottom /
right (kernel 4, stride 1: 1 before, 2 after), so the layers here pad explicitly instead of using PyTorch's
symmetric padding: with the same weights the outputs match TF's. Encoder: conv 4x4 to 16 channels, then ten
residual blocks (1x1 -> kxk (stride) -> 1x1, shortcut 1x1 conv when the shape changes, BN + ReLU after the sum)
down to 8x8x512; decoder: seventeen 4x4 transposed convs back to 256x256x3, the last with a sigmoid. The output
times 1.1 x image size is the position map in pixels.

Parameter count at the original's shapes (base 16, 3 input channels): 13,353,618 trainable + 11,890 BN running
statistics. Derived by hand from predictor.py, layer by layer (tests/prnet/test_prnet_network.py repeats the
derivation independently of this code and checks both numbers).

Released weights (Data/net-data/256_256_resfcn256_weight.*): a TF checkpoint of variables named
`resfcn256/<layer>/weights` and `.../BatchNorm/{beta,gamma,moving_mean,moving_variance}` (layer names in
`tf_variable_names`). `import_tf_weights` maps them onto this module; `load_tf_arrays` reads the checkpoint itself
(no TensorFlow needed: src.models.components.prnet_tf_bundle) or a `.npz` of the same names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from src.utils.errors import CheckpointError

BN_EPSILON = 1e-3  # tf.contrib.layers.batch_norm's default
ENCODER = ((2, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (16, 2), (16, 1), (32, 2), (32, 1))  # (x base, stride)
DECODER = ((32, 1), (16, 2), (16, 1), (16, 1), (8, 2), (8, 1), (8, 1), (4, 2), (4, 1), (4, 1), (2, 2), (2, 1))
DECODER += ((1, 2), (1, 1))
ORIGINAL_TRAINABLE = 13_353_618
ORIGINAL_RUNNING_STATS = 11_890
MAX_POS_FACTOR = 1.1


def tf_same_padding(kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF 'SAME' for an input divisible by the stride."""
    total = max(kernel - stride, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TF 'SAME' padding (inputs divisible by the stride), no bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, bias=False)
        before, after = tf_same_padding(kernel_size, stride)
        self.pads = (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads) if any(self.pads) else x)


class SameConvTranspose2d(nn.ConvTranspose2d):
    """ConvTranspose2d with TF 'SAME' output (input x stride), no bias: the full output cropped by TF's forward
    padding (before, after)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, bias=False)
        self.crop = tf_same_padding(kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = super().forward(x)
        before, after = self.crop
        height, width = full.shape[-2] - before - after, full.shape[-1] - before - after
        return full[..., before : before + height, before : before + width]


def batch_norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=momentum)


class ConvBlock(nn.Sequential):
    """(transposed) conv -> BN -> activation: one TF-slim layer of the original's arg_scope."""

    def __init__(self, conv: nn.Module, channels: int, activation: nn.Module, momentum: float) -> None:
        super().__init__()
        self.conv = conv
        self.bn = batch_norm(channels, momentum)
        self.act = activation


class ResBlock(nn.Module):
    """The original's resBlock: 1x1 (C/2) -> kxk stride (C/2) -> 1x1 (C, no BN / ReLU) + shortcut, then BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, momentum: float) -> None:
        super().__init__()
        half = out_channels // 2
        self.shortcut = (
            SameConv2d(in_channels, out_channels, 1, stride)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.conv1 = ConvBlock(SameConv2d(in_channels, half, 1), half, nn.ReLU(), momentum)
        self.conv2 = ConvBlock(SameConv2d(half, half, kernel, stride), half, nn.ReLU(), momentum)
        self.conv3 = SameConv2d(half, out_channels, 1)
        self.bn = batch_norm(out_channels, momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x)))


class ResFCN256(nn.Module):
    """resfcn256: (B, in_channels, S, S) image in [0, 1] -> (B, 3, S, S) position map / (1.1 S) in (0, 1).

    base_channels 16 and S 256 are the original; S must be a multiple of 32. bn_momentum: PyTorch's convention
    (TF's decay 0.999 is momentum 0.001; the default 0.1 suits short runs)."""

    def __init__(
        self, in_channels: int = 3, base_channels: int = 16, kernel_size: int = 4, bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        if base_channels < 1 or kernel_size < 1:
            raise ValueError(f"base_channels and kernel_size must be >= 1, got {base_channels}, {kernel_size}")
        size, k, m = int(base_channels), int(kernel_size), float(bn_momentum)
        self.base_channels = size
        self.stem = ConvBlock(SameConv2d(in_channels, size, k), size, nn.ReLU(), m)
        blocks, channels = [], size
        for factor, stride in ENCODER:
            blocks.append(ResBlock(channels, size * factor, k, stride, m))
            channels = size * factor
        self.encoder = nn.Sequential(*blocks)
        layers = []
        for factor, stride in DECODER:
            deconv = SameConvTranspose2d(channels, size * factor, k, stride)
            layers.append(ConvBlock(deconv, size * factor, nn.ReLU(), m))
            channels = size * factor
        for index in range(3):
            activation = nn.Sigmoid() if index == 2 else nn.ReLU()
            layers.append(ConvBlock(SameConvTranspose2d(channels, 3, k, 1), 3, activation, m))
            channels = 3
        self.decoder = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] % 32 or image.shape[-2] % 32:
            raise ValueError(f"resfcn256 needs a side divisible by 32, got {tuple(image.shape[-2:])}")
        return self.decoder(self.encoder(self.stem(image)))


def count_parameters(network: nn.Module) -> tuple[int, int]:
    """(trainable parameters, BN running-statistic elements) of a network."""
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    running = sum(b.numel() for name, b in network.named_buffers() if name.endswith(("running_mean", "running_var")))
    return trainable, running


class WeightedPositionMapLoss(nn.Module):
    """The original's loss: squared position-map error weighted per UV texel (uv_weight_mask / 16: keypoints 16,
    eyes / nose / mouth 4, face 3, outside 0), summed and divided by the number of non-zero weights over the three
    channels (TF's mean_squared_error with weights, the fork's train.py). Maps in units of 1.1 x image size."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        weights = weights.to(prediction.dtype)
        if weights.dim() == 2:
            weights = weights[None, None]
        elif weights.dim() == 3:
            weights = weights[:, None]
        weights = weights.expand_as(prediction)
        count = (weights != 0).sum().clamp(min=1)
        return (weights * (prediction - target) ** 2).sum() / count


# ---------------------------------------------------------------------------------------------------- TF weights
_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def _conv_and_bn(tf_layer: str, torch_conv: str, torch_bn: str | None) -> Iterator[tuple[str, str]]:
    yield f"{tf_layer}/weights", f"{torch_conv}.weight"
    if torch_bn is not None:
        for tf_name, torch_name in _BN_NAMES.items():
            yield f"{tf_layer}/BatchNorm/{tf_name}", f"{torch_bn}.{torch_name}"


def tf_variable_names(network: ResFCN256, scope: str = "resfcn256") -> dict[str, str]:
    """{TF variable name: state-dict key}: TF-slim's default layer names (Conv, Conv_1, ...; resBlock, resBlock_1,
    ...; Conv2d_transpose, Conv2d_transpose_1, ...) in the order predictor.py creates them."""
    names = dict(_conv_and_bn(f"{scope}/Conv", "stem.conv", "stem.bn"))
    for index, block in enumerate(network.encoder):
        prefix = f"{scope}/resBlock" + (f"_{index}" if index else "")
        if isinstance(block.shortcut, SameConv2d):
            names[f"{prefix}/shortcut/weights"] = f"encoder.{index}.shortcut.weight"
        names.update(_conv_and_bn(f"{prefix}/Conv", f"encoder.{index}.conv1.conv", f"encoder.{index}.conv1.bn"))
        names.update(_conv_and_bn(f"{prefix}/Conv_1", f"encoder.{index}.conv2.conv", f"encoder.{index}.conv2.bn"))
        names.update(_conv_and_bn(f"{prefix}/Conv_2", f"encoder.{index}.conv3", None))
        for tf_name, torch_name in _BN_NAMES.items():
            names[f"{prefix}/BatchNorm/{tf_name}"] = f"encoder.{index}.bn.{torch_name}"
    for index in range(len(network.decoder)):
        layer = f"{scope}/Conv2d_transpose" + (f"_{index}" if index else "")
        names.update(_conv_and_bn(layer, f"decoder.{index}.conv", f"decoder.{index}.bn"))
    return names


def import_tf_weights(network: ResFCN256, arrays: Mapping[str, np.ndarray], scope: str = "resfcn256") -> None:
    """Load TF-named arrays (conv kernels HWIO, transposed-conv kernels HW-out-in) into `network`; every variable
    must be present with the right shape, else one CheckpointError naming them. Extra TF variables (optimizer
    slots, global_step) are ignored."""
    names = tf_variable_names(network, scope)
    state = network.state_dict()
    missing = [tf for tf in names if tf not in arrays]
    if missing:
        shown = ", ".join(missing[:4]) + (f" ... ({len(missing)} in all)" if len(missing) > 4 else "")
        raise CheckpointError(f"the TF weights lack {shown}: not a resfcn256 checkpoint of this width")
    converted, wrong = {}, []
    for tf_name, key in names.items():
        value = np.asarray(arrays[tf_name], dtype=np.float32)
        if value.ndim == 4:  # conv HWIO -> OIHW; transposed conv HW(out)(in) -> (in)(out)HW: the same permutation
            value = value.transpose(3, 2, 0, 1)
        if tuple(value.shape) != tuple(state[key].shape):
            wrong.append(f"{tf_name} {tuple(value.shape)} vs {key} {tuple(state[key].shape)}")
            continue
        converted[key] = torch.from_numpy(np.ascontiguousarray(value))
    if wrong:
        raise CheckpointError(f"TF weights of the wrong shape: {'; '.join(wrong[:3])}")
    network.load_state_dict({**state, **converted})


def export_tf_arrays(network: ResFCN256, scope: str = "resfcn256") -> dict[str, np.ndarray]:
    """The inverse of import_tf_weights: this network's weights under the original's TF names and layouts."""
    state = network.state_dict()
    out = {}
    for tf_name, key in tf_variable_names(network, scope).items():
        value = state[key].detach().cpu().numpy()
        out[tf_name] = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
    return out


def load_tf_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """TF-named arrays from a `.npz`, or from a TF checkpoint prefix (e.g. Data/net-data/256_256_resfcn256_weight,
    read without TensorFlow by src.models.components.prnet_tf_bundle)."""
    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise CheckpointError(f"{path}: not found")
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    if not Path(f"{path}.index").is_file():
        raise CheckpointError(f"{path}: neither a .npz nor a TF checkpoint prefix ({path}.index not found)")
    from src.models.components.prnet_tf_bundle import read_tf_checkpoint

    return read_tf_checkpoint(path)
