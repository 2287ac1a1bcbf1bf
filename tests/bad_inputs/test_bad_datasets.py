"""Malformed processed RGBD datasets (src/io/rgbd_layout.py layout) given to `python train.py ... data.root=<it>`.

Every case damages a copy of a clean tiny dataset in one way a user's data goes wrong, runs train.py, and expects
ONE `error: ...` line naming the file (exit 1) before any training, with the dataset byte-identical afterwards.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.bad_inputs.bad_input_helpers import assert_one_line_error, run_entry, tree_hashes, truncate
from tests.framework.framework_fixtures import TINY_RGBD_RUN

FRAME = "s1_000001"


def _file(root: Path, kind: str, frame: str = FRAME, split: str = "train") -> Path:
    return root / split / kind / f"{frame}.{'txt' if kind == 'Landmark' else 'png'}"


def _rewrite_image(root: Path, kind: str, image: np.ndarray) -> None:
    assert cv2.imwrite(str(_file(root, kind)), image)


def _landmark_values(root: Path, xs: list[str] | None = None, ys: list[str] | None = None) -> None:
    path = _file(root, "Landmark")
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        if line.startswith("X:") and xs is not None:
            line = "X: " + "".join(f"{v}," for v in xs)
        if line.startswith("Y:") and ys is not None:
            line = "Y: " + "".join(f"{v}," for v in ys)
        out.append(line)
    path.write_text("\n".join(out) + "\n")


def _current_points(root: Path) -> tuple[list[str], list[str]]:
    entries = dict(line.split(":", 1) for line in _file(root, "Landmark").read_text().splitlines() if ":" in line)
    return [v for v in entries["X"].split(",") if v.strip()], [v for v in entries["Y"].split(",") if v.strip()]


def _nan_landmark(root: Path) -> None:
    xs, _ = _current_points(root)
    xs[30] = "nan"
    _landmark_values(root, xs=xs)


def _far_landmarks(root: Path) -> None:
    """Landmarks in the camera frame's coordinates (1920 px wide), not the 32 px crop's."""
    xs, ys = _current_points(root)
    _landmark_values(root, xs=[f"{float(v) + 1400:.3f}" for v in xs], ys=[f"{float(v) + 600:.3f}" for v in ys])


def _config_lines(root: Path, **changes: str | None) -> None:
    path = root / "config.txt"
    entries = dict(line.split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
    for key, value in changes.items():
        if value is None:
            entries.pop(key, None)
        else:
            entries[key] = value
    path.write_text("".join(f"{k}: {v}\n" for k, v in entries.items()))


def _empty_split(root: Path, split: str) -> None:
    for folder in (root / split).iterdir():
        for path in folder.iterdir():
            path.unlink()


def _remove_everything(root: Path) -> None:
    for path in root.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# name -> (damage, fragments the error line must hold)
CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "truncated colour PNG": (lambda r: truncate(_file(r, "Color")), [f"Color/{FRAME}.png", "truncated or corrupt PNG"]),
    "zero-length depth PNG": (lambda r: _file(r, "Depth").write_bytes(b""), [f"Depth/{FRAME}.png", "empty file"]),
    "text file named .png": (
        lambda r: _file(r, "Feature").write_text("not an image\n"),
        [f"Feature/{FRAME}.png", "truncated or corrupt PNG"],
    ),
    "colour with 4 channels": (
        lambda r: _rewrite_image(r, "Color", np.zeros((32, 32, 4), np.uint8)),
        [f"train/Color/{FRAME}.png", "expected 8-bit 3-channel colour", "(32, 32, 4)"],
    ),
    "grey colour image": (
        lambda r: _rewrite_image(r, "Color", np.zeros((32, 32), np.uint8)),
        [f"train/Color/{FRAME}.png", "expected 8-bit 3-channel colour"],
    ),
    "16-bit colour image": (
        lambda r: _rewrite_image(r, "Color", np.zeros((32, 32, 3), np.uint16)),
        [f"train/Color/{FRAME}.png", "expected 8-bit 3-channel colour", "uint16"],
    ),
    "8-bit depth in a 16-bit dataset": (
        lambda r: _rewrite_image(r, "Depth", np.full((32, 32), 200, np.uint8)),
        [f"train/Depth/{FRAME}.png", "8-bit depth but config.txt says depth_bits 16"],
    ),
    "3-channel depth": (
        lambda r: _rewrite_image(r, "Depth", np.zeros((32, 32, 3), np.uint16)),
        [f"train/Depth/{FRAME}.png", "expected 1-channel depth"],
    ),
    "colour feature image": (
        lambda r: _rewrite_image(r, "Feature", np.zeros((32, 32, 3), np.uint8)),
        [f"train/Feature/{FRAME}.png", "expected an 8-bit 1-channel feature image"],
    ),
    "images of one frame differ in size": (
        lambda r: _rewrite_image(r, "Feature", np.zeros((48, 48), np.uint8)),
        [f"train/*/{FRAME}: image sizes differ", "Feature 48x48"],
    ),
    "depth file missing": (
        lambda r: _file(r, "Depth").unlink(),
        [f"train/Depth/{FRAME}.png is missing"],
    ),
    "landmark file missing": (
        lambda r: _file(r, "Landmark", "s9_000002", "eval").unlink(),
        ["eval/Landmark/s9_000002.txt is missing"],
    ),
    "colour frames without partners": (
        lambda r: [shutil.copy(_file(r, "Color"), _file(r, "Color", f"s7_00000{i}")) for i in range(3)],
        ["9 problem(s) in the dataset: train/Depth/s7_000000.png is missing", "and 4 more"],
    ),
    "landmark file with 69 points": (
        lambda r: _landmark_values(r, xs=_current_points(r)[0][:69]),
        [f"Landmark/{FRAME}.txt", "expected 70 X and Y values, got 69 and 70"],
    ),
    "landmark file of garbage": (
        lambda r: _file(r, "Landmark").write_text("\x00\x01 garbage"),
        [f"Landmark/{FRAME}.txt", "not a landmark file"],
    ),
    "empty landmark file": (
        lambda r: _file(r, "Landmark").write_text(""),
        [f"Landmark/{FRAME}.txt", "not a landmark file"],
    ),
    "NaN landmark": (_nan_landmark, [f"Landmark/{FRAME}.txt", "not finite", "point 30"]),
    "landmarks outside the image": (_far_landmarks, [f"Landmark/{FRAME}.txt", "outside the 32x32 image"]),
    "config.txt missing": (lambda r: (r / "config.txt").unlink(), ["config.txt: dataset config file is missing"]),
    "config.txt without far_mm": (
        lambda r: _config_lines(r, far_mm=None),
        ["config.txt: missing key 'far_mm'"],
    ),
    "config.txt with 12-bit depth": (
        lambda r: _config_lines(r, depth_bits="12"),
        ["config.txt", "depth bits must be 8 or 16, got 12"],
    ),
    "config.txt with near beyond far": (
        lambda r: _config_lines(r, near_mm="900"),
        ["config.txt", "depth range is empty: near 900.0 mm >= far 700.0 mm"],
    ),
    "config.txt with a word for a number": (
        lambda r: _config_lines(r, near_mm="four hundred"),
        ["config.txt", "four hundred"],
    ),
    "empty training split": (lambda r: _empty_split(r, "train"), ["the train split is empty"]),
    "empty dataset folder": (_remove_everything, ["config.txt: dataset config file is missing"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_dataset_is_one_line_and_left_untouched(
    case: str, clean_dataset: Path, tmp_path: Path, project: Path
) -> None:
    damage, expected = CASES[case]
    root = tmp_path / "processed"
    shutil.copytree(clean_dataset, root)
    damage(root)
    before = tree_hashes(root)
    outcome = run_entry("train.py", [*TINY_RGBD_RUN, f"data.root={root}"], project)
    assert_one_line_error(outcome, *expected)
    assert tree_hashes(root) == before
    assert not list(project.glob("logs/*/runs/*/checkpoints/*"))  # failed before training


def test_missing_dataset_folder_is_one_line(tmp_path: Path, project: Path) -> None:
    outcome = run_entry("train.py", [*TINY_RGBD_RUN, f"data.root={tmp_path}/nowhere"], project)
    assert_one_line_error(outcome, f"{tmp_path}/nowhere: dataset folder not found")
