"""DG datamodule over the original's layout: values read back against the files, the drawing, the one-error
validation (wrong point count, bad lines), VoxCeleb 5-column lists, moved absolute paths, the held-out split."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from src.datamodules.dg import DGDataModule, landmark_values
from src.faceworld.writers.reenact import write_reenactment_dataset
from src.landmarks.drawing import draw_dg_landmarks
from src.utils.errors import DatasetError
from tests.dg.conftest import SIZE


def module(root: Path, **kwargs) -> DGDataModule:
    data = DGDataModule(root=str(root), batch_size=4, val_fraction=0.0, **kwargs)
    data.setup()
    return data


def test_batches_hold_the_files_values(dg_dataset: Path):
    data = module(dg_dataset)
    sample = data.datasets["test"][0]
    first = (dg_dataset / "test_list.txt").read_text().splitlines()[0].split(" ")
    reference, _ = landmark_values(dg_dataset / first[1])
    target, yaw = landmark_values(dg_dataset / first[3])
    np.testing.assert_allclose(sample["reference_landmarks"].numpy(), (reference / SIZE).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(sample["target_landmarks"].numpy(), (target / SIZE).reshape(-1), rtol=1e-6)
    assert sample["target_yaw_deg"].item() == pytest.approx(yaw, abs=1e-3)
    assert int(sample["source_label"]) == int(first[5]) and int(sample["reference_label"]) == int(first[4])
    drawing = draw_dg_landmarks(reference, SIZE)
    np.testing.assert_array_equal(sample["reference_drawing"][0].numpy() * 255, drawing)
    assert sample["source_image"].shape == (3, SIZE, SIZE) and 0 <= sample["source_image"].min() <= 1
    assert data.num_train_identities() == 4
    batch = next(iter(data.train_dataloader()))
    assert batch["reference_landmarks"].shape == (4, 136) and len(batch["frame_id"]) == 4


def test_three_d_landmarks_and_resizing(dg_dataset: Path):
    data = module(dg_dataset, landmark_dims=3, image_size=16)
    sample = data.datasets["train"][0]
    assert sample["reference_landmarks"].shape == (204,) and sample["source_image"].shape == (3, 16, 16)
    assert sample["reference_drawing"].shape == (3, 16, 16)


def test_validation_holds_out_source_identities(dg_dataset: Path):
    data = DGDataModule(root=str(dg_dataset), batch_size=2, val_fraction=0.3)
    data.setup()
    train = {p.source_label for p in data.datasets["train"].pairs}
    val = {p.source_label for p in data.datasets["val"].pairs}
    assert val and train and not train & val


def test_wrong_point_count_and_bad_lines_are_one_error(dg_dataset: Path, tmp_path: Path):
    root = tmp_path / "copy"
    shutil.copytree(dg_dataset, root)
    first = (root / "train_list.txt").read_text().splitlines()[0].split(" ")
    bad = root / first[2]
    header, row = bad.read_text().splitlines()
    bad.write_text(header + "\n" + ",".join(row.split(",")[:-2]) + "\n")  # 67 points
    with (root / "train_list.txt").open("a") as handle:
        handle.write("only three columns\n")
    with pytest.raises(DatasetError) as info:
        module(root)
    message = str(info.value)
    references = sum(first[2] in line for line in (root / "train_list.txt").read_text().splitlines())
    assert message.count("\n") == 0 and f"{references + 1} problem(s)" in message
    assert f"{bad}: expected 136 landmark values" in message and "got 134 (67 points)" in message
    assert "expected 6 (csv1 csv2 csv3 csv4 id1 id3) or 5 columns, got 3" in message


def test_voxceleb_lists_without_targets(dg_dataset: Path, tmp_path: Path):
    root = tmp_path / "vox"
    shutil.copytree(dg_dataset, root)
    for name in ("train_list.txt", "test_list.txt"):
        lines = [line.split(" ") for line in (root / name).read_text().splitlines()]
        (root / name).write_text("".join(" ".join(t[:3] + t[4:]) + "\n" for t in lines))
    sample = module(root).datasets["test"][0]
    assert "target_landmarks" not in sample and np.isnan(sample["target_yaw_deg"].item())


def test_moved_absolute_paths_are_found_again(tmp_path: Path):
    written = write_reenactment_dataset(
        tmp_path / "first", num_identities=3, videos_per_identity=1, frames_per_video=2, pairs_per_identity=1,
        test_identities=1, size=SIZE, absolute_paths=True, workers=1, progress=False,
    )  # fmt: skip
    moved = tmp_path / "elsewhere"
    shutil.move(str(written), moved)
    assert str(written) in (moved / "train_list.txt").read_text()
    data = module(moved)
    assert len(data.datasets["train"]) == 2 and all(
        str(path).startswith(str(moved)) for p in data.datasets["train"].pairs for path in p.images
    )
