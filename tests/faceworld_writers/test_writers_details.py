"""DFDN detail writer: per-sample maps, patch pairs at fixed UV positions, encodings, wrinkles follow expressions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from src.faceworld.writers.common import world_for
from src.faceworld.writers.details import (
    PRESETS,
    decode_displacement,
    encode_displacement,
    patch_positions,
    preprocess_texture_patch,
    region_boxes,
    write_details_dataset,
)
from src.io.images import read_image

MAP, PATCH, STRIDE = 96, 24, 12
SAMPLE_FILES = {
    "image.png",
    "landmarks68.txt",
    "proxy.json",
    "texture.png",
    "mask.png",
    "albedo.png",
    "displacement.png",
    "normal.png",
    "proxy_normals.png",
    "patches.csv",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_details_dataset(
        tmp_path_factory.mktemp("dfdn"), num_identities=2, expressions=("neutral", "browraise", "smile"),
        map_size=MAP, patch_size=PATCH, stride=STRIDE, workers=1, progress=False,
    )  # fmt: skip


def test_layout_identity_split_and_patch_index(dataset: Path):
    meta = json.loads((dataset / "faceworld.json").read_text())
    assert meta["patch_size"] == PATCH and meta["stride"] == STRIDE and meta["displacement_scale_mm"] == 2.0
    positions = meta["patch_positions"]
    assert positions["forehead"] and positions["mouth"]
    assert all(r % STRIDE == 0 and c % STRIDE == 0 for pos in positions.values() for r, c in pos)
    assert sorted(p.name for p in (dataset / "train").iterdir() if p.is_dir()) == ["id000", "patches"]
    assert sorted(p.name for p in (dataset / "test").iterdir() if p.is_dir()) == ["id001", "patches"]
    for split, identity in (("train", "id000"), ("test", "id001")):
        for expression in ("neutral", "browraise", "smile"):
            assert {p.name for p in (dataset / split / identity / expression).iterdir()} == SAMPLE_FILES
        with open(dataset / split / "patches.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        per_sample = len(positions["forehead"]) + len(positions["mouth"])
        assert len(rows) == 3 * per_sample
        assert {r["identity"] for r in rows} == {identity}
        for row in rows[:: max(1, len(rows) // 7)]:
            texture = read_image(dataset / split / row["texture"])
            displacement = read_image(dataset / split / row["displacement"])
            assert texture.shape == (PATCH, PATCH) and texture.dtype == np.uint8
            assert displacement.shape == (PATCH, PATCH) and displacement.dtype == np.uint16
            full = read_image(dataset / split / identity / row["expression"] / "displacement.png")
            r, c = int(row["row"]), int(row["col"])
            np.testing.assert_array_equal(displacement, full[r : r + PATCH, c : c + PATCH])
    sample = dataset / "train" / "id000" / "browraise"
    assert read_image(sample / "displacement.png").shape == (MAP, MAP)
    assert read_image(sample / "texture.png").shape == (MAP, MAP)
    assert np.loadtxt(sample / "landmarks68.txt").shape == (68, 2)
    proxy = json.loads((sample / "proxy.json").read_text())
    assert proxy["expression"]["brow_raise"] == 1.0 and len(proxy["identity"]) == 16


def test_encodings_round_trip_and_preprocessing():
    mm = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    levels = encode_displacement(mm, 2.0)
    assert levels.dtype == np.uint16 and levels[0] == 0 and levels[-1] == 65535
    np.testing.assert_allclose(decode_displacement(levels) * 2.0, np.clip(mm, -2, 2), atol=1e-4)
    patch = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    pre = preprocess_texture_patch(patch)
    assert abs(pre.mean()) < 1e-6
    np.testing.assert_allclose(pre, (patch / 255.0 - (patch / 255.0).mean()) * 2.0, atol=1e-6)


def _region(dataset: Path, expression: str, region: str) -> np.ndarray:
    meta = json.loads((dataset / "faceworld.json").read_text())
    r0, r1, c0, c1 = meta["regions_row0_row1_col0_col1"][region]
    x = decode_displacement(read_image(dataset / "train" / "id000" / expression / "displacement.png"))
    return x[r0 : r1 + 1, c0 : c1 + 1] * meta["displacement_scale_mm"]


def test_displacement_follows_the_expression(dataset: Path):
    """Brow raise cuts forehead lines (deeper grooves there, the mouth region unchanged); smile deepens the
    nasolabial folds in the mouth region."""
    neutral, raised = _region(dataset, "neutral", "forehead"), _region(dataset, "browraise", "forehead")
    assert raised.min() < neutral.min() - 0.15
    assert np.abs(raised).mean() > 1.3 * np.abs(neutral).mean()
    np.testing.assert_allclose(_region(dataset, "browraise", "mouth"), _region(dataset, "neutral", "mouth"), atol=1e-3)
    assert _region(dataset, "smile", "mouth").min() < _region(dataset, "neutral", "mouth").min() - 0.1
    # The unwrapped texture is the photo: it changes where the wrinkles are.
    texture = {e: read_image(dataset / "train/id000" / e / "texture.png").astype(int) for e in ("neutral", "browraise")}
    assert np.abs(texture["browraise"] - texture["neutral"]).mean() > 0.5


def test_proxy_normals_are_unit_camera_space_normals_of_the_frontal_face(dataset: Path):
    """The smooth proxy's normals: unit length on the face, facing the camera (-z) at the forehead's centre, and
    turning towards +x / -x on the two sides of the UV (the face's right and left cheeks)."""
    sample = dataset / "train" / "id000" / "neutral"
    n = read_image(sample / "proxy_normals.png")[..., ::-1].astype(np.float32) / 127.5 - 1.0
    mask = read_image(sample / "mask.png") > 0
    lengths = np.linalg.norm(n[mask], axis=1)
    assert np.abs(lengths - 1).max() < 0.03
    meta = json.loads((dataset / "faceworld.json").read_text())
    r0, r1, c0, c1 = meta["regions_row0_row1_col0_col1"]["forehead"]
    centre = n[(r0 + r1) // 2, (c0 + c1) // 2]
    assert centre[2] < -0.9
    row = MAP // 2
    assert n[row, MAP // 8, 0] * n[row, MAP - MAP // 8, 0] < 0  # the two sides turn opposite ways
    assert meta["texel_mm_u_v"][0] > 0 and meta["texel_mm_u_v"][1] > 0


def test_cpu_preset_and_preset_conflicts(tmp_path: Path):
    root = write_details_dataset(
        tmp_path / "cpu", num_identities=2, expressions=("browraise",), preset="cpu", workers=1, progress=False
    )
    meta = json.loads((root / "faceworld.json").read_text())
    expected = PRESETS["cpu"]
    assert meta["preset"] == "cpu" and meta["map_size"] == expected["map_size"]
    assert meta["patch_size"] == expected["patch_size"] and meta["stride"] == expected["stride"]
    assert read_image(root / "train/id000/browraise/texture.png").shape == (expected["map_size"],) * 2
    with pytest.raises(ValueError, match=r"preset 'cpu' contradicts map_size=512 \(preset cpu sets 256\)"):
        write_details_dataset(tmp_path / "x", num_identities=2, preset="cpu", map_size=512, progress=False)
    with pytest.raises(ValueError, match="preset: unknown 'huge'"):
        write_details_dataset(tmp_path / "y", num_identities=2, preset="huge", progress=False)


def test_original_preset_geometry_is_the_originals():
    """256-px patches on a 64 stride of a 4096 map, positions on the stride grid inside the region boxes (boxes
    found at the 1024 unwrap size and scaled by 4), every patch inside the map."""
    preset = PRESETS["original"]
    assert (preset["map_size"], preset["patch_size"], preset["stride"]) == (4096, 256, 64)
    world = world_for(preset["unwrap_size"], preset["unwrap_size"])
    boxes = {r: tuple(round(v * 4) for v in b) for r, b in region_boxes(world).items()}
    for region, box in boxes.items():
        positions = patch_positions(box, 4096, 256, 64)
        assert len(positions) > 50, region
        assert all(r % 64 == 0 and c % 64 == 0 and r + 256 <= 4096 and c + 256 <= 4096 for r, c in positions)
        assert all(box[0] <= r + 128 <= box[1] and box[2] <= c + 128 <= box[3] for r, c in positions)


@pytest.mark.slow
def test_original_preset_writes_4096_maps_and_256_patches(tmp_path: Path):
    root = write_details_dataset(
        tmp_path / "orig", num_identities=2, expressions=("browraise",), preset="original", workers=1, progress=False
    )
    sample = root / "train" / "id000" / "browraise"
    assert read_image(sample / "displacement.png").shape == (4096, 4096)
    assert read_image(sample / "texture.png").shape == (4096, 4096)
    with open(root / "train" / "patches.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert read_image(root / "train" / row["texture"]).shape == (256, 256)
