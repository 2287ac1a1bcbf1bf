"""FaceWorld and its writers use the geometry of src/geometry (what real data needs too), with no copies left."""

from __future__ import annotations

import importlib

import pytest

from src.geometry import nmfc, regions, unwrap, uv


@pytest.mark.parametrize(
    ("module", "name", "shared"),
    [
        ("src.faceworld.world", "render_nmfc", nmfc.render_nmfc),
        ("src.faceworld.world", "nmfc_vertex_colors", nmfc.nmfc_vertex_colors),
        ("src.faceworld.world", "position_map", uv.position_map),
        ("src.faceworld.world", "uv_keypoint_indices", uv.uv_keypoint_indices),
        ("src.faceworld.world", "rasterize_uv", uv.rasterize_uv),
        ("src.faceworld.world", "sample_image", uv.sample_image),
        ("src.faceworld.writers.details", "unwrap_mesh", unwrap.unwrap_mesh),
        ("src.faceworld.writers.details", "resample_uv_box", uv.resample_uv_box),
        ("src.faceworld.writers.prnet", "position_map_footprint", regions.position_map_footprint),
    ],
)
def test_faceworld_imports_the_shared_function(module, name, shared):
    assert getattr(importlib.import_module(module), name) is shared


@pytest.mark.parametrize(
    ("module", "old_copy"),
    [
        ("src.faceworld.world", "sample_texture"),
        ("src.faceworld.writers.details", "unwrap_texture"),
        ("src.faceworld.writers.details", "box_resample"),
        ("src.faceworld.writers.prnet", "face_region_mask"),
        ("src.faceworld.writers.prnet", "uv_grid_triangles"),
    ],
)
def test_no_private_copies_are_left(module, old_copy):
    assert not hasattr(importlib.import_module(module), old_copy)
