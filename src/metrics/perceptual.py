"""LPIPS as an evaluation metric: per-sample values keyed by backbone and channel group.

Keys name the backbone (``lpips_alex``); RGBD inputs are scored on colour and on depth (repeated to 3
channels) separately, as the original did: ``lpips_alex_rgb`` and ``lpips_alex_depth``.
"""

from __future__ import annotations

import torch
from torch import nn

from src.losses.lpips import LPIPS


class LPIPSMetric(nn.Module):
    """``forward(pred, target) -> {key: (N,) tensor}``; ``channel_groups`` maps a key suffix to channels.

    Default groups: 4 channels -> {"rgb": [0, 1, 2], "depth": [3]}; otherwise all channels under ``lpips_<net>``.
    """

    def __init__(
        self,
        net: str = "alex",
        backbone_weights: str = "default",
        head_weights: str = "default",
        channel_groups: dict[str, list[int]] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.channel_groups = {k: list(v) for k, v in channel_groups.items()} if channel_groups else None
        self.lpips = LPIPS(net, backbone_weights=backbone_weights, head_weights=head_weights, reduction="none")

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        groups = self.channel_groups
        if groups is None:
            groups = {"rgb": [0, 1, 2], "depth": [3]} if pred.shape[1] == 4 else {"": list(range(pred.shape[1]))}
        results = {}
        for suffix, channels in groups.items():
            key = f"lpips_{self.net}_{suffix}" if suffix else f"lpips_{self.net}"
            results[key] = self.lpips(pred[:, channels], target[:, channels])
        return results
