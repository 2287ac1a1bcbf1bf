"""PRNet / faces2one writer: layout, identity split, position maps that sample the crop's face, the true transfer."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from src.faceworld.writers.common import world_for
from src.faceworld.writers.prnet import params_from_record, write_prnet_dataset
from src.geometry.camera import PinholeCamera
from src.io.images import read_image
from src.models.components.prnet_uv import UV_FILES, read_uv_data

SIZE = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_prnet_dataset(
        tmp_path_factory.mktemp("prnet"), num_identities=3, images_per_identity=2, size=SIZE, transfer_pairs=1,
        transfer_frames=2, workers=1, progress=False,
    )  # fmt: skip


def test_layout_and_identity_split(dataset: Path):
    assert sorted(p.name for p in (dataset / "train").iterdir()) == ["id000", "id001"]
    assert sorted(p.name for p in (dataset / "test").iterdir()) == ["id002"]
    names = sorted(p.name for p in (dataset / "test" / "id002").iterdir())
    assert names == [f"00000{k}{ext}" for k in range(2) for ext in (".jpg", ".json", ".npy")]
    previews = sorted(p.name for p in (dataset / "previews" / "test" / "id002").iterdir())
    assert previews == ["000000_posmap.jpg", "000001_posmap.jpg"]
    uv = dataset / "uv-data"
    assert sorted(p.name for p in uv.iterdir()) == sorted(UV_FILES)
    kpt = np.loadtxt(uv / "uv_kpt_ind.txt")
    assert kpt.shape == (2, 68) and kpt.min() >= 0 and kpt.max() < SIZE
    assert "e+" in (uv / "uv_kpt_ind.txt").read_text().split()[0]  # PRNet's %.18e text
    assert read_image(uv / "uv_face_mask.png").shape == (SIZE, SIZE)
    pos = np.load(dataset / "train" / "id001" / "000001.npy")
    assert pos.shape == (SIZE, SIZE, 3) and pos.dtype == np.float32
    assert read_image(dataset / "train" / "id001" / "000001.jpg").shape == (SIZE, SIZE, 3)
    pair = dataset / "faces2one" / "id000_id001"
    for kind in ("source", "reference", "transfer", "face_mask", "source_posmap", "reference_posmap"):
        assert len(list((pair / kind).iterdir())) == 2


def test_an_image_glob_finds_only_samples_each_with_its_npy(dataset: Path):
    """The 300W-LP reader idiom (glob the images, swap the suffix for .npy) sees no visualisation."""
    for split in ("train", "test"):
        images = sorted(dataset.glob(f"{split}/*/*.jpg")) + sorted(dataset.glob(f"{split}/*/*.png"))
        assert len(images) == (4 if split == "train" else 2)
        assert all(image.with_suffix(".npy").is_file() for image in images)
    listed = (dataset / "trainDataLabel.txt").read_text().splitlines()
    assert len(listed) == 4
    for line in listed:
        image, npy = line.split(" ")
        assert (dataset / image).is_file() and (dataset / npy).is_file() and image[:-4] == npy[:-4]
    assert len((dataset / "testDataLabel.txt").read_text().splitlines()) == 2


def test_uv_data_files_agree_with_the_world(dataset: Path):
    """face_ind = the mask's texels in row-major order; triangles index that list and join mask neighbours;
    the weight mask has PRNet's levels (255 keypoints, 64 eyes / nose / mouth, 48 face, 0 off the face)."""
    world = world_for(256, SIZE)
    uv = read_uv_data(dataset / "uv-data")
    np.testing.assert_array_equal(uv.face_mask, world.uv_face_mask())
    np.testing.assert_array_equal(uv.keypoints, world.uv_keypoint_indices())
    rows, cols = np.nonzero(uv.face_mask)  # row-major, like a loop over rows then columns
    np.testing.assert_array_equal(uv.face_indices, rows * SIZE + cols)
    corners = uv.face_indices[uv.triangles]  # (F, 3) flat texels
    r, c = corners // SIZE, corners % SIZE
    assert len(uv.triangles) > uv.face_mask.sum()  # about two per texel
    assert (r.max(1) - r.min(1) <= 1).all() and (c.max(1) - c.min(1) <= 1).all()
    weights = uv.weight_mask
    assert set(np.unique(weights)) <= {0, 48, 64, 255}
    assert not weights[~uv.face_mask].any() and (weights[uv.face_mask] >= 48).all()
    assert (weights[uv.keypoints[:, 0], uv.keypoints[:, 1]] == 255).all()
    eye_centre = np.round(uv.keypoints[36:42].mean(0)).astype(int)
    mouth_centre = np.round(uv.keypoints[48:60].mean(0)).astype(int)
    assert weights[tuple(eye_centre)] >= 64 and weights[tuple(mouth_centre)] >= 64  # (a keypoint X may cover one)
    cheek = np.round(0.5 * (uv.keypoints[2] + uv.keypoints[31])).astype(int)  # between the jaw and the nostril
    assert weights[tuple(cheek)] == 48


def test_position_map_samples_the_face_in_the_crop(dataset: Path):
    """x, y of every face texel lands on the face in the crop; keypoints read through uv_kpt_ind are the render's
    landmarks; z is PRNet's: 0 at the farthest face point, the nose tip well in front."""
    world = world_for(256, SIZE)
    uv_mask = read_image(dataset / "uv-data" / "uv_face_mask.png") > 0
    cols, rows = np.loadtxt(dataset / "uv-data" / "uv_kpt_ind.txt").astype(int)
    for path in sorted(dataset.glob("*/id*/*.npy")):
        pos = np.load(path)
        record = json.loads(path.with_suffix(".json").read_text())
        cam = record["camera"]
        camera = PinholeCamera(cam["fx"], cam["fy"], cam["cx"], cam["cy"], cam["size"], cam["size"])
        frame = world.render(params_from_record(record["params"]), camera, ("mask", "landmarks"))
        x, y = pos[..., 0][uv_mask], pos[..., 1][uv_mask]
        inside = (x >= 0) & (x <= SIZE - 1) & (y >= 0) & (y <= SIZE - 1)
        assert inside.mean() > 0.9
        # Silhouette texels may round to the pixel just outside: allow one pixel of slack.
        face = cv2.dilate((frame["mask"] > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        on_face = face[np.round(y[inside]).astype(int), np.round(x[inside]).astype(int)]
        assert on_face.mean() > 0.995
        # Keypoint texels are rounded to the grid (and the inner lips share a slit): about a texel of error.
        error = np.linalg.norm(pos[rows, cols, :2] - frame["landmarks2d"][:68], axis=1)
        assert error.mean() < 1.0 and error.max() < 0.06 * SIZE
        z = pos[..., 2][uv_mask]
        assert z.min() == 0.0 and pos[rows[30], cols[30], 2] > np.percentile(z, 90)
        assert not pos[~uv_mask].any()


def test_faces2one_truth_changes_only_the_face_region(dataset: Path):
    pair = dataset / "faces2one" / "id000_id001"
    for frame in ("000000", "000001"):
        reference = read_image(pair / "reference" / f"{frame}.png").astype(int)
        transfer = read_image(pair / "transfer" / f"{frame}.png").astype(int)
        source = read_image(pair / "source" / f"{frame}.png").astype(int)
        region = read_image(pair / "face_mask" / f"{frame}.png") > 0
        assert 0.05 < region.mean() < 0.8
        np.testing.assert_array_equal(transfer[~region], reference[~region])
        assert np.abs(transfer[region] - reference[region]).mean() > 5.0  # A's skin, not B's
        assert np.abs(transfer - source).mean() > 5.0  # B's pose and background, not A's frame
        posmap = np.load(pair / "reference_posmap" / f"{frame}.npy")
        assert posmap.shape == (SIZE, SIZE, 3)


def test_faces2one_videos_keep_each_identitys_hair():
    """The transfer truth renders B's geometry with A's appearance, so the videos no longer drop the hair."""
    from src.faceworld.writers.common import identity_seed
    from src.faceworld.writers.prnet import _transfer_video

    world = world_for(256, SIZE)
    for identity in range(6):
        video = _transfer_video(world, identity, 2, 15.0, 0)
        assert all(p.hair == world.neutral_params(identity_seed(0, identity)).hair for p in video)
    assert any(world.neutral_params(identity_seed(0, k)).hair for k in range(6))
