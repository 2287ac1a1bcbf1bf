"""DG reenactment writer: parallel folders, identity split, pair index, the true target's geometry."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from src.faceworld.writers.reenact import KINDS, PAIR_COLUMNS, write_reenactment_dataset
from src.io.images import read_image

SIZE = 48


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_reenactment_dataset(
        tmp_path_factory.mktemp("dg"), num_identities=4, videos_per_identity=2, frames_per_video=3,
        pairs_per_identity=3, test_identities=2, size=SIZE, workers=1, progress=False,
    )  # fmt: skip


def _pairs(root: Path, split: str) -> list[dict[str, str]]:
    with open(root / split / "pairs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_parallel_folders_and_identity_split(dataset: Path):
    identities = {}
    for split in ("train", "test"):
        for kind in KINDS:
            files = sorted(
                p.relative_to(dataset / split / kind).with_suffix("") for p in (dataset / split / kind).rglob("*.*")
            )
            identities.setdefault(split, {p.parts[0] for p in files})
            assert {p.parts[0] for p in files} == identities[split]
            assert len(files) == 2 * 2 * 3  # identities x videos x frames
            assert all(len(p.parts) == 3 and p.parts[1] in ("v00", "v01") for p in files)
    assert identities == {"train": {"id000", "id001"}, "test": {"id002", "id003"}}
    rows = list(csv.reader((dataset / "identities.csv").read_text().splitlines()))
    assert rows[0] == ["identity", "label", "split"]
    assert [r[1] for r in rows[1:]] == ["0", "1", "2", "3"]
    assert read_image(dataset / "train/images/id000/v01/000002.png").shape == (SIZE, SIZE, 3)
    assert read_image(dataset / "train/landmark_images/id000/v01/000002.png").shape == (SIZE, SIZE, 3)


def test_pairs_stay_in_their_split_and_files_exist(dataset: Path):
    for split, members in (("train", {"id000", "id001"}), ("test", {"id002", "id003"})):
        rows = _pairs(dataset, split)
        assert len(rows) == 2 * 3 and list(rows[0]) == list(PAIR_COLUMNS)
        for row in rows:
            assert {row["source_identity"], row["reference_identity"]} <= members
            assert row["source_identity"] != row["reference_identity"]
            for key in ("source_image", "reference_image", "target_image", "target_landmark_image", "target_landmarks"):
                assert (dataset / split / row[key]).is_file()


def test_true_target_is_the_source_person_in_the_reference_pose(dataset: Path):
    closer = 0
    rows = _pairs(dataset, "train") + _pairs(dataset, "test")
    for row in rows:
        split = "train" if row["source_identity"] in ("id000", "id001") else "test"
        folder = dataset / split
        target = read_image(folder / row["target_image"]).astype(int)
        source = read_image(folder / row["source_image"]).astype(int)
        assert np.abs(target - source).mean() > 2.0
        target_lm = np.loadtxt(folder / row["target_landmarks"])
        source_lm = np.loadtxt(folder / row["source_image"].replace("images/", "landmarks/").replace(".png", ".txt"))
        reference_lm = np.loadtxt(
            folder / row["reference_image"].replace("images/", "landmarks/").replace(".png", ".txt")
        )
        to_reference = np.linalg.norm(target_lm - reference_lm, axis=1).mean()
        to_source = np.linalg.norm(target_lm - source_lm, axis=1).mean()
        closer += to_reference < to_source
        assert to_reference < 0.08 * SIZE  # only the face shape differs from the reference's landmarks
    assert closer == len(rows)
