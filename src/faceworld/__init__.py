"""FaceWorld: a procedural 3D face generator and CPU renderer (the embedded dataset of every experiment)."""

from src.faceworld.params import FaceParams
from src.faceworld.world import MODALITIES, FaceWorld

__all__ = ["MODALITIES", "FaceParams", "FaceWorld"]
