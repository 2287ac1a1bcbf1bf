"""Head2Head writer: layout, time split, misc camera, true reenactment folders, eye-gaze image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.faceworld.writers.common import world_for
from src.faceworld.writers.head2head import KINDS, _video, write_head2head_dataset
from src.io.images import read_image

FRAMES, PART, SIZE = 12, 4, 48


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("h2h")
    return write_head2head_dataset(
        root, num_identities=2, frames_per_video=FRAMES, size=SIZE, part_frames=PART, reenactments=1, workers=1,
        progress=False,
    )  # fmt: skip


def _frames(folder: Path) -> list[int]:
    return sorted(int(p.stem) for p in folder.iterdir())


def test_layout_sequences_and_time_split(dataset: Path):
    train, test = dataset / "dataset" / "train", dataset / "dataset" / "test"
    first_test = FRAMES - round(FRAMES * 0.33)  # the last third goes to test
    for kind in (*KINDS, "eye_gaze"):
        assert sorted(p.name for p in (train / kind).iterdir()) == [
            "id000_000000",
            "id000_000001",
            "id001_000000",
            "id001_000001",
        ]
        assert sorted(p.name for p in (test / kind).iterdir()) == ["id000", "id000_id001", "id001"]
        for identity in ("id000", "id001"):
            train_frames = _frames(train / kind / f"{identity}_000000") + _frames(train / kind / f"{identity}_000001")
            assert train_frames == list(range(first_test))
            assert _frames(test / kind / identity) == list(range(first_test, FRAMES))
        assert _frames(train / kind / "id000_000000") == list(range(PART))
    for split in (train, test):
        assert sorted(p.name for p in (split / "id_coeffs").iterdir()) == ["id000.txt", "id001.txt"]
    image = read_image(train / "images" / "id000_000000" / "000000.png")
    assert image.shape == (SIZE, SIZE, 3)
    assert np.loadtxt(train / "landmarks70" / "id000_000000" / "000003.txt").shape == (70, 2)
    meta = json.loads((dataset / "faceworld.json").read_text())
    assert meta["first_test_frame"] == first_test and meta["reenactments"] == ["id000_id001"]


def test_misc_camera_projects_the_model_like_the_nmfc(dataset: Path):
    """misc: x_px = scale * (R @ X)[:2] + t[:2] for model-space X; the face's landmarks land on the image ones."""
    world = world_for()
    params = _video(0, FRAMES, 25.0, 0)[5]
    lines = (dataset / "dataset/train/misc/id000_000001/000005.txt").read_text().splitlines()
    assert len(lines) == 5
    scale = float(lines[0])
    rotation = np.array([[float(v) for v in line.split()] for line in lines[1:4]])
    translation = np.array([float(v) for v in lines[4].split()])
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    model_landmarks = world.model.landmarks(world.face_vertices(params))
    projected = scale * (model_landmarks @ rotation.T)[:, :2] + translation[:2]
    image_landmarks = np.loadtxt(dataset / "dataset/train/landmarks70/id000_000001/000005.txt")[:68]
    # Weak perspective vs the pinhole image: within a few percent of the face size.
    assert np.abs(projected - image_landmarks).mean() < 0.03 * SIZE
    coeffs = np.loadtxt(dataset / "dataset/train/exp_coeffs/id000_000001/000005.txt")
    np.testing.assert_allclose(coeffs, params.expression, atol=1e-6)
    np.testing.assert_allclose(np.loadtxt(dataset / "dataset/train/id_coeffs/id000.txt"), params.identity, atol=1e-6)


def test_reenactment_is_the_target_person_with_the_source_motion(dataset: Path):
    test = dataset / "dataset" / "test"
    frame = f"{FRAMES - 1:06d}"
    reenacted = read_image(test / "images" / "id000_id001" / f"{frame}.png").astype(int)
    source = read_image(test / "images" / "id001" / f"{frame}.png").astype(int)
    assert np.abs(reenacted - source).mean() > 5.0  # another person
    np.testing.assert_allclose(
        np.loadtxt(test / "exp_coeffs" / "id000_id001" / f"{frame}.txt"),
        np.loadtxt(test / "exp_coeffs" / "id001" / f"{frame}.txt"),
    )
    target_misc = (test / "misc" / "id000_id001" / f"{frame}.txt").read_text().splitlines()
    source_misc = (test / "misc" / "id001" / f"{frame}.txt").read_text().splitlines()
    assert target_misc[1:4] == source_misc[1:4]  # the source's head rotation
    reenacted_lm = np.loadtxt(test / "landmarks70" / "id000_id001" / f"{frame}.txt")
    source_lm = np.loadtxt(test / "landmarks70" / "id001" / f"{frame}.txt")
    own_lm = np.loadtxt(test / "landmarks70" / "id000" / f"{frame}.txt")
    assert np.abs(reenacted_lm - source_lm).mean() < np.abs(reenacted_lm - own_lm).mean()


def test_eye_gaze_image_draws_pupils_red_and_eyes_white(dataset: Path):
    image = read_image(dataset / "dataset/train/eye_gaze/id001_000000/000002.png")[..., ::-1]  # BGR on disk
    landmarks = np.loadtxt(dataset / "dataset/train/landmarks70/id001_000000/000002.txt")
    for pupil in (68, 69):
        x, y = np.round(landmarks[pupil]).astype(int)
        r, g, b = image[y, x]
        assert r > 150 and g < 80 and b < 80
    white = (image.min(axis=2) > 100).sum()
    assert white > 10
    assert (image.max(axis=2) > 0).mean() < 0.1  # black elsewhere


def test_too_short_video_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="frames_per_video=1 is too short"):
        write_head2head_dataset(tmp_path, num_identities=1, frames_per_video=1, size=32, workers=1, progress=False)
