"""Head2Head writer: the original's layout and split rules, misc camera, reenactment folders, eye-gaze image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.faceworld.writers.common import world_for
from src.faceworld.writers.head2head import (
    KINDS,
    _video,
    read_misc,
    savetxt_text,
    split_video,
    write_head2head_dataset,
)
from src.io.images import read_image

FRAMES, PART, SIZE = 13, 4, 48
# int(0.33 * 13) = 4 frames meant for test; 9 train frames floor to 2 whole parts (0-7); frame 8 joins the test.
FIRST_TEST = 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("h2h")
    return write_head2head_dataset(
        root, num_identities=2, frames_per_video=FRAMES, size=SIZE, part_frames=PART, reenactments=1, workers=1,
        progress=False,
    )  # fmt: skip


def _frames(folder: Path) -> list[int]:
    return sorted(int(p.stem) for p in folder.iterdir())


def test_split_rule_is_the_originals():
    # The reference's worked example: 1000 frames -> train 000000-000649 (13 parts), test 000650-000999.
    assert split_video(1000, 0.33, 50) == 650
    assert split_video(150, 0.33, 50) == 100  # int(49.5) = 49 for test; 101 train frames floor to 100
    assert split_video(FRAMES, 0.33, PART) == FIRST_TEST
    with pytest.raises(ValueError, match="too short for one whole 50-frame train part"):
        split_video(60, 0.33, 50)  # 41 train frames: no whole part


def test_layout_sequences_and_time_split(dataset: Path):
    train, test = dataset / "dataset" / "train", dataset / "dataset" / "test"
    for kind in (*KINDS, "eye_gaze"):
        assert sorted(p.name for p in (train / kind).iterdir()) == [
            "id000_000000",
            "id000_000001",
            "id001_000000",
            "id001_000001",
        ]
        # Reenactments never sit among the test sequences (the original's self-reenactment reader walks these).
        assert sorted(p.name for p in (test / kind).iterdir()) == ["id000", "id001"]
        for identity in ("id000", "id001"):
            for part in (0, 1):  # whole parts only, part = frame // PART
                frames = _frames(train / kind / f"{identity}_{part:06d}")
                assert frames == list(range(part * PART, (part + 1) * PART))
            assert _frames(test / kind / identity) == list(range(FIRST_TEST, FRAMES))
    for split in (train, test):
        assert sorted(p.name for p in (split / "id_coeffs").iterdir()) == ["id000.txt", "id001.txt"]
    image = read_image(train / "images" / "id000_000000" / "000000.png")
    assert image.shape == (SIZE, SIZE, 3)
    assert np.loadtxt(train / "landmarks70" / "id000_000000" / "000003.txt").shape == (70, 2)
    meta = json.loads((dataset / "faceworld.json").read_text())
    assert meta["first_test_frame"] == FIRST_TEST and meta["reenactments"] == ["id000_id001"]


def test_text_files_are_what_numpy_savetxt_writes(dataset: Path, tmp_path: Path):
    path = dataset / "dataset/train/landmarks70/id001_000001/000005.txt"
    values = np.loadtxt(path)
    reference = tmp_path / "ref.txt"
    np.savetxt(reference, values)
    assert path.read_text() == reference.read_text()
    assert savetxt_text(np.arange(3.0)) == "".join(f"{v:.18e}\n" for v in range(3))


def test_misc_camera_projects_the_model_like_the_nmfc(dataset: Path):
    """misc: 7 lines; x_px = scale * (R @ X)[:2] + t[:2] for model-space X; the landmarks land on the image ones."""
    world = world_for()
    params = _video(0, FRAMES, 25.0, 0)[5]
    path = dataset / "dataset/train/misc/id000_000001/000005.txt"
    assert len(path.read_text().splitlines()) == 7
    scale, rotation, translation = read_misc(path)
    # read back exactly as the original's reenact.py does
    np.testing.assert_allclose(np.loadtxt(path, max_rows=1), scale)
    np.testing.assert_allclose(np.loadtxt(path, skiprows=1, max_rows=3), rotation)
    np.testing.assert_allclose(np.loadtxt(path, skiprows=4), translation)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    model_landmarks = world.model.landmarks(world.face_vertices(params))
    projected = scale * (model_landmarks @ rotation.T)[:, :2] + translation[:2]
    image_landmarks = np.loadtxt(dataset / "dataset/train/landmarks70/id000_000001/000005.txt")[:68]
    # Weak perspective vs the pinhole image: within a few percent of the face size.
    assert np.abs(projected - image_landmarks).mean() < 0.03 * SIZE
    coeffs = np.loadtxt(dataset / "dataset/train/exp_coeffs/id000_000001/000005.txt")
    np.testing.assert_allclose(coeffs, params.expression, atol=1e-12)
    np.testing.assert_allclose(np.loadtxt(dataset / "dataset/train/id_coeffs/id000.txt"), params.identity, atol=1e-12)


def test_reenactment_folders_follow_the_original(dataset: Path):
    test = dataset / "dataset" / "test"
    seq, frame = "id000_id001", f"{FRAMES - 1:06d}"
    for kind in ("source_images", "source_nmfcs", "source_landmarks70"):
        assert sorted(p.name for p in (test / kind).iterdir()) == [seq]
        assert _frames(test / kind / seq) == list(range(FIRST_TEST, FRAMES))  # the source's frame names
    # source_images: the source's own test frames, byte for byte (the original copies them)
    assert (test / "source_images" / seq / f"{frame}.png").read_bytes() == (
        test / "images" / "id001" / f"{frame}.png"
    ).read_bytes()
    truth = test / "reenactment_truth"
    reenacted = read_image(truth / "images" / seq / f"{frame}.png").astype(int)
    source = read_image(test / "images" / "id001" / f"{frame}.png").astype(int)
    assert np.abs(reenacted - source).mean() > 5.0  # another person
    # source_nmfcs: the reenacted face's NMFC (the target's shape moved by the source)
    assert (test / "source_nmfcs" / seq / f"{frame}.png").read_bytes() == (
        truth / "nmfcs" / seq / f"{frame}.png"
    ).read_bytes()
    np.testing.assert_allclose(
        np.loadtxt(truth / "exp_coeffs" / seq / f"{frame}.txt"),
        np.loadtxt(test / "exp_coeffs" / "id001" / f"{frame}.txt"),
    )
    target_misc = read_misc(truth / "misc" / seq / f"{frame}.txt")
    source_misc = read_misc(test / "misc" / "id001" / f"{frame}.txt")
    np.testing.assert_allclose(target_misc[1], source_misc[1])  # the source's head rotation
    reenacted_lm = np.loadtxt(truth / "landmarks70" / seq / f"{frame}.txt")
    eyes = np.loadtxt(test / "source_landmarks70" / seq / f"{frame}.txt")
    assert eyes.shape == (14, 2)
    np.testing.assert_allclose(eyes, reenacted_lm[[*range(36, 48), 68, 69]])
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
    with pytest.raises(ValueError, match="frames_per_video=3 is too short"):
        write_head2head_dataset(tmp_path, num_identities=1, frames_per_video=3, size=32, workers=1, progress=False)
    assert not any(tmp_path.iterdir())
