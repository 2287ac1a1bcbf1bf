"""PRNet datamodule: reads the writer's layout and users' 300W-LP-style folders / lists; bad folders are one error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from src.datamodules.prnet import PRNetDataModule
from src.io.images import read_image
from src.utils.errors import DatasetError
from tests.prnet.conftest import TINY_SIZE


def _module(root: Path, **kwargs) -> PRNetDataModule:
    data = PRNetDataModule(root=str(root), batch_size=2, val_fraction=0.34, **kwargs)
    data.setup()
    return data


def test_batches_hold_the_files_and_identities_are_held_out(tiny_prnet: Path):
    data = _module(tiny_prnet)
    groups = {split: {s.group for s in data.items[split]} for split in ("train", "val", "test")}
    assert groups["test"] == {"id003"} and len(groups["val"]) == 1 and not groups["val"] & groups["train"]
    assert len(data.items["train"]) + len(data.items["val"]) == 9
    batch = next(iter(data.test_dataloader()))
    frame = batch["frame_id"][0]
    assert frame == "test/id003/000000"
    image = cv2.cvtColor(read_image(tiny_prnet / f"{frame}.jpg"), cv2.COLOR_BGR2RGB) / 255.0
    np.testing.assert_allclose(batch["image"][0].numpy().transpose(1, 2, 0), image, atol=1e-6)
    np.testing.assert_array_equal(batch["posmap"][0].numpy().transpose(1, 2, 0), np.load(tiny_prnet / f"{frame}.npy"))
    record = json.loads((tiny_prnet / f"{frame}.json").read_text())
    assert batch["yaw_deg"][0].item() == pytest.approx(record["params"]["yaw"], abs=1e-4)
    weights = read_image(tiny_prnet / "uv-data" / "uv_weight_mask.png").astype(np.float32) / 16.0
    np.testing.assert_array_equal(batch["uv_weight"][0].numpy(), weights)
    kpt_cols, kpt_rows = np.loadtxt(tiny_prnet / "uv-data" / "uv_kpt_ind.txt").astype(int)
    np.testing.assert_array_equal(batch["uv_keypoints"][0].numpy(), kpt_rows * TINY_SIZE + kpt_cols)


def test_a_users_folder_without_lists_is_globbed_and_absolute_lists_work(tiny_prnet: Path, tmp_path: Path):
    users = tmp_path / "users"
    shutil.copytree(tiny_prnet, users)
    for name in ("trainDataLabel.txt", "testDataLabel.txt"):
        (users / name).unlink()
    globbed = _module(users)
    assert sorted(s.frame_id for s in globbed.items["test"]) == [f"test/id003/00000{k}" for k in range(3)]
    listing = tmp_path / "lists" / "mine.txt"
    listing.parent.mkdir()
    listing.write_text("".join(f"{users}/test/id003/00000{k}.jpg {users}/test/id003/00000{k}.npy\n" for k in (0, 2)))
    listed = _module(users, test_list=str(listing))
    assert [s.frame_id for s in listed.items["test"]] == ["test/id003/000000", "test/id003/000002"]


def test_visualisations_beside_the_samples_are_reported_not_read(tiny_prnet: Path, tmp_path: Path):
    """Yesterday's writer put <stem>_posmap.png beside each sample: a glob reader must not take it for a sample."""
    old = tmp_path / "old"
    shutil.copytree(tiny_prnet, old)
    for name in ("trainDataLabel.txt", "testDataLabel.txt"):
        (old / name).unlink()
    shutil.copy(old / "test/id003/000000.jpg", old / "test/id003/000000_posmap.png")
    with pytest.raises(DatasetError, match=r"000000_posmap\.png: no position map 000000_posmap\.npy"):
        _module(old)


def test_every_problem_in_one_error(tiny_prnet: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_prnet, broken)
    for name in ("trainDataLabel.txt", "testDataLabel.txt"):
        (broken / name).unlink()
    (broken / "train/id000/000001.npy").unlink()
    np.save(broken / "train/id001/000000.npy", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(DatasetError, match=r"2 problem\(s\).*000001\.jpg: no position map.*expected a \(32, 32, 3\)"):
        _module(broken)
    shutil.rmtree(broken / "uv-data")
    with pytest.raises(DatasetError, match="uv-data folder not found"):
        _module(broken)
    with pytest.raises(DatasetError, match=r"data\.image_size=64"):
        _module(tiny_prnet, image_size=64)
