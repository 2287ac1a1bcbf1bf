"""The DFDN app: input handling (grey, RGBA, tiny, unreadable), bell-window stitching against a naive loop, and
(slow) the whole command on scikit-image's astronaut with a tiny trained checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from src.apps.dfdn.pipeline import InputSkippedError, bell_window, list_inputs, read_photo, stitch
from src.utils.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def test_read_photo_converts_grey_and_rgba_and_skips_bad_files(tmp_path: Path):
    rgb = np.random.default_rng(0).integers(0, 255, (80, 90, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])
    cv2.imwrite(str(tmp_path / "g.png"), rgb[..., 0])
    cv2.imwrite(str(tmp_path / "a.png"), np.dstack([rgb[..., ::-1], np.zeros((80, 90), np.uint8)]))
    cv2.imwrite(str(tmp_path / "t.png"), rgb[:30, :30])
    (tmp_path / "x.jpg").write_bytes(b"text")
    image, note = read_photo(tmp_path / "c.png", 64)
    assert note is None and np.array_equal(image, rgb)
    image, note = read_photo(tmp_path / "g.png", 64)
    assert note == "grey image used as grey RGB" and np.array_equal(image[..., 1], rgb[..., 0])
    image, note = read_photo(tmp_path / "a.png", 64)
    assert note == "RGBA image: alpha dropped" and np.array_equal(image, rgb)
    with pytest.raises(InputSkippedError, match="too small: 30x30 px"):
        read_photo(tmp_path / "t.png", 64)
    with pytest.raises(InputSkippedError, match="not a readable image"):
        read_photo(tmp_path / "x.jpg", 64)
    assert len(list_inputs(tmp_path)) == 5
    with pytest.raises(UserError, match="no such file or folder"):
        list_inputs(tmp_path / "missing")


def test_stitch_is_the_bell_weighted_average():
    rng = np.random.default_rng(1)
    patches = [(0, 0, rng.normal(size=(8, 8))), (0, 4, rng.normal(size=(8, 8))), (4, 4, rng.normal(size=(8, 8)))]
    out, weight = stitch(patches, 16)
    window = bell_window(8)
    assert window[3:5, 3:5].min() > 0.9 and window[0, 0] < 0.01
    for r in range(16):
        for c in range(16):
            num = den = 0.0
            for row, col, patch in patches:
                if row <= r < row + 8 and col <= c < col + 8:
                    num += window[r - row, c - col] * patch[r - row, c - col]
                    den += window[r - row, c - col]
            assert abs(out[r, c] - (num / den if den > 1e-6 else 0.0)) < 1e-5
    assert out[12, 0] == 0 and weight[12, 0] == 0


@pytest.mark.slow
def test_app_on_the_astronaut_with_a_tiny_checkpoint(tmp_path: Path):
    """Train the tiny experiment, then run the app on skimage's astronaut plus bad inputs: all outputs written,
    every bad input skipped and counted; a single unusable photo is one error line."""
    import skimage.data

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    run = tmp_path / "run"
    subprocess.run(
        [sys.executable, "train.py", "experiment=dfdn", "+tiny=dfdn", f"paths.output_dir={run}",
         f"paths.data_dir={tmp_path / 'data'}", "test=false", "compare_baselines=false", "export=false"],
        cwd=REPO, env=env, check=True, capture_output=True,
    )  # fmt: skip
    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut = skimage.data.astronaut()
    cv2.imwrite(str(photos / "astronaut.png"), astronaut[..., ::-1])
    cv2.imwrite(str(photos / "grey.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(photos / "tiny.png"), cv2.resize(astronaut, (32, 32)))
    cv2.imwrite(str(photos / "wall.png"), np.full((200, 200, 3), 90, np.uint8))
    (photos / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "src.apps.dfdn", f"ckpt={run / 'checkpoints' / 'last.ckpt'}", f"output={out}"]
    subprocess.run([*command, f"input={photos}"], cwd=REPO, env=env, check=True, capture_output=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 2 and summary["skipped"] == 3
    assert summary["inputs"]["wall.png"] == "skipped: no face found"
    assert summary["inputs"]["notes.txt"] == "skipped: not a readable image"
    assert summary["notes"]["grey.png"] == "grey image used as grey RGB"
    folder = out / "astronaut"
    displacement = cv2.imread(str(folder / "displacement.png"), cv2.IMREAD_UNCHANGED)
    normal = cv2.imread(str(folder / "normal.png"), cv2.IMREAD_UNCHANGED)
    assert displacement.dtype == np.uint16 and normal.dtype == np.uint8 and normal.shape[2] == 3
    obj = (folder / "proxy.obj").read_text()
    assert "mtllib proxy.mtl" in obj and "\nvt " in obj and "\nf " in obj
    render, plain = cv2.imread(str(folder / "render.png")), cv2.imread(str(folder / "render_proxy.png"))
    assert render.shape[:2] == (512, 512) and not np.array_equal(render, plain)
    failed = subprocess.run([*command, f"input={photos / 'wall.png'}"], cwd=REPO, env=env, capture_output=True,
                            text=True)  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == f"error: input={photos / 'wall.png'}: no face found"
