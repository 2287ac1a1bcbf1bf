"""Fixtures shared by the every-experiment tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One FaceWorld cache for the whole suite: each experiment's tiny data is generated once."""
    return tmp_path_factory.mktemp("data")
