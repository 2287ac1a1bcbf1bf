"""DG writer: the original's layout (parallel crop / LM / csv folders, numeric identities, space-separated lists),
the identity split, yaw coverage and the true target's geometry."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from src.faceworld.writers.reenact import folder_name, write_reenactment_dataset
from src.io.images import read_image
from src.landmarks.drawing import draw_dg_landmarks

SIZE = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_reenactment_dataset(
        tmp_path_factory.mktemp("dg"), num_identities=4, videos_per_identity=1, frames_per_video=4,
        pairs_per_identity=2, test_identities=2, size=SIZE, workers=1, progress=False,
    )  # fmt: skip


def _rows(root: Path, name: str) -> list[list[str]]:
    text = (root / name).read_text()
    assert text.endswith("\n") and "\t" not in text and "," not in text
    return [line.split(" ") for line in text.splitlines()]


def _table(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """(header, data rows) as pandas.read_csv sees the file (the original's reader; pandas is not a dependency)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _points(csv_path: str | Path) -> np.ndarray:
    """Exactly as the original reads a landmark CSV: first data row, columns 3 onwards."""
    values = np.asarray(_table(csv_path)[1][0][3:], dtype=np.float64)
    assert values.shape == (136,)
    return values.reshape(68, 2)


def test_lists_have_the_original_columns_and_paths_swap(dataset: Path):
    for split in ("train", "test"):
        rows = _rows(dataset, f"{split}_list.txt")
        assert len(rows) == 2 * 2
        for row in rows:
            assert len(row) == 6
            csv1, csv2, csv3, csv4, id1, id3 = row
            assert all(not Path(p).is_absolute() and (dataset / p).is_file() for p in (csv1, csv2, csv3, csv4))
            # numeric identity folders: int(folder) - 1 is the label the list states
            assert int(Path(csv1).parts[-3]) - 1 == int(id1) == int(Path(csv2).parts[-3]) - 1
            assert int(Path(csv3).parts[-3]) - 1 == int(id3) == int(Path(csv4).parts[-2]) - 1
            assert id1 != id3 and csv1 != csv2
            for table in (csv1, csv2, csv3, csv4):
                crop = str(dataset / table).replace("_csv_", "_crop_").replace(".csv", ".jpg")
                assert read_image(crop).shape == (SIZE, SIZE, 3)
                assert read_image(crop.replace(f"_crop_{SIZE}", f"_LM_{SIZE}")).shape == (SIZE, SIZE, 3)
        for lm, src, tgt in _rows(dataset, f"rfg_{split}_list.txt"):
            assert f"_truth_LM_{SIZE}" in lm and lm.replace("_LM_", "_crop_") == tgt and (dataset / src).is_file()
    train = {r[4] for r in _rows(dataset, "train_list.txt")} | {r[5] for r in _rows(dataset, "train_list.txt")}
    test = {r[4] for r in _rows(dataset, "test_list.txt")} | {r[5] for r in _rows(dataset, "test_list.txt")}
    assert train == {"0", "1"} and test == {"2", "3"}  # training labels first, no person on both sides
    assert json.loads((dataset / "faceworld.json").read_text())["train_identities"] == 2


def test_absolute_paths_as_the_original(tmp_path: Path):
    root = write_reenactment_dataset(
        tmp_path / "abs", num_identities=2, videos_per_identity=1, frames_per_video=2, pairs_per_identity=1,
        test_identities=0, size=32, absolute_paths=True, workers=1, progress=False,
    )  # fmt: skip
    rows = _rows(root, "train_list.txt")
    assert len(rows) == 2 and all(Path(p).is_absolute() and Path(p).is_file() for row in rows for p in row[:4])
    assert not (root / "test_list.txt").exists()


def test_csv_files_and_landmark_images_agree(dataset: Path):
    csvs = sorted((dataset / folder_name("faceworld", "csv", SIZE)).rglob("*.csv"))
    assert len(csvs) == 4 * 4
    yaws = []
    for path in csvs:
        header, rows = _table(path)
        assert header[:5] == ["frame", "face_id", "yaw_deg", "x_0", "y_0"] and len(rows) == 1 and len(header) == 139
        points = _points(str(path))
        assert np.all((points > -SIZE) & (points < 2 * SIZE))
        yaws.append(float(rows[0][2]))
        deep = np.asarray(_table(str(path).replace(f"_csv_{SIZE}", f"_csv3d_{SIZE}"))[1][0][3:], dtype=float)
        np.testing.assert_allclose(deep.reshape(68, 3)[:, :2], points, atol=1e-4)
        drawn = draw_dg_landmarks(points, SIZE) > 127
        stored = read_image(str(path).replace("_csv_", "_LM_").replace(".csv", ".jpg"))[..., 0] > 127
        assert (drawn & stored).sum() / (drawn | stored).sum() > 0.8  # JPEG blurs a few edge pixels
    assert max(np.abs(yaws)) <= 60.0 and max(np.abs(yaws)) > 30.0


def test_true_target_is_the_source_person_in_the_reference_pose(dataset: Path):
    rows = _rows(dataset, "train_list.txt") + _rows(dataset, "test_list.txt")
    for _, csv2, csv3, csv4, _, _ in ([str(dataset / p) for p in row[:4]] + row[4:] for row in rows):
        target, reference, source = _points(csv4), _points(csv2), _points(csv3)
        to_reference = np.linalg.norm(target - reference, axis=1).mean()
        to_source = np.linalg.norm(target - source, axis=1).mean()
        assert to_reference < to_source and to_reference < 0.1 * SIZE
        assert to_reference > 0.002 * SIZE  # another face shape: not a copy of the reference
        assert _table(csv4)[1][0][2] == _table(csv2)[1][0][2]  # the reference's yaw
        truth = read_image(csv4.replace("_csv_", "_crop_").replace(".csv", ".jpg")).astype(int)
        assert np.abs(truth - read_image(csv3.replace("_csv_", "_crop_").replace(".csv", ".jpg"))).mean() > 2.0
