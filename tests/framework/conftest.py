"""Fixtures of the framework tests (helpers live in framework_fixtures.py, a unique module name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from framework_fixtures import write_synthetic_rgbd


@pytest.fixture(scope="session")
def rgbd_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared read-only dataset (tests that damage files copy it first)."""
    return write_synthetic_rgbd(tmp_path_factory.mktemp("rgbd") / "processed")
