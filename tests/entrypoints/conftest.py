"""Fixtures of the entry-point tests: a tiny processed RGBD dataset and an empty project folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework.framework_fixtures import write_synthetic_rgbd


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared read-only dataset: 4 training groups + 1 held-out group of 3 frames, 32 px."""
    return write_synthetic_rgbd(tmp_path_factory.mktemp("entry_rgbd") / "processed")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project folder: the working directory and PROJECT_ROOT of the commands a test runs."""
    root = tmp_path / "project"
    root.mkdir()
    return root
