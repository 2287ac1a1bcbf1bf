"""The shared GAN base of every facesynth system; it lives in src/models/base/ (this module keeps the old path).

`from src.models.gan import GANModule, LinearDecayLR, Batch` is what configs (`src.models.gan.LinearDecayLR`),
systems and checkpoints written so far use.
"""

from src.models.base import Batch, GANModule, LinearDecayLR

__all__ = ["Batch", "GANModule", "LinearDecayLR"]
