"""pix2pixHD discriminator feature-matching loss.

L1 between the discriminator features of fake and (detached) real inputs, over every feature but the final
prediction, weighted 4 / (n_layers + 1) per layer and 1 / num_D per scale, times ``weight`` (pix2pixHD's
lambda_feat, 10). Layer and scale counts are read from the outputs themselves, so any of our discriminators
works without configuration.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FeatureMatchingLoss(nn.Module):
    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(
        self, fake_outputs: Sequence[Sequence[torch.Tensor]], real_outputs: Sequence[Sequence[torch.Tensor]]
    ) -> torch.Tensor:
        if len(fake_outputs) != len(real_outputs):
            raise ValueError(f"fake has {len(fake_outputs)} scales, real {len(real_outputs)}")
        num_d = len(fake_outputs)
        loss = torch.zeros((), device=fake_outputs[0][0].device)
        for fake_scale, real_scale in zip(fake_outputs, real_outputs):
            n_features = len(fake_scale) - 1  # the last entry is the prediction = n_layers + 1 features
            if n_features < 1:
                raise ValueError("feature matching needs discriminators that return intermediate features")
            for fake, real in zip(fake_scale[:-1], real_scale[:-1]):
                loss = loss + (4.0 / n_features) * (1.0 / num_d) * F.l1_loss(fake, real.detach())
        return self.weight * loss
