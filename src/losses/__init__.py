"""Loss modules shared by every system: adversarial, feature matching, perceptual (VGG, LPIPS), depth, L1.

Each loss is a small ``nn.Module`` with plain constructor arguments so Hydra configs can build it via
``_target_``; most take a ``weight`` so a config can carry the lambda, or leave it at 1 and weight outside.
"""

from src.losses.depth import (
    BACKGROUND_THRESHOLD,
    DepthGradientLoss,
    DepthL1Loss,
    NormalConsistencyLoss,
    apply_depth_mask,
    foreground_mask,
)
from src.losses.feature_matching import FeatureMatchingLoss
from src.losses.gan import GANLoss, R1Penalty
from src.losses.lpips import LPIPS
from src.losses.perceptual import VGGPerceptualLoss
from src.losses.reconstruction import L1ReconstructionLoss

__all__ = [
    "BACKGROUND_THRESHOLD",
    "LPIPS",
    "DepthGradientLoss",
    "DepthL1Loss",
    "FeatureMatchingLoss",
    "GANLoss",
    "L1ReconstructionLoss",
    "NormalConsistencyLoss",
    "R1Penalty",
    "VGGPerceptualLoss",
    "apply_depth_mask",
    "foreground_mask",
]
