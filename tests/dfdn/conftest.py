"""Session fixtures of the dfdn tests: one tiny FaceWorld DFDN dataset (3 identities, brow raise and smile)."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.faceworld.writers.details import write_details_dataset

MAP, PATCH, STRIDE = 256, 32, 32


@pytest.fixture(scope="session")
def details_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_details_dataset(
        tmp_path_factory.mktemp("dfdn") / "fw", num_identities=3, expressions=("browraise", "smile"),
        test_identities=1, map_size=MAP, patch_size=PATCH, stride=STRIDE, workers=1, progress=False,
    )  # fmt: skip
