"""src/io/rgbd_layout.py against its documented formula, written out as a naive per-value reference.

The depth encoding maps [near, far] mm linearly onto levels 1..max_level, 0 = background; a level shifted by one
(1 + round(...) -> round(...)) moves every face by mm_per_level and turns the nearest face point into background.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from src.io.rgbd_layout import (
    DepthEncoding,
    depth_encoding_from_config,
    format_landmark_file,
    frame_group,
    intrinsics_from_config,
    parse_landmark_file,
    processed_paths,
    read_config,
    unprocessed_paths,
    write_config,
)


def naive_level(mm: float, near: float, far: float, max_level: int) -> int:
    if not math.isfinite(mm) or mm < near or mm > far:
        return 0
    step = (far - near) / (max_level - 1)
    return min(max(1 + int(np.round((mm - near) / step)), 1), max_level)


@pytest.mark.parametrize("bits", [8, 16])
def test_encode_decode_equal_the_naive_formula(bits: int) -> None:
    enc = DepthEncoding(480.0, 700.0, bits)
    max_level = 255 if bits == 8 else 65535
    assert enc.max_level == max_level and enc.dtype == (np.uint8 if bits == 8 else np.uint16)
    assert enc.mm_per_level == pytest.approx(220.0 / (max_level - 1))
    mm = np.array([0.0, np.nan, np.inf, 479.99, 480.0, 480.4, 550.123, 699.9, 700.0, 700.01, -5.0])
    levels = enc.encode(mm)
    assert levels.dtype == enc.dtype
    assert levels.tolist() == [naive_level(v, 480.0, 700.0, max_level) for v in mm]
    assert levels[4] == 1 and levels[8] == max_level  # near is level 1 (not background), far is the top level
    decoded = enc.decode(levels)
    for level, value in zip(levels.tolist(), decoded.tolist()):
        expected = 0.0 if level == 0 else 480.0 + (level - 1) * 220.0 / (max_level - 1)
        assert value == pytest.approx(expected, abs=1e-3)
    inside = np.isfinite(mm) & (mm >= 480) & (mm <= 700)
    assert np.abs(decoded[inside] - mm[inside]).max() <= enc.mm_per_level / 2 + 1e-3


def test_unit_range_maps_background_to_minus_one_and_top_level_to_one() -> None:
    enc = DepthEncoding(500.0, 600.0, 16)
    levels = np.array([0, 1, 2, 32767, 65534, 65535], dtype=np.uint16)
    unit = enc.levels_to_unit(levels)
    np.testing.assert_allclose(unit, levels / 65535.0 * 2 - 1, atol=1e-6)
    assert unit[0] == -1.0 and unit[-1] == 1.0
    np.testing.assert_array_equal(enc.unit_to_levels(unit), levels)
    np.testing.assert_array_equal(enc.unit_to_levels(np.array([-3.0, 2.0])), [0, 65535])
    np.testing.assert_allclose(enc.unit_to_mm(unit), enc.decode(levels))
    assert enc.unit_to_mm(np.array([-1.0]))[0] == 0.0


def test_encoding_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match=r"^depth bits must be 8 or 16, got 12$"):
        DepthEncoding(1.0, 2.0, 12)
    with pytest.raises(ValueError, match="empty"):
        DepthEncoding(2.0, 2.0)
    DepthEncoding(1.0, 1.001)  # any positive range is valid


def test_landmark_file_round_trip_and_bounding_box(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(10, 500, size=(70, 2))
    path = tmp_path / "a_000001.txt"
    path.write_text(format_landmark_file(points))
    parsed = parse_landmark_file(path)
    np.testing.assert_allclose(parsed.points, points, atol=5e-4)
    lo, hi = points.min(0), points.max(0)
    np.testing.assert_allclose(parsed.aabb, (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]), atol=5e-4)
    given = format_landmark_file(points, aabb=(1.0, 2.0, 3.0, 4.0))
    assert given.splitlines()[:4] == ["aabb_x: 1.000", "aabb_y: 2.000", "aabb_width: 3.000", "aabb_height: 4.000"]
    with pytest.raises(ValueError, match=r"expected shape \(70, 2\)"):
        format_landmark_file(points[:68])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("aabb_x: 1\naabb_y: 1\naabb_width: 1\nX: 1,\nY: 1,\n", "not a landmark file"),
        ("aabb_x: 1\naabb_y: 1\naabb_width: 1\naabb_height: 1\nX: " + "1," * 69 + "\nY: " + "1," * 70, "got 69 and 70"),
        ("aabb_x: 1\naabb_y: 1\naabb_width: 1\naabb_height: 1\nX: a,\nY: 1,\n", "not a landmark file"),
    ],
)
def test_bad_landmark_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        parse_landmark_file(path)
    assert str(path) in str(caught.value)


def test_config_round_trip_and_depth_encoding(tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    write_config(path, {"near_mm": 480.5, "far_mm": 700, "fx": 500, "fy": 501, "cx": 255.5, "cy": 256.5, "note": "a:b"})
    config = read_config(path)
    assert config["note"] == "a:b" and config["near_mm"] == "480.5"
    assert depth_encoding_from_config(config) == DepthEncoding(480.5, 700.0, 8)  # the original's files: 8 bits
    assert depth_encoding_from_config({**config, "depth_bits": "16"}).bits == 16
    assert intrinsics_from_config(config) == (500.0, 501.0, 255.5, 256.5)
    assert intrinsics_from_config({"fx": "1"}) is None
    with pytest.raises(KeyError, match="missing key 'far_mm'"):
        depth_encoding_from_config({"near_mm": "1"}, source="x/config.txt")
    with pytest.raises(FileNotFoundError, match=r"absent\.txt: dataset config file is missing$"):
        read_config(tmp_path / "absent.txt")


def test_frame_groups_and_paths() -> None:
    assert frame_group("s1_000004") == "s1" and frame_group("a_b_000001") == "a_b" and frame_group("solo") == "solo"
    paths = processed_paths("/d", "eval", "s1_000004")
    assert {k: str(v) for k, v in paths.items()} == {
        "Color": "/d/eval/Color/s1_000004.png",
        "Depth": "/d/eval/Depth/s1_000004.png",
        "Feature": "/d/eval/Feature/s1_000004.png",
        "Landmark": "/d/eval/Landmark/s1_000004.txt",
    }
    assert str(unprocessed_paths("/d", "train", "7")["Infrared"]) == "/d/train/Infrared/7.png"


def test_layout_names_are_the_originals_on_disk_layout() -> None:
    """Folder and file names are the on-disk format the original tools read and write: they must not drift."""
    import dataclasses

    from src.io import rgbd_layout

    assert rgbd_layout.SPLITS == ("train", "eval")
    assert rgbd_layout.UNPROCESSED_KINDS == ("Color", "Depth", "Infrared")
    assert rgbd_layout.PROCESSED_IMAGE_KINDS == ("Color", "Depth", "Feature")
    assert (rgbd_layout.LANDMARK_KIND, rgbd_layout.CONFIG_FILE) == ("Landmark", "config.txt")
    encoding = DepthEncoding(1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        encoding.bits = 16  # type: ignore[misc]
    landmarks = rgbd_layout.FaceLandmarks((0.0, 0.0, 1.0, 1.0), np.zeros((70, 2)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        landmarks.aabb = (1.0, 1.0, 1.0, 1.0)  # type: ignore[misc]


def test_landmark_problems_name_non_finite_and_far_points() -> None:
    from src.io.rgbd_layout import landmark_problem

    points = np.full((70, 2), 16.0)
    assert landmark_problem(points, 32, 32) is None
    points[[3, 9], 1] = np.nan
    assert landmark_problem(points, 32, 32) == "landmark value(s) not finite at point 3, 9"
    points[[3, 9], 1] = 16.0
    points[5] = (-8.0, 40.0)  # 25 % outside on both axes: still a cut-off jaw, not an error
    points[6] = (40.0, -8.0)
    assert landmark_problem(points, 32, 32) is None
    points[7] = (16.0, 40.1)
    assert landmark_problem(points, 32, 32) == (
        "1 landmark(s) far outside the 32x32 image (point 7 at (16.0, 40.1)): coordinates of another image?"
    )
    points[7] = (-8.1, 16.0)
    assert "point 7 at (-8.1, 16.0)" in landmark_problem(points, 32, 32)
    wide = np.tile([70.0, 20.0], (70, 1))  # inside 64 wide x 32 high (+25 %), outside 32 wide x 64 high
    assert landmark_problem(wide, 64, 32) is None and landmark_problem(wide, 32, 64) is not None
