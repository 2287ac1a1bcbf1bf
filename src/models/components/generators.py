"""Image-to-image generators: pix2pix U-Net / ResNet and pix2pixHD global / local-enhancer networks.

The layouts follow the reference implementations closely enough that parameter counts match exactly
(unet_512 with BatchNorm, 1 -> 4 channels: 66,998,916) and that original checkpoints load either directly
(ResnetGenerator, GlobalGenerator and LocalEnhancer keep the original ``model`` / ``model1_1`` key layout) or
through ``importers.import_pix2pix_generator`` (the U-Net uses readable ``down`` / ``submodule`` / ``up``
names instead of the original's ``model.model.1.model.3...``).

All generators take images in [-1, 1] (NCHW) and return tanh outputs of the same spatial size. Eval-mode
BatchNorm / dropout behaviour is explicit (``inference_norm``, ``inference_dropout``); see ``norms.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.components.norms import (
    SwitchableDropout,
    conv_bias_for,
    get_norm_layer,
    init_weights,
    set_norm_inference_mode,
)

UNET_DEPTHS = {"unet_128": 7, "unet_256": 8, "unet_512": 9}
RESNET_BLOCKS = {"resnet_6blocks": 6, "resnet_9blocks": 9}
GENERATOR_NAMES = (*UNET_DEPTHS, *RESNET_BLOCKS, "global", "local")


def _finish(module: nn.Module, init_gain: float, inference_norm: str, inference_dropout: bool) -> None:
    init_weights(module, init_gain)
    set_norm_inference_mode(module, inference_norm, inference_dropout)


def check_widths(**widths: int) -> None:
    """Channel widths (ngf, ndf, ...) must be >= 1: a 0-filter conv builds fine and only fails at the first forward,
    where the error would point at the input size instead."""
    for name, value in widths.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class UnetSkipBlock(nn.Module):
    """One U-Net level: ``down`` -> ``submodule`` -> ``up``, concatenated with the block input (skip).

    outermost: down = [conv], up = [relu, convT, tanh], no concat (its output is the network output).
    innermost: down = [lrelu, conv], up = [relu, convT, norm] (no norm on the 1x1 bottleneck itself).
    middle:    down = [lrelu, conv, norm], up = [relu, convT, norm, (dropout 0.5)].

    The original's LeakyReLU is in-place, so its skip actually carries LeakyReLU(x); every skip is consumed by
    the parent's ReLU and ReLU(LeakyReLU(x)) == ReLU(x), so concatenating x is identical (values and gradients).
    conv_bias: None = pix2pix's rule (biases only where no BatchNorm follows); True keeps them everywhere (DFDN's
    released parameter counts need them).
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
        conv_bias: bool | None = None,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer = get_norm_layer(norm)
        bias = conv_bias_for(norm) if conv_bias is None else bool(conv_bias)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        up_in = inner_nc if innermost else inner_nc * 2
        if outermost:
            down: list[nn.Module] = [down_conv]
            up: list[nn.Module] = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer_nc, 4, stride=2, padding=1), nn.Tanh()]
        else:
            down = [nn.LeakyReLU(0.2), down_conv] + ([] if innermost else [norm_layer(inner_nc)])
            up = [
                nn.ReLU(),
                nn.ConvTranspose2d(up_in, outer_nc, 4, stride=2, padding=1, bias=bias),
                norm_layer(outer_nc),
            ]
            if use_dropout and not innermost:
                up.append(SwitchableDropout(0.5))
        self.down = nn.Sequential(*down)
        self.submodule = submodule if submodule is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.submodule(self.down(x)))
        return y if self.outermost else torch.cat([x, y], 1)


class UnetGenerator(nn.Module):
    """pix2pix U-Net with ``num_downs`` stride-2 levels (input side must be divisible by 2**num_downs).

    Level widths ngf * min(2**i, 8) from the outside in (64, 128, 256, 512, 512, ... at ngf 64); dropout (when
    on) in the 512 -> 512 levels between the fourth and the innermost, as pix2pix. Fewer than 5 levels (DFDN's
    small refiners) simply stop earlier. conv_bias: see UnetSkipBlock (None = pix2pix's rule).
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        num_downs: int,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
        init_gain: float = 0.02,
        inference_norm: str = "running",
        inference_dropout: bool = False,
        conv_bias: bool | None = None,
    ) -> None:
        check_widths(ngf=ngf)
        super().__init__()
        if not isinstance(num_downs, int) or num_downs < 2:
            raise ValueError(f"num_downs must be an integer >= 2 (outermost + innermost level), got {num_downs!r}")
        self.num_downs = num_downs
        widths = [ngf * min(2**level, 8) for level in range(num_downs)]
        block: nn.Module | None = None
        for level in reversed(range(1, num_downs)):  # innermost first, as pix2pix builds it
            block = UnetSkipBlock(
                widths[level - 1],
                widths[level],
                submodule=block,
                innermost=level == num_downs - 1,
                norm=norm,
                use_dropout=use_dropout and 4 <= level < num_downs - 1,
                conv_bias=conv_bias,
            )
        self.unet = UnetSkipBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm, conv_bias=conv_bias
        )
        _finish(self, init_gain, inference_norm, inference_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.num_downs
        if not torch.jit.is_tracing() and (x.shape[-1] % factor or x.shape[-2] % factor):
            raise ValueError(
                f"UnetGenerator with {self.num_downs} downsamplings needs H and W divisible by {factor}, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.unet(x)


class ResnetBlock(nn.Module):
    """Residual block: pad, conv3x3, norm, relu, (dropout), pad, conv3x3, norm; output x + block(x)."""

    def __init__(
        self, dim: int, norm: str = "batch", use_dropout: bool = False, use_bias: bool = True, padding: str = "reflect"
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        layers: list[nn.Module] = []
        for i in range(2):
            if padding == "reflect":
                layers.append(nn.ReflectionPad2d(1))
            elif padding == "replicate":
                layers.append(nn.ReplicationPad2d(1))
            elif padding != "zero":
                raise ValueError(f"padding must be reflect, replicate or zero, got {padding!r}")
            layers += [nn.Conv2d(dim, dim, 3, padding=1 if padding == "zero" else 0, bias=use_bias), norm_layer(dim)]
            if i == 0:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(SwitchableDropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """pix2pix / CycleGAN ResNet generator: 7x7 stem, 2 downsamplings, ``n_blocks`` residual blocks, 2 ups.

    State-dict keys equal the original's (``model.<i>...``), so original checkpoints load directly.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "batch",
        use_dropout: bool = True,
        padding: str = "reflect",
        init_gain: float = 0.02,
        inference_norm: str = "running",
        inference_dropout: bool = False,
    ) -> None:
        check_widths(ngf=ngf)
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        norm_layer = get_norm_layer(norm)
        bias = conv_bias_for(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, 7, padding=0, bias=bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout, bias, padding) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        _finish(self, init_gain, inference_norm, inference_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _global_layers(
    input_nc: int, output_nc: int, ngf: int, n_downsampling: int, n_blocks: int, norm: str, padding: str
) -> list[nn.Module]:
    """pix2pixHD GlobalGenerator layer list (convs keep their bias whatever the norm, as in pix2pixHD)."""
    norm_layer = get_norm_layer(norm)
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), norm_layer(ngf), nn.ReLU(True)]
    for i in range(n_downsampling):
        mult = 2**i
        layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1), norm_layer(ngf * mult * 2), nn.ReLU(True)]
    mult = 2**n_downsampling
    layers += [ResnetBlock(ngf * mult, norm, False, True, padding) for _ in range(n_blocks)]
    for i in range(n_downsampling):
        mult = 2 ** (n_downsampling - i)
        layers += [
            nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1),
            norm_layer(ngf * mult // 2),
            nn.ReLU(True),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
    return layers


class GlobalGenerator(nn.Module):
    """pix2pixHD global generator G1 (keys ``model.<i>...`` as in pix2pixHD)."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 9,
        norm: str = "instance",
        padding: str = "reflect",
        init_gain: float = 0.02,
        inference_norm: str = "running",
    ) -> None:
        check_widths(ngf=ngf)
        super().__init__()
        self.n_downsampling = n_downsampling
        self.model = nn.Sequential(*_global_layers(input_nc, output_nc, ngf, n_downsampling, n_blocks, norm, padding))
        _finish(self, init_gain, inference_norm, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LocalEnhancer(nn.Module):
    """pix2pixHD local enhancer: a global generator (ngf * 2**n_local_enhancers, its last 3 layers removed)
    running on a 2**n-times downsampled input, refined by ``n_local_enhancers`` full-resolution branches.

    Keys as in pix2pixHD: ``model`` (global part), ``model<n>_1`` (downsample branch), ``model<n>_2`` (upsample).
    Train the global part first, then ``load_global_generator`` its weights (the pix2pixHD recipe).
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 32,
        n_downsample_global: int = 3,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm: str = "instance",
        padding: str = "reflect",
        init_gain: float = 0.02,
        inference_norm: str = "running",
    ) -> None:
        super().__init__()
        if n_local_enhancers < 1:
            raise ValueError(f"n_local_enhancers must be >= 1, got {n_local_enhancers}")
        self.n_local_enhancers = n_local_enhancers
        self.global_ngf = ngf * 2**n_local_enhancers
        global_layers = _global_layers(
            input_nc, output_nc, self.global_ngf, n_downsample_global, n_blocks_global, norm, padding
        )
        self.model = nn.Sequential(*global_layers[:-3])
        norm_layer = get_norm_layer(norm)
        for n in range(1, n_local_enhancers + 1):
            branch_ngf = ngf * 2 ** (n_local_enhancers - n)
            down = [
                nn.ReflectionPad2d(3),
                nn.Conv2d(input_nc, branch_ngf, 7),
                norm_layer(branch_ngf),
                nn.ReLU(True),
                nn.Conv2d(branch_ngf, branch_ngf * 2, 3, 2, 1),
                norm_layer(branch_ngf * 2),
                nn.ReLU(True),
            ]
            up: list[nn.Module] = [
                ResnetBlock(branch_ngf * 2, norm, False, True, padding) for _ in range(n_blocks_local)
            ]
            up += [
                nn.ConvTranspose2d(branch_ngf * 2, branch_ngf, 3, 2, 1, output_padding=1),
                norm_layer(branch_ngf),
                nn.ReLU(True),
            ]
            if n == n_local_enhancers:
                up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
            setattr(self, f"model{n}_1", nn.Sequential(*down))
            setattr(self, f"model{n}_2", nn.Sequential(*up))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        _finish(self, init_gain, inference_norm, False)

    def load_global_generator(self, source: nn.Module | dict[str, torch.Tensor]) -> None:
        """Load a trained ``GlobalGenerator`` (module or state dict with ``model.<i>`` keys) into the global part.

        Its output layers (the last pad / conv / tanh) are not part of the enhancer and are ignored.
        """
        state = source.state_dict() if isinstance(source, nn.Module) else source
        state = {k.removeprefix("module."): v for k, v in state.items()}
        own = self.model.state_dict()
        wanted = {k: state.get(f"model.{k}") for k in own}
        missing = [f"model.{k}" for k, v in wanted.items() if v is None]
        if missing:
            raise KeyError(
                f"global generator state lacks {len(missing)} keys of the enhancer's global part: {missing[:4]}"
            )
        wrong = [f"model.{k}" for k, v in wanted.items() if v.shape != own[k].shape]
        if wrong:
            raise ValueError(
                f"global generator shapes differ (is its ngf {self.global_ngf}?) at {len(wrong)} keys: {wrong[:4]}"
            )
        self.model.load_state_dict(wanted)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            branch_in = pyramid[self.n_local_enhancers - n]
            out = getattr(self, f"model{n}_2")(getattr(self, f"model{n}_1")(branch_in) + out)
        return out


def build_generator(
    name: str,
    input_nc: int,
    output_nc: int,
    ngf: int = 64,
    norm: str = "batch",
    dropout: bool = True,
    init_gain: float = 0.02,
    inference_norm: str = "running",
    inference_dropout: bool = False,
    padding: str = "reflect",
    n_downsample_global: int = 3,
    n_blocks_global: int = 9,
    n_local_enhancers: int = 1,
    n_blocks_local: int = 3,
) -> nn.Module:
    """Generator by name, as the original ``define_G``: unet_128/256/512, resnet_6blocks/9blocks, global, local.

    ``dropout`` applies to the pix2pix networks only (pix2pixHD's global / local networks have none).
    For ``local`` ``ngf`` is the local branch width (pix2pixHD: 32; its global part then has 64).
    """
    if name in UNET_DEPTHS:
        return UnetGenerator(
            input_nc, output_nc, UNET_DEPTHS[name], ngf, norm, dropout, init_gain, inference_norm, inference_dropout
        )
    if name in RESNET_BLOCKS:
        return ResnetGenerator(
            input_nc,
            output_nc,
            ngf,
            RESNET_BLOCKS[name],
            norm,
            dropout,
            padding,
            init_gain,
            inference_norm,
            inference_dropout,
        )
    if name == "global":
        return GlobalGenerator(
            input_nc, output_nc, ngf, n_downsample_global, n_blocks_global, norm, padding, init_gain, inference_norm
        )
    if name == "local":
        return LocalEnhancer(
            input_nc,
            output_nc,
            ngf,
            n_downsample_global,
            n_blocks_global,
            n_local_enhancers,
            n_blocks_local,
            norm,
            padding,
            init_gain,
            inference_norm,
        )
    raise ValueError(f"unknown generator {name!r}; choose one of {', '.join(GENERATOR_NAMES)}")
