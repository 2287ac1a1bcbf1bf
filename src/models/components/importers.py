"""Import generator checkpoints of the original pix2pix code (``<epoch>_net_G.pth``) into our networks.

The original U-Net nests ``UnetSkipConnectionBlock``s whose layers sit in one ``model`` Sequential each, so its
keys read ``model.model.1.model.3.model.2.weight``; ours name the parts (``unet.submodule.submodule.down.2``).
``pix2pix_unet_key_to_ours`` translates one key; the ResNet generator keeps the original layout and needs no
translation. ``bgr_to_rgb`` reorders the last layer's output channels because the RGBD original was trained on
OpenCV-loaded images (B, G, R, D) while our tensors are R, G, B, D.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from src.models.components.generators import RESNET_BLOCKS, UNET_DEPTHS, build_generator
from src.utils.checkpoint import describe_weight_mismatch, safe_torch_load
from src.utils.errors import CheckpointError

# Index inside the original block's Sequential -> our (part, index); "sub" marks the nested block.
_OUTERMOST = {"0": "down.0", "1": "sub", "3": "up.1"}
_MIDDLE = {"1": "down.1", "2": "down.2", "3": "sub", "5": "up.1", "6": "up.2"}
_INNERMOST = {"1": "down.1", "3": "up.1", "4": "up.2"}
_BLOCK_STEP = re.compile(r"model\.(\d+)\.")


class CheckpointImportError(RuntimeError):
    """A checkpoint that cannot be imported (missing file, wrong architecture)."""


def pix2pix_unet_key_to_ours(key: str, num_downs: int) -> str | None:
    """Original U-Net state-dict key -> ours, or None when it does not belong to a ``num_downs`` U-Net."""
    if not key.startswith("model."):
        return None
    rest = key[len("model.") :]
    ours = "unet."
    for level in range(num_downs):
        table = _OUTERMOST if level == 0 else _INNERMOST if level == num_downs - 1 else _MIDDLE
        step = _BLOCK_STEP.match(rest)
        if step is None or step.group(1) not in table:
            return None
        rest = rest[step.end() :]
        target = table[step.group(1)]
        if target != "sub":
            return f"{ours}{target}.{rest}" if "." not in rest else None
        ours += "submodule."
    return None


def _permute_bgr(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    order = [2, 1, 0, *range(3, tensor.shape[dim])]
    return tensor.index_select(dim, torch.tensor(order))


def load_state_dict_file(path_or_state_dict: str | os.PathLike | dict, what: str = "checkpoint") -> dict:
    """A state dict from a .pth path or a dict; strips a DataParallel ``module.`` prefix; one-line errors."""
    if isinstance(path_or_state_dict, dict):
        state = path_or_state_dict
    else:
        path = Path(path_or_state_dict).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{what} not found: {path}")
        try:
            state = safe_torch_load(path, what=what)
        except CheckpointError:
            raise
        except Exception as exc:  # a truncated or non-torch file; name it
            raise CheckpointImportError(f"{what} {path} could not be read as a torch state dict: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointImportError(f"{what} {path_or_state_dict} holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def import_pix2pix_generator(
    path_or_state_dict: str | os.PathLike | dict,
    name: str = "unet_512",
    input_nc: int = 1,
    output_nc: int = 4,
    ngf: int = 64,
    norm: str = "batch",
    dropout: bool = True,
    bgr_to_rgb: bool = False,
    inference_norm: str = "running",
    inference_dropout: bool = False,
) -> nn.Module:
    """Build our ``name`` generator and load an original pix2pix generator checkpoint into it, exactly.

    ``inference_norm="batch", inference_dropout=True`` reproduces the original's test-time behaviour (it never
    switched to eval mode); the default uses the running statistics (see ``norms.py``).
    """
    if name not in UNET_DEPTHS and name not in RESNET_BLOCKS:
        raise ValueError(f"import_pix2pix_generator supports {[*UNET_DEPTHS, *RESNET_BLOCKS]}, got {name!r}")
    source = load_state_dict_file(path_or_state_dict, "pix2pix checkpoint")
    label = f"pix2pix checkpoint {'<state dict>' if isinstance(path_or_state_dict, dict) else path_or_state_dict}"
    net = build_generator(
        name,
        input_nc,
        output_nc,
        ngf=ngf,
        norm=norm,
        dropout=dropout,
        inference_norm=inference_norm,
        inference_dropout=inference_dropout,
    )
    own = net.state_dict()
    if name in UNET_DEPTHS:
        mapped: dict[str, torch.Tensor] = {}
        unexpected: list[str] = []
        for key, value in source.items():
            ours = pix2pix_unet_key_to_ours(key, UNET_DEPTHS[name])
            if ours is None or ours not in own:
                unexpected.append(key)
            else:
                mapped[ours] = value
        last_weight, last_bias, out_dim = "unet.up.1.weight", "unet.up.1.bias", 1  # ConvTranspose: (in, out, k, k)
    else:
        mapped = {k: v for k, v in source.items() if k in own}
        unexpected = [k for k in source if k not in own]
        last = max(int(k.split(".")[1]) for k in own if k.startswith("model.") and k.endswith(".weight"))
        last_weight, last_bias, out_dim = f"model.{last}.weight", f"model.{last}.bias", 0  # Conv2d: (out, in, k, k)
    # Unexpected keys keep the original's names (they map to nothing of ours), so the message names them as written.
    problem = describe_weight_mismatch(own, {**mapped, **{k: source[k] for k in unexpected}})
    if problem:
        raise CheckpointImportError(
            f"{label} does not match {name} (input_nc={input_nc}, output_nc={output_nc}, ngf={ngf}, norm={norm}): "
            + problem
        )
    if bgr_to_rgb:
        if output_nc < 3:
            raise ValueError(f"bgr_to_rgb needs output_nc >= 3, got {output_nc}")
        mapped[last_weight] = _permute_bgr(mapped[last_weight], out_dim)
        mapped[last_bias] = _permute_bgr(mapped[last_bias], 0)
    net.load_state_dict(mapped, strict=True)
    return net
