"""Face-recognition networks DG's RFG needs: feature maps for its perceptual loss, identity codes for scoring.

The original's perceptual loss is an L1 between VGG-Face activations (layers 1, 6, 11, 18, 25 of its `features`:
relu1_1, relu2_1, relu3_1, relu4_1, relu5_1) of the generated and the true face. VGG-Face weights are not
redistributable here, so by default the features are those of the identity encoder dg_idsg trains on FaceWorld
identities (a face-recognition CNN too: the end of each of its blocks), read from an IDSG checkpoint.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from src.models.components.dg_idsg import IdentityEncoder, VGGFaceEncoder
from src.utils.errors import UserError

VGG_FACE_LAYERS = (1, 6, 11, 18, 25)


def load_idsg_generator(path: str | os.PathLike) -> nn.Module:
    """The inference IDSG (EMA when trained with it) of a dg_idsg checkpoint, frozen, in eval mode."""
    from src.utils.checkpoint import load_module

    module, _ = load_module(path, expected_class="src.models.dg_idsg.DGIDSGModule")
    return Frozen(module.inference_generator)


class Frozen(nn.Module):
    """A network that stays in eval mode and never trains (Lightning's .train() on the parent does not reach it)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Frozen:
        return super().train(False)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*inputs)


class FaceFeatureLoss(nn.Module):
    """Perceptual L1 on face-recognition feature maps of images in [0, 1] (mean over the taps' L1 distances).

    vgg_face_weights: VGG-Face weights (the original's features, layers 1, 6, 11, 18, 25); "random" for tests only.
    idsg_checkpoint: a dg_idsg checkpoint whose IdentityEncoder supplies the features (the default here).
    """

    def __init__(self, vgg_face_weights: str | None = None, idsg_checkpoint: str | None = None) -> None:
        super().__init__()
        if vgg_face_weights:
            if vgg_face_weights == "random":
                warnings.warn(
                    "FaceFeatureLoss uses a RANDOM VGG-Face (requested): values are meaningless", stacklevel=2
                )
            encoder = VGGFaceEncoder(None if vgg_face_weights == "random" else vgg_face_weights)
            self.features = encoder.features
            self.taps = VGG_FACE_LAYERS
            self.register_buffer("mean", encoder.mean.clone())
            self.scale = 255.0
        elif idsg_checkpoint:
            encoder = load_idsg_generator(idsg_checkpoint).module.face_encoder
            if not isinstance(encoder, IdentityEncoder):
                raise UserError(f"{idsg_checkpoint}: its face encoder is not an IdentityEncoder; give vgg_face_weights")
            self.features = encoder.features
            # every block is conv, BN, LeakyReLU, conv, BN, LeakyReLU: tap the block ends
            self.taps = tuple(index for index in range(5, len(self.features), 6))
            self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
            self.scale = 2.0
        else:
            raise UserError(
                "model.criteria.perceptual needs face-recognition features: set model.idsg_checkpoint (the identity "
                "encoder dg_idsg trains) or model.criteria.perceptual.vgg_face_weights, or set "
                "model.loss_weights.perceptual=0"
            )
        self.features.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FaceFeatureLoss:
        return super().train(False)

    def activations(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) * self.scale
        taps, out = set(self.taps), []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                out.append(x)
            if index >= max(self.taps):
                break
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real = self.activations(target)
        fake = self.activations(pred)
        return sum((f - r).abs().mean() for f, r in zip(fake, real)) / len(fake)
