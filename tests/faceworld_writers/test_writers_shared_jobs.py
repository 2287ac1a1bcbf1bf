"""Every FaceWorld writer runs on the one job runner, chunking and identity seeds of writers/common.py."""

from __future__ import annotations

import importlib

import pytest

from src.faceworld.writers import common

WRITER_MODULES = ("rgbd", "head2head", "reenact", "details", "prnet")


@pytest.mark.parametrize("name", WRITER_MODULES)
def test_writers_share_one_job_runner(name):
    module = importlib.import_module(f"src.faceworld.writers.{name}")
    for helper in ("run_jobs", "chunks", "identity_seed"):
        if hasattr(module, helper):
            assert getattr(module, helper) is getattr(common, helper)
        # No private copies left behind under the old names.
        assert not hasattr(module, f"_{helper}"), f"{name}.py still defines _{helper}"
    assert hasattr(importlib.import_module("src.faceworld.writers.rgbd"), "run_jobs")


def test_chunks_cover_the_range_and_reject_empty_chunks():
    assert common.chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert common.chunks(0, 4) == []
    with pytest.raises(ValueError, match="chunk"):
        common.chunks(10, 0)


def test_identity_seed_is_stable_and_distinct():
    assert common.identity_seed(0, 1) == common.identity_seed(0, 1)
    assert len({common.identity_seed(s, k) for s in range(3) for k in range(5)}) == 15
