"""bench/dfdn_oracle.py's oracle rows: the PCA projection (against numpy's least squares) and the pore layer it
removes from the truth (against FaceWorld's other wrinkle groups, summed independently)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from src.faceworld import appearance
from src.faceworld.writers.common import world_for
from src.faceworld.writers.details import decode_displacement, expression_params
from src.geometry.uv import resample_uv_box
from src.io.images import read_image
from tests.bench_scripts import load_bench


def oracle_bench():
    return load_bench("dfdn_oracle")


def test_pca_projection_is_the_least_squares_fit_of_the_basis():
    bench = oracle_bench()
    rng = np.random.default_rng(0)
    mean = rng.normal(0, 0.05, 64)
    basis = rng.normal(0, 0.1, (64, 5))
    inside = mean + rng.normal(0, 1, (3, 5)) @ basis.T
    outside = inside + rng.normal(0, 0.05, (3, 64))
    as_patches = lambda a: torch.tensor(a, dtype=torch.float64).view(3, 1, 8, 8)  # noqa: E731
    t_mean, t_basis = torch.tensor(mean), torch.tensor(basis)
    torch.testing.assert_close(bench.project(as_patches(inside), t_mean, t_basis), as_patches(inside))
    coefficients = np.linalg.lstsq(basis, (outside - mean).T, rcond=None)[0].T
    expected = np.clip(mean + coefficients @ basis.T, -1, 1)
    torch.testing.assert_close(bench.project(as_patches(outside), t_mean, t_basis), as_patches(expected))


def test_pore_layer_plus_the_expression_wrinkles_is_the_written_truth(details_root: Path):
    """truth (displacement.png) - pore layer == the four expression groups of FaceWorld, resampled to the UV box."""
    bench = oracle_bench()
    pores = bench.static_maps(details_root)
    meta = json.loads((details_root / "faceworld.json").read_text())
    world = world_for(int(meta["unwrap_size"]), int(meta["unwrap_size"]))
    for folder in sorted((details_root / "train").glob("id*/*"))[:2]:  # brow raise and smile of one identity
        truth = decode_displacement(read_image(folder / "displacement.png"))
        params = expression_params(world, int(folder.parent.name[2:]), int(meta["seed"]), folder.name)
        look = world._identity_appearance(params)
        named = dict(zip(world.model.expression_names, params.expression.tolist(), strict=True))
        weights = appearance.wrinkle_weights(named, float(params.displacement_strength))
        wrinkles_mm = sum(weights[g] * look.wrinkles[g] for g in range(4))
        expected = resample_uv_box(wrinkles_mm, world.prnet_uv_box(), truth.shape[0]) / meta["displacement_scale_mm"]
        layer = pores(str(folder))
        assert np.abs(layer).max() > 0.01  # the pore layer is there (0.08 mm of 2 mm at most)
        np.testing.assert_allclose(truth - layer, expected, atol=2e-4)
