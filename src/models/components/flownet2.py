"""FlowNet2 (Ilg et al. 2017) in plain PyTorch, loading the original flownet2-pytorch checkpoint unchanged.

vid2vid and Head2Head use a frozen FlowNet2 for the reference flow of their warp loss and temporal discriminators.
The stack: FlowNetC -> warp -> FlowNetS -> warp -> FlowNetS, FlowNetSD in parallel, and a fusion net; 162,518,834
parameters (about 620 MB in fp32). Module and key names follow the original (`flownetc.conv1.0.weight`, ...), so
`FlowNet2_checkpoint.pth.tar` ({'state_dict': ...}) loads with no missing or unexpected key
(tests/flownet2/data/flownet2-state-dict.tsv lists all 220). Its CUDA layers are tensor code (flownet2_ops.py).

Faithful details: LeakyReLU(0.1) after every conv / deconv of the encoders and decoders, none after the
`inter_conv`s; FlowNetS's upsampling deconvs have no bias; the SD branch's flow is DIVIDED by div_flow before the
fusion (the original's line, kept because the released fusion weights were trained with it); bilinear upsampling
as the original runs under PyTorch >= 0.4 (align_corners=False). Inputs are normalised per image pair and channel
by subtracting the pair's mean and dividing by rgb_max.

`FlowNet2Estimator` is the vid2vid/Head2Head wrapper: sizes rounded to a multiple of 64 (down, at least 64), the
flow rescaled back to the input size, and the confidence mask ||im1 - warp(im2, flow)||^2 < 0.02.
`load_flownet2` reads the original checkpoint with one-line errors; `DISFlowEstimator` is the light option for
users without those weights (OpenCV's DIS optical flow behind the same interface).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from src.models.components.flownet2_ops import ChannelNorm, Correlation, Resample2d, resample2d
from src.utils.errors import CheckpointError

FLOWNET2_PARAMETERS = 162_518_834
FLOWNET2_WEIGHTS_FILE = "FlowNet2_checkpoint.pth.tar"
CONFIDENCE_THRESHOLD = 0.02


def _conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """conv + LeakyReLU(0.1) (key `<name>.0.*`)."""
    padding = (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=True), nn.LeakyReLU(0.1, inplace=True)
    )


def _inter_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv without activation (the original's i_conv; key `<name>.0.*`)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=True))


def _deconv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=True), nn.LeakyReLU(0.1, inplace=True)
    )


def _predict_flow(in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, 2, 3, 1, 1, bias=True)


def _upsample_flow(bias: bool) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=bias)


class _RefinementDecoder(nn.Module):
    """The coarse-to-fine decoder of FlowNetC / FlowNetS: flow6 .. flow2 with concatenated skips."""

    def _build_decoder(self, bias: bool) -> None:
        self.deconv5 = _deconv(1024, 512)
        self.deconv4 = _deconv(1026, 256)
        self.deconv3 = _deconv(770, 128)
        self.deconv2 = _deconv(386, 64)
        self.predict_flow6 = _predict_flow(1024)
        self.predict_flow5 = _predict_flow(1026)
        self.predict_flow4 = _predict_flow(770)
        self.predict_flow3 = _predict_flow(386)
        self.predict_flow2 = _predict_flow(194)
        self.upsampled_flow6_to_5 = _upsample_flow(bias)
        self.upsampled_flow5_to_4 = _upsample_flow(bias)
        self.upsampled_flow4_to_3 = _upsample_flow(bias)
        self.upsampled_flow3_to_2 = _upsample_flow(bias)

    def _decode(self, conv6: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """skips: conv5, conv4, conv3, conv2 outputs; returns flow2 (1/4 resolution)."""
        features = conv6
        flow = self.predict_flow6(features)
        steps = (
            (self.deconv5, self.upsampled_flow6_to_5, self.predict_flow5),
            (self.deconv4, self.upsampled_flow5_to_4, self.predict_flow4),
            (self.deconv3, self.upsampled_flow4_to_3, self.predict_flow3),
            (self.deconv2, self.upsampled_flow3_to_2, self.predict_flow2),
        )
        for (deconv, upsample, predict), skip in zip(steps, skips):
            features = torch.cat([skip, deconv(features), upsample(flow)], 1)
            flow = predict(features)
        return flow


class FlowNetC(_RefinementDecoder):
    """Siamese encoder + correlation (441 channels) + 32-channel redirect; input (B, 6, H, W), two RGB images."""

    def __init__(self, rows_per_chunk: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(3, 64, 7, 2)
        self.conv2 = _conv(64, 128, 5, 2)
        self.conv3 = _conv(128, 256, 5, 2)
        self.conv_redir = _conv(256, 32, 1, 1)
        self.corr = Correlation(max_displacement=20, stride2=2, rows_per_chunk=rows_per_chunk)
        self.corr_activation = nn.LeakyReLU(0.1, inplace=True)
        self.conv3_1 = _conv(473, 256)
        self.conv4 = _conv(256, 512, 3, 2)
        self.conv4_1 = _conv(512, 512)
        self.conv5 = _conv(512, 512, 3, 2)
        self.conv5_1 = _conv(512, 512)
        self.conv6 = _conv(512, 1024, 3, 2)
        self.conv6_1 = _conv(1024, 1024)
        self._build_decoder(bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = x[:, :3], x[:, 3:]
        conv2a = self.conv2(self.conv1(first))
        conv3a = self.conv3(conv2a)
        conv3b = self.conv3(self.conv2(self.conv1(second)))
        cost = self.corr_activation(self.corr(conv3a, conv3b))
        conv3_1 = self.conv3_1(torch.cat([self.conv_redir(conv3a), cost], 1))
        conv4 = self.conv4_1(self.conv4(conv3_1))
        conv5 = self.conv5_1(self.conv5(conv4))
        conv6 = self.conv6_1(self.conv6(conv5))
        return self._decode(conv6, [conv5, conv4, conv3_1, conv2a])


class FlowNetS(_RefinementDecoder):
    """Plain encoder-decoder on stacked inputs (12 channels inside FlowNet2); upsampling deconvs without bias."""

    def __init__(self, input_channels: int = 12) -> None:
        super().__init__()
        self.conv1 = _conv(input_channels, 64, 7, 2)
        self.conv2 = _conv(64, 128, 5, 2)
        self.conv3 = _conv(128, 256, 5, 2)
        self.conv3_1 = _conv(256, 256)
        self.conv4 = _conv(256, 512, 3, 2)
        self.conv4_1 = _conv(512, 512)
        self.conv5 = _conv(512, 512, 3, 2)
        self.conv5_1 = _conv(512, 512)
        self.conv6 = _conv(512, 1024, 3, 2)
        self.conv6_1 = _conv(1024, 1024)
        self._build_decoder(bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv2 = self.conv2(self.conv1(x))
        conv3 = self.conv3_1(self.conv3(conv2))
        conv4 = self.conv4_1(self.conv4(conv3))
        conv5 = self.conv5_1(self.conv5(conv4))
        conv6 = self.conv6_1(self.conv6(conv5))
        return self._decode(conv6, [conv5, conv4, conv3, conv2])


class FlowNetSD(nn.Module):
    """FlowNet2's small-displacement net: 3x3 kernels, an extra stride-1 stem, inter_convs before each flow."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = _conv(6, 64)
        self.conv1 = _conv(64, 64, 3, 2)
        self.conv1_1 = _conv(64, 128)
        self.conv2 = _conv(128, 128, 3, 2)
        self.conv2_1 = _conv(128, 128)
        self.conv3 = _conv(128, 256, 3, 2)
        self.conv3_1 = _conv(256, 256)
        self.conv4 = _conv(256, 512, 3, 2)
        self.conv4_1 = _conv(512, 512)
        self.conv5 = _conv(512, 512, 3, 2)
        self.conv5_1 = _conv(512, 512)
        self.conv6 = _conv(512, 1024, 3, 2)
        self.conv6_1 = _conv(1024, 1024)
        self.deconv5 = _deconv(1024, 512)
        self.deconv4 = _deconv(1026, 256)
        self.deconv3 = _deconv(770, 128)
        self.deconv2 = _deconv(386, 64)
        self.inter_conv5 = _inter_conv(1026, 512)
        self.inter_conv4 = _inter_conv(770, 256)
        self.inter_conv3 = _inter_conv(386, 128)
        self.inter_conv2 = _inter_conv(194, 64)
        self.predict_flow6 = _predict_flow(1024)
        self.predict_flow5 = _predict_flow(512)
        self.predict_flow4 = _predict_flow(256)
        self.predict_flow3 = _predict_flow(128)
        self.predict_flow2 = _predict_flow(64)
        self.upsampled_flow6_to_5 = _upsample_flow(True)
        self.upsampled_flow5_to_4 = _upsample_flow(True)
        self.upsampled_flow4_to_3 = _upsample_flow(True)
        self.upsampled_flow3_to_2 = _upsample_flow(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv0 = self.conv0(x)
        conv1 = self.conv1_1(self.conv1(conv0))
        conv2 = self.conv2_1(self.conv2(conv1))
        conv3 = self.conv3_1(self.conv3(conv2))
        conv4 = self.conv4_1(self.conv4(conv3))
        conv5 = self.conv5_1(self.conv5(conv4))
        features = self.conv6_1(self.conv6(conv5))
        flow = self.predict_flow6(features)
        steps = (
            (self.deconv5, self.upsampled_flow6_to_5, self.inter_conv5, self.predict_flow5, conv5),
            (self.deconv4, self.upsampled_flow5_to_4, self.inter_conv4, self.predict_flow4, conv4),
            (self.deconv3, self.upsampled_flow4_to_3, self.inter_conv3, self.predict_flow3, conv3),
            (self.deconv2, self.upsampled_flow3_to_2, self.inter_conv2, self.predict_flow2, conv2),
        )
        for deconv, upsample, inter, predict, skip in steps:
            features = torch.cat([skip, deconv(features), upsample(flow)], 1)
            flow = predict(inter(features))
        return flow


class FlowNetFusion(nn.Module):
    """Fuses the SD and CSS flows at full resolution (input 11 channels: image, 2 flows, their norms, 2 errors)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = _conv(11, 64)
        self.conv1 = _conv(64, 64, 3, 2)
        self.conv1_1 = _conv(64, 128)
        self.conv2 = _conv(128, 128, 3, 2)
        self.conv2_1 = _conv(128, 128)
        self.deconv1 = _deconv(128, 32)
        self.deconv0 = _deconv(162, 16)
        self.inter_conv1 = _inter_conv(162, 32)
        self.inter_conv0 = _inter_conv(82, 16)
        self.predict_flow2 = _predict_flow(128)
        self.predict_flow1 = _predict_flow(32)
        self.predict_flow0 = _predict_flow(16)
        self.upsampled_flow2_to_1 = _upsample_flow(True)
        self.upsampled_flow1_to_0 = _upsample_flow(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv0 = self.conv0(x)
        conv1 = self.conv1_1(self.conv1(conv0))
        conv2 = self.conv2_1(self.conv2(conv1))
        flow2 = self.predict_flow2(conv2)
        concat1 = torch.cat([conv1, self.deconv1(conv2), self.upsampled_flow2_to_1(flow2)], 1)
        flow1 = self.predict_flow1(self.inter_conv1(concat1))
        concat0 = torch.cat([conv0, self.deconv0(concat1), self.upsampled_flow1_to_0(flow1)], 1)
        return self.predict_flow0(self.inter_conv0(concat0))


class FlowNet2(nn.Module):
    """The full stack; forward(first, second) -> flow (B, 2, H, W) in pixels with first(p) ~ second(p + flow).

    H and W must be multiples of 64 (FlowNet2Estimator resizes). rgb_max: the value range divisor of the inputs
    (the original trains on 0..255 with 255; vid2vid / Head2Head feed [-1, 1] images with 1).
    """

    def __init__(self, rgb_max: float = 1.0, div_flow: float = 20.0, correlation_rows_per_chunk: int = 1) -> None:
        super().__init__()
        self.rgb_max = float(rgb_max)
        self.div_flow = float(div_flow)
        self.channelnorm = ChannelNorm()
        self.resample = Resample2d()
        self.flownetc = FlowNetC(correlation_rows_per_chunk)
        self.flownets_1 = FlowNetS()
        self.flownets_2 = FlowNetS()
        self.flownets_d = FlowNetSD()
        self.flownetfusion = FlowNetFusion()

    def _refine_input(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """[both images, second warped by flow, flow / div_flow, ||first - warped||] (12 channels)."""
        warped = self.resample(x[:, 3:], flow)
        error = self.channelnorm(x[:, :3] - warped)
        return torch.cat([x, warped, flow / self.div_flow, error], 1)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        height, width = first.shape[-2:]
        if height % 64 or width % 64:
            raise ValueError(f"FlowNet2 needs sizes that are multiples of 64, got {height}x{width}")
        pair = torch.stack([first, second], 2)  # (B, 3, 2, H, W): the original's input layout
        mean = pair.flatten(2).mean(-1)[:, :, None, None, None]
        pair = (pair - mean) / self.rgb_max
        x = torch.cat([pair[:, :, 0], pair[:, :, 1]], 1)

        def up_bilinear(flow: torch.Tensor) -> torch.Tensor:
            return F.interpolate(flow, scale_factor=4, mode="bilinear", align_corners=False)

        def up_nearest(flow: torch.Tensor) -> torch.Tensor:
            return F.interpolate(flow, scale_factor=4, mode="nearest")

        flow_c = up_bilinear(self.flownetc(x) * self.div_flow)
        flow_s1 = up_bilinear(self.flownets_1(self._refine_input(x, flow_c)) * self.div_flow)
        flow_s2 = up_nearest(self.flownets_2(self._refine_input(x, flow_s1)) * self.div_flow)
        error_s2 = self.channelnorm(x[:, :3] - self.resample(x[:, 3:], flow_s2))
        flow_sd = up_nearest(self.flownets_d(x) / self.div_flow)  # sic: divided, as the original
        error_sd = self.channelnorm(x[:, :3] - self.resample(x[:, 3:], flow_sd))
        fusion_input = [
            x[:, :3],
            flow_sd,
            flow_s2,
            self.channelnorm(flow_sd),
            self.channelnorm(flow_s2),
            error_sd,
            error_s2,
        ]
        return self.flownetfusion(torch.cat(fusion_input, 1))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------- weights
def default_flownet2_path() -> Path:
    from src.models.components.backbones import weights_dir

    return weights_dir() / FLOWNET2_WEIGHTS_FILE


def _first_keys(keys: list[str], count: int = 3) -> str:
    return ", ".join(keys[:count]) + (", ..." if len(keys) > count else "")


def check_flownet2_state(state: dict[str, torch.Tensor], source: str, model: nn.Module | None = None) -> None:
    """One CheckpointError line naming the first mismatched keys when `state` is not FlowNet2's."""
    expected = (model or FlowNet2()).state_dict()
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    reshaped = sorted(
        k for k in expected if k in state and tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)
    )
    if not (missing or unexpected or reshaped):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_first_keys(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_first_keys(unexpected)})")
    if reshaped:
        parts.append(f"{len(reshaped)} with other shapes ({_first_keys(reshaped)})")
    raise CheckpointError(f"{source}: not a FlowNet2 checkpoint: {'; '.join(parts)}")


def load_flownet2(
    path: str | os.PathLike | None = None, rgb_max: float = 1.0, correlation_rows_per_chunk: int = 1
) -> FlowNet2:
    """FlowNet2 with the original weights (`FlowNet2_checkpoint.pth.tar`, {'state_dict': ...}), frozen, eval mode.

    Default path: $FACESYNTH_WEIGHTS_DIR/FlowNet2_checkpoint.pth.tar. Nothing is downloaded.
    """
    file = Path(path).expanduser() if path else default_flownet2_path()
    if not file.is_file():
        raise CheckpointError(
            f"FlowNet2 weights not found: {file} (put the original flownet2-pytorch {FLOWNET2_WEIGHTS_FILE} "
            f"there, or in $FACESYNTH_WEIGHTS_DIR; or use the light flow estimator: "
            "src.models.components.flownet2.DISFlowEstimator)"
        )
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated / not a torch file
        raise CheckpointError(f"{file}: could not be read as a torch checkpoint ({type(err).__name__})") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: holds a {type(checkpoint).__name__}, not a FlowNet2 state dict")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    model = FlowNet2(rgb_max=rgb_max, correlation_rows_per_chunk=correlation_rows_per_chunk)
    check_flownet2_state(state, str(file), model)
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------- estimators
def confidence_mask(first: torch.Tensor, second: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """1 where ||first - warp(second, flow)||^2 < 0.02 (the original's flow confidence), else 0."""
    error = ((first - resample2d(second, flow)) ** 2).sum(1, keepdim=True)
    return (error < CONFIDENCE_THRESHOLD).to(first.dtype)


class FlowEstimator(nn.Module):
    """Reference-flow interface: forward(first, second) -> (flow, confidence), frozen, no gradient.

    Inputs: images in [-1, 1], (B, 3, H, W) or (B, T, 3, H, W). flow (…, 2, H, W) in pixels maps `first` to
    `second` (first(p) ~ second(p + flow(p))); confidence (…, 1, H, W) in {0, 1}. Subclasses implement `_flow`.
    The estimator holds no state-dict entries, so systems using it keep small checkpoints.
    """

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if first.shape != second.shape or first.dim() not in (4, 5) or first.shape[-3] != 3:
            raise ValueError(f"flow estimator: two RGB tensors of one shape needed, got {first.shape}, {second.shape}")
        leading = first.shape[:-3]
        size = first.shape[-2:]
        if first.numel() == 0:  # no frame pairs (e.g. a one-frame chunk at a sequence start): nothing to estimate
            return first.new_zeros(*leading, 2, *size), first.new_zeros(*leading, 1, *size)
        first4, second4 = first.reshape(-1, *first.shape[-3:]), second.reshape(-1, *second.shape[-3:])
        with torch.no_grad():
            flow = self._flow(first4.float(), second4.float())
            confidence = confidence_mask(first4.float(), second4.float(), flow)
        return flow.reshape(*leading, 2, *size).to(first.dtype), confidence.reshape(*leading, 1, *size).to(first.dtype)

    def _flow(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FlowNet2Estimator(FlowEstimator):
    """The vid2vid / Head2Head FlowNet wrapper around the original FlowNet2 weights.

    Sizes are rounded down to a multiple of 64 (at least 64) with bilinear resizing, the flow is resized back and
    scaled per axis by old/new size (the original scales both axes by the height ratio: the same for square
    frames). The FlowNet2 weights are kept outside the state dict (620 MB would enter every checkpoint).
    """

    def __init__(self, weights: str | None = None, rgb_max: float = 1.0, correlation_rows_per_chunk: int = 1) -> None:
        super().__init__()
        self._network = [load_flownet2(weights, rgb_max, correlation_rows_per_chunk)]

    @property
    def network(self) -> FlowNet2:
        return self._network[0]

    def _flow(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        net = self.network
        if next(net.parameters()).device != first.device:
            self._network[0] = net = net.to(first.device)
        height, width = first.shape[-2:]
        new_h, new_w = max(64, height // 64 * 64), max(64, width // 64 * 64)
        resized = (new_h, new_w) != (height, width)
        if resized:
            first = F.interpolate(first, size=(new_h, new_w), mode="bilinear", align_corners=False)
            second = F.interpolate(second, size=(new_h, new_w), mode="bilinear", align_corners=False)
        flow = net(first, second)
        if resized:
            flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
            flow = flow * torch.tensor([width / new_w, height / new_h], device=flow.device).view(1, 2, 1, 1)
        return flow


class DISFlowEstimator(FlowEstimator):
    """The light option: OpenCV's DIS optical flow (Kroeger et al. 2016) on grey images, no weights needed.

    preset: "ultrafast", "fast" or "medium". Runs on the CPU (GPU tensors make a round trip); about 1-3 ms per
    128x128 pair. Good enough for the warp loss and the temporal discriminators' flow channels.
    """

    PRESETS: ClassVar[dict[str, int]] = {"ultrafast": 0, "fast": 1, "medium": 2}

    def __init__(self, preset: str = "medium") -> None:
        super().__init__()
        if preset not in self.PRESETS:
            raise ValueError(f"DISFlowEstimator preset must be one of {sorted(self.PRESETS)}, got {preset!r}")
        self.preset = preset

    def _flow(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        import cv2

        dis = cv2.DISOpticalFlow_create(self.PRESETS[self.preset])
        weights = torch.tensor([0.299, 0.587, 0.114], device=first.device).view(1, 3, 1, 1)

        def grey(images: torch.Tensor) -> np.ndarray:
            values = ((images.clamp(-1, 1) + 1) * 127.5 * weights).sum(1)
            return values.round().to(torch.uint8).cpu().numpy()

        firsts, seconds = grey(first), grey(second)
        flows = [dis.calc(a, b, None) for a, b in zip(firsts, seconds)]
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).to(first.device, torch.float32)

    def extra_repr(self) -> str:
        return f"preset={self.preset}"


FLOW_ESTIMATORS = ("flownet2", "dis")


def make_flow_estimator(
    kind: str = "flownet2",
    weights: str | None = None,
    rgb_max: float = 1.0,
    correlation_rows_per_chunk: int = 1,
    preset: str = "medium",
) -> FlowEstimator:
    """One config entry for both estimators (`kind: flownet2 | dis`), so a config switches with one key."""
    if kind == "flownet2":
        return FlowNet2Estimator(weights, rgb_max, correlation_rows_per_chunk)
    if kind == "dis":
        return DISFlowEstimator(preset)
    raise ValueError(f"flow estimator kind must be one of {FLOW_ESTIMATORS}, got {kind!r}")


def build_flow_estimator(spec: Any) -> FlowEstimator:
    """A FlowEstimator from a module or a `_target_` config (kept out of every state dict by its owner)."""
    if isinstance(spec, FlowEstimator):
        return spec
    import hydra

    estimator = hydra.utils.instantiate(spec)
    if not isinstance(estimator, FlowEstimator):
        raise TypeError(f"flow estimator config built a {type(estimator).__name__}, not a FlowEstimator")
    return estimator
