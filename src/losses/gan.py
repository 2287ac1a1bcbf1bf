"""Adversarial losses on discriminator outputs of any of our discriminators, summed over scales.

Discriminator outputs are lists over scales of lists of features with the prediction last (see
``src.models.components.discriminators``); a bare tensor is accepted as a single prediction. Following
pix2pix / pix2pixHD the per-scale losses are summed and the discriminator loss is 0.5 * (real + fake).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("lsgan", "vanilla", "hinge")
DiscriminatorOutput = torch.Tensor | Sequence[torch.Tensor] | Sequence[Sequence[torch.Tensor]]


def final_predictions(outputs: DiscriminatorOutput) -> list[torch.Tensor]:
    """The prediction map of every scale: a tensor, a list of per-scale tensors, or a list of feature lists."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [scale if isinstance(scale, torch.Tensor) else scale[-1] for scale in outputs]


class GANLoss(nn.Module):
    """lsgan (MSE to 1 / 0), vanilla (BCE on logits; the generator side is the non-saturating loss) or hinge.

    Discriminators must output raw scores (``use_sigmoid=False``): vanilla applies the sigmoid itself.

    ``forward(outputs, target_is_real, for_discriminator)`` gives one term; ``discriminator_loss`` and
    ``generator_loss`` give the usual combinations.
    """

    def __init__(self, mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"GAN mode must be one of {GAN_MODES}, got {mode!r}")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label

    def _single(self, prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        if self.mode == "hinge":
            if not for_discriminator:
                if not target_is_real:
                    raise ValueError("the hinge generator loss is defined for target_is_real=True only")
                return -prediction.mean()
            margin = 1 - prediction if target_is_real else 1 + prediction
            return F.relu(margin).mean()
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)

    def forward(
        self, outputs: DiscriminatorOutput, target_is_real: bool, for_discriminator: bool = True
    ) -> torch.Tensor:
        predictions = final_predictions(outputs)
        loss = self._single(predictions[0], target_is_real, for_discriminator)
        for prediction in predictions[1:]:
            loss = loss + self._single(prediction, target_is_real, for_discriminator)
        return loss

    def discriminator_loss(self, real_outputs: DiscriminatorOutput, fake_outputs: DiscriminatorOutput) -> torch.Tensor:
        """0.5 * (loss on real + loss on fake), as pix2pix (fake outputs must come from detached fakes)."""
        return 0.5 * (self(real_outputs, True) + self(fake_outputs, False))

    def generator_loss(self, fake_outputs: DiscriminatorOutput) -> torch.Tensor:
        return self(fake_outputs, True, for_discriminator=False)


class R1Penalty(nn.Module):
    """R1 regulariser 0.5 * E ||d D(x) / d x||^2 on real inputs (``real_inputs`` must require grad)."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, real_outputs: DiscriminatorOutput, real_inputs: torch.Tensor) -> torch.Tensor:
        if not real_inputs.requires_grad:
            raise ValueError("R1Penalty needs real_inputs.requires_grad_(True) before the discriminator pass")
        total = sum(p.sum() for p in final_predictions(real_outputs))
        (grad,) = torch.autograd.grad(total, real_inputs, create_graph=True)
        return self.weight * 0.5 * grad.pow(2).flatten(1).sum(1).mean()
