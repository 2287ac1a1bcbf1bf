"""RGBD layout writers: files readable by the shared layout code, splits held out, deterministic over workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from src.faceworld.writers.rgbd import kinect_crop_camera, write_processed_dataset, write_unprocessed_capture
from src.io.images import read_image
from src.io.rgbd_layout import (
    depth_encoding_from_config,
    frame_group,
    intrinsics_from_config,
    parse_landmark_file,
    read_config,
)


def _ids(root: Path, split: str, kind: str = "Color") -> list[str]:
    return sorted(p.stem for p in (root / split / kind).glob("*.png"))


def test_processed_dataset_layout_and_identity_split(tmp_path):
    root = write_processed_dataset(
        tmp_path / "proc",
        num_identities=3,
        frames_per_identity=3,
        size=128,
        eval_identities=1,
        seed=3,
        workers=0,
        progress=False,
    )
    config = read_config(root / "config.txt")
    enc = depth_encoding_from_config(config)
    assert enc.bits == 16 and enc.far_mm - enc.near_mm == pytest.approx(100.0)
    assert intrinsics_from_config(config) is not None
    train, evals = _ids(root, "train"), _ids(root, "eval")
    assert {frame_group(i) for i in train} == {"id000", "id001"} and {frame_group(i) for i in evals} == {"id002"}
    assert train[0] == "id000_000000" and len(train) == 6 and len(evals) == 3
    for kind in ("Depth", "Feature"):
        assert _ids(root, "train", kind) == train
    fid = train[1]
    color = read_image(root / "train" / "Color" / f"{fid}.png")
    depth = read_image(root / "train" / "Depth" / f"{fid}.png")
    feature = read_image(root / "train" / "Feature" / f"{fid}.png")
    lm = parse_landmark_file(root / "train" / "Landmark" / f"{fid}.txt")
    assert color.shape[:2] == depth.shape[:2] == feature.shape[:2] == (128, 128)
    assert depth.dtype == np.uint16
    mm = enc.decode(depth)
    # The nose sits at the desired nose depth (the first frame's), the face lies inside the crop with padding.
    nose = lm.points[30]
    nose_mm = mm[round(nose[1]), round(nose[0])]
    assert nose_mm == pytest.approx(float(config["nose_depth_mm"]), abs=3.0)
    assert lm.points.min() >= 0 and lm.points.max() <= 127
    assert (feature > 0).mean() > 0.02


def test_processed_dataset_is_identical_with_and_without_workers(tmp_path):
    kwargs = dict(num_identities=2, frames_per_identity=2, size=128, eval_identities=1, seed=9, progress=False)
    a = write_processed_dataset(tmp_path / "a", workers=0, **kwargs)
    b = write_processed_dataset(tmp_path / "b", workers=2, **kwargs)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    # 4 frames x 4 kinds, config.txt, and the resume record (.faceworld_write/settings.json + complete.json).
    assert files_a == files_b and len(files_a) == 19
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_processed_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        write_processed_dataset(tmp_path, num_identities=2, frames_per_identity=1, size=100, progress=False)
    with pytest.raises(ValueError, match="eval_identities"):
        write_processed_dataset(tmp_path, num_identities=2, frames_per_identity=1, eval_identities=2, progress=False)


def test_unprocessed_capture_layout(tmp_path):
    root = write_unprocessed_capture(
        tmp_path / "raw", num_sessions=2, frames_per_session=2, size=(120, 100), seed=1, workers=0, progress=False
    )
    config = read_config(root / "config.txt")
    cam = kinect_crop_camera((120, 100))
    assert float(config["fx"]) == pytest.approx(cam.fx, abs=1e-3)
    assert _ids(root, "train") == ["s00_000000", "s00_000001"] and _ids(root, "eval") == ["s01_000000", "s01_000001"]
    color = read_image(root / "train" / "Color" / "s00_000001.png")
    depth = read_image(root / "train" / "Depth" / "s00_000001.png")
    ir = read_image(root / "train" / "Infrared" / "s00_000001.png")
    assert color.shape == (120, 100, 3) and depth.dtype == np.uint16 and ir.dtype == np.uint16
    valid = depth[depth > 0]
    assert valid.min() > 400 and valid.max() < 1000  # a head at about 0.7 m
    assert ir.max() > 100
    with pytest.raises(ValueError, match="size must be positive"):
        write_unprocessed_capture(tmp_path / "x", num_sessions=2, frames_per_session=1, size=(0, 10), progress=False)
