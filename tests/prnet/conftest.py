"""One tiny FaceWorld PRNet dataset (32 px, 4 identities, one held out) shared by the PRNet tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.faceworld.writers.prnet import write_prnet_dataset

TINY_SIZE = 32


@pytest.fixture(autouse=True)
def _one_thread(one_thread):  # tests/conftest.py
    yield


@pytest.fixture(scope="session")
def tiny_prnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prnet_dataset(
        tmp_path_factory.mktemp("prnet_tiny"), num_identities=4, images_per_identity=3, test_identities=1,
        size=TINY_SIZE, pose_range_deg=45.0, workers=1, progress=False, previews=False,
    )  # fmt: skip
