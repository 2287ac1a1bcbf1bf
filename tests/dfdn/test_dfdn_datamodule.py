"""DFDN datamodule: FaceWorld patches equal the writer's patch files, held-out identities, one region a batch,
a resumable order, and a scan folder of patch pairs with its errors listed up front."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from src.datamodules.dfdn import DFDNDataModule, RegionBatchSampler
from src.faceworld.writers.details import decode_displacement, preprocess_texture_patch
from src.io.images import read_image
from src.utils.errors import DatasetError


def test_faceworld_patches_are_the_writers_patch_files(details_root: Path):
    dm = DFDNDataModule(root=str(details_root), batch_size=4, val_fraction=0.5, min_visible_fraction=0.8)
    dm.setup()
    identity = {name: {dm._by_id[k].identity for k in keys} for name, keys in dm.items.items()}
    assert identity["train"] and identity["val"] and not identity["train"] & identity["val"]
    assert identity["test"] == {"id002"}
    with open(details_root / "test" / "patches.csv", newline="") as handle:
        rows = {(r["region"], r["expression"], int(r["row"]), int(r["col"])): r for r in csv.DictReader(handle)}
    kept = [r for r in rows.values() if float(r["visible_fraction"]) >= 0.8]
    assert len(dm.datasets["test"]) == len(kept) < len(rows)
    for index in range(0, len(dm.datasets["test"]), 3):
        sample = dm.datasets["test"][index]
        region, _, expression, name = sample["frame_id"].split("/")
        row, col = (int(v) for v in name.split("_"))
        files = rows[(region, expression, row, col)]
        texture = read_image(details_root / "test" / files["texture"])
        displacement = read_image(details_root / "test" / files["displacement"])
        np.testing.assert_allclose(sample["texture"][0].numpy(), preprocess_texture_patch(texture), atol=1e-6)
        np.testing.assert_allclose(sample["displacement"][0].numpy(), decode_displacement(displacement), atol=1e-6)
        assert sample["has_appearance"] and sample["light"].shape == (9,)
        assert torch.allclose(sample["proxy_normals"].norm(dim=0), torch.ones(32, 32), atol=0.02)
    for batch in dm.train_dataloader():
        assert len(set(batch["region"].tolist())) == 1


def test_region_batches_follow_seed_and_epoch():
    regions = [0] * 10 + [1] * 7
    sampler = RegionBatchSampler(regions, 3, shuffle=True, seed=5)
    sampler.set_epoch(2)
    first = list(sampler)
    again = RegionBatchSampler(regions, 3, shuffle=True, seed=5)
    again.set_epoch(2)
    assert list(again) == first
    sampler.set_epoch(3)
    assert list(sampler) != first
    assert sorted(i for b in first for i in b) == list(range(17)) and len(first) == len(sampler) == 4 + 3
    assert all(len({regions[i] for i in b}) == 1 for b in first)


def _write_pair(root: Path, split: str, region: str, rel: str, value: float, texture_rgb: bool = False) -> None:
    levels = np.full((16, 16), round((value + 1) / 2 * 65535), np.uint16)
    levels[4:6] = 0  # a groove
    texture = np.tile(np.arange(16, dtype=np.uint8) * 10, (16, 1))
    if texture_rgb:
        texture = np.dstack([texture] * 3)
    for kind, image in (("texture", texture), ("displacement", levels)):
        path = root / split / region / kind / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)


def test_scan_pair_folder(tmp_path: Path):
    root = tmp_path / "scans"
    for identity in ("ann", "bob", "cid"):
        _write_pair(root, "train", "forehead", f"{identity}/a.png", 0.1)
        _write_pair(root, "train", "mouth", f"{identity}/neutral/b.png", -0.2)
    _write_pair(root, "test", "forehead", "dan/a.png", 0.3)
    dm = DFDNDataModule(root=str(root), batch_size=2, val_fraction=0.34, displacement_scale_mm=1.5, texel_mm=[0.2, 0.2])
    dm.setup()
    assert (len(dm.items["train"]), len(dm.items["val"]), len(dm.items["test"])) == (4, 2, 1)
    sample = dm.datasets["test"][0]
    assert sample["frame_id"] == "forehead/dan/a" and not sample["has_appearance"]
    assert abs(float(sample["displacement"][0, 0, 0]) - 0.3) < 1e-4 and float(sample["displacement"][0, 4, 0]) == -1
    assert float(sample["scale_mm"]) == 1.5 and abs(float(sample["texture"].mean())) < 1e-6

    with pytest.raises(DatasetError, match=r"needs data\.displacement_scale_mm and data\.texel_mm"):
        DFDNDataModule(root=str(root), val_fraction=0.34).setup()

    _write_pair(root, "train", "mouth", "eve/c.png", 0.0, texture_rgb=True)
    (root / "train" / "forehead" / "displacement" / "bob" / "a.png").unlink()
    (root / "test" / "forehead" / "texture" / "dan" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\ncut")
    (root / "test" / "forehead" / "displacement" / "dan" / "b.png").write_bytes(b"")
    with pytest.raises(DatasetError) as caught:
        DFDNDataModule(root=str(root), val_fraction=0.34, displacement_scale_mm=1.5, texel_mm=[0.2, 0.2]).setup()
    message = str(caught.value)
    assert "3 problem(s)" in message and "\n" not in message
    assert "train/forehead/displacement/bob/a.png is missing" in message
    assert "eve/c.png: expected an 8-bit grey texture patch" in message
    assert "dan/b.png: truncated or corrupt PNG" in message


def test_image_size_must_match_the_patches(details_root: Path):
    with pytest.raises(DatasetError, match=r"patches are 32 px but data\.image_size .* is 64"):
        DFDNDataModule(root=str(details_root), image_size=64, val_fraction=0.5).setup()
