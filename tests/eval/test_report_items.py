"""The report serves any system: each item kind renders its own section into one index.html with one metrics table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.eval.items import ImageGridSample, LandmarkPlotSample, MeshSample, VideoSample
from src.eval.page import enlarge_factor
from src.eval.report import write_report


def _video(length: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(length, size, size, 3), dtype=np.uint8)


def test_mixed_kinds_share_one_page_and_one_metrics_table(tmp_path: Path) -> None:
    displacement = np.random.default_rng(0).integers(0, 256, size=(32, 32), dtype=np.uint8)
    samples = [
        ImageGridSample("patch_0", [("input", displacement), ("prediction", displacement[::-1].copy())]),
        VideoSample("clip_0", [("prediction", _video(5, 24, 1)), ("truth", _video(5, 24, 2))], fps=10.0),
        LandmarkPlotSample(
            "pair_0", pred_points=np.array([[4.0, 5.0]]), true_points=np.array([[7.0, 9.0]]), size=(16, 16)
        ),
    ]
    metrics = {"nme": [0.1, 0.3], "psnr": [20.0, 22.0]}
    index = write_report(tmp_path, metrics, samples, "mixed", {}, directions={"nme": "lower", "psnr": "higher"})
    page = index.read_text()
    assert page.count('class="sample"') == 3 and page.count("<h2>Metrics (2)</h2>") == 1
    assert "nme &darr;" in page and "psnr &uarr;" in page
    for heading in ("Samples (1)", "Videos (1)", "Landmarks (1)"):
        assert heading in page
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["directions"] == {"nme": "lower", "psnr": "higher"}
    assert data["summary"]["nme"]["mean"] == pytest.approx(0.2)
    assert "| nme ↓ |" in (tmp_path / "metrics.md").read_text()
    assert (tmp_path / "samples" / "patch_0.png").is_file()
    # the landmark error note is the mean Euclidean distance: |(4,5) - (7,9)| = 5
    assert "mean point error 5.00 px" in page


def test_video_is_an_animated_png_with_every_frame(tmp_path: Path) -> None:
    prediction, truth = _video(6, 20, 3), _video(6, 20, 4)
    sample = VideoSample("clip", [("prediction", prediction), ("truth", truth)], fps=25.0)
    write_report(tmp_path, {}, [sample], "video", {})
    data = (tmp_path / "videos" / "clip.png").read_bytes()
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == 6 and image.info.get("duration") == 40  # 25 fps
    factor = enlarge_factor(20)
    for t in (0, 5):
        image.seek(t)
        frame = np.asarray(image.convert("RGB"))
        # the enlarged prediction frame appears verbatim in the grid (nearest-neighbour enlargement)
        expected = np.repeat(np.repeat(prediction[t], factor, 0), factor, 1)
        rows, cols = np.nonzero((frame == expected[0, 0]).all(-1))
        found = any(
            np.array_equal(frame[r : r + expected.shape[0], c : c + expected.shape[1]], expected)
            for r, c in zip(rows[:50], cols[:50])
        )
        assert found, f"frame {t} of the prediction is not in the animation"


def test_landmark_plot_puts_points_where_they_are(tmp_path: Path) -> None:
    background = np.zeros((20, 20), np.uint8)
    sample = LandmarkPlotSample(
        "lm", pred_points=np.array([[3.0, 15.0]]), true_points=np.array([[16.0, 2.0]]), image=background
    )
    plot = sample.plot()
    factor = enlarge_factor(20)
    assert plot.shape == (20 * factor, 20 * factor, 3)
    red_y, red_x = int((15 + 0.5) * factor), int((3 + 0.5) * factor)
    green_y, green_x = int((2 + 0.5) * factor), int((16 + 0.5) * factor)
    assert tuple(plot[red_y, red_x]) == (255, 64, 64) and tuple(plot[green_y, green_x]) == (64, 255, 64)


def test_mesh_ply_holds_the_triangles(tmp_path: Path) -> None:
    vertices = np.array([[0, 0, 600], [10, 0, 600], [0, 10, 605], [10, 10, 610]], np.float32)
    faces = np.array([[0, 1, 2], [1, 3, 2]], np.int64)
    write_report(tmp_path, {}, [MeshSample("face mesh", vertices, faces)], "mesh", {})
    data = (tmp_path / "meshes" / "face_mesh.ply").read_bytes()
    header, body = data.split(b"end_header\n", 1)
    assert b"element vertex 4" in header and b"element face 2" in header
    # independent parse of the binary body: 4 x (3 float32 + 3 uint8), then 2 x (uint8 3, 3 int32)
    vertex_bytes = 4 * (12 + 3)
    xyz = np.frombuffer(body[:vertex_bytes], dtype=np.dtype([("p", "<f4", 3), ("c", "u1", 3)]))["p"]
    np.testing.assert_array_equal(xyz, vertices)
    triangles = np.frombuffer(body[vertex_bytes:], dtype=np.dtype([("n", "u1"), ("i", "<i4", 3)]))
    assert triangles["n"].tolist() == [3, 3] and triangles["i"].tolist() == faces.tolist()


def test_bad_items_name_the_sample_and_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'clip'.*equally long"):
        write_report(tmp_path, {}, [VideoSample("clip", [("a", _video(3, 8, 0)), ("b", _video(4, 8, 0))])], "t", {})
    with pytest.raises(ValueError, match=r"'grid'.*image 'x' must be uint8"):
        write_report(tmp_path, {}, [ImageGridSample("grid", [("x", np.zeros((4, 4), np.float32))])], "t", {})
    with pytest.raises(ValueError, match=r"'mesh'.*face indices outside"):
        write_report(tmp_path, {}, [MeshSample("mesh", np.zeros((3, 3)), np.array([[0, 1, 3]]))], "t", {})
    with pytest.raises(TypeError, match="not a report item"):
        write_report(tmp_path, {}, [object()], "t", {})
    assert not (tmp_path / "index.html").exists()
