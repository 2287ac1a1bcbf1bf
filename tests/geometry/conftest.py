"""Session fixtures of the geometry tests: one FaceWorld and its ground-truth frames (geometry_frames.py)."""

from __future__ import annotations

import pytest
from geometry_frames import POSITION_MAP_SIZE, Frame, render_frames

from src.faceworld import FaceWorld


@pytest.fixture(scope="session")
def world() -> FaceWorld:
    return FaceWorld(position_map_size=POSITION_MAP_SIZE)


@pytest.fixture(scope="session")
def frames(world: FaceWorld) -> dict[float, Frame]:
    return render_frames(world)
