"""The shared training core of every facesynth system (GANModule and its parts); see docs/adding_a_system.md."""

from src.models.base.module import GANModule
from src.models.base.schedulers import LinearDecayLR
from src.models.base.specs import DiscriminatorTable, PhaseSpec, UpdateSpec
from src.models.base.training import Batch

__all__ = ["Batch", "DiscriminatorTable", "GANModule", "LinearDecayLR", "PhaseSpec", "UpdateSpec"]
