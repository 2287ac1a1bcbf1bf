import json
import math

import cv2
import numpy as np
import pytest

from src.eval.report import ReportSample, summarize_values, write_report
from src.io.ply import read_ply


def _sample(name: str, seed: int, size: int = 24) -> ReportSample:
    rng = np.random.default_rng(seed)
    true_depth = np.zeros((size, size), np.float32)
    true_depth[4:20, 6:18] = rng.uniform(580, 640, size=(16, 12))
    pred_depth = true_depth.copy()
    pred_depth[true_depth > 0] += rng.normal(0, 2, size=int((true_depth > 0).sum())).astype(np.float32)
    pred_depth[4, 6] = 0.0  # one silhouette error
    feature = np.zeros((size, size), np.uint8)
    cv2.line(feature, (3, 3), (20, 20), 255, 1)
    true_rgb = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    pred_rgb = np.clip(true_rgb.astype(int) + 10, 0, 255).astype(np.uint8)
    return ReportSample(name, feature, pred_rgb, true_rgb, pred_depth, true_depth, intrinsics=(30.0, 30.0, 11.5, 11.5))


def test_report_folder_has_html_json_markdown_grids_and_point_clouds(tmp_path):
    metrics = {"psnr": [30.0, 32.0, 34.0], "depth_mae_mm": [1.0, 2.0, float("nan")]}
    samples = [_sample("s_000001", 1), _sample("s/000002 <b>", 2), _sample("s_000003", 3)]
    meta = {"checkpoint": tmp_path / "last.ckpt", "dataset": "faceworld", "epoch": 7}
    index = write_report(tmp_path / "report", metrics, samples, "RGBD eval", meta, num_point_clouds=2)

    assert index == tmp_path / "report" / "index.html"
    page = index.read_text()
    assert "RGBD eval" in page and "last.ckpt" in page and "faceworld" in page
    assert "&lt;b&gt;" in page and "<b>" not in page  # names are escaped
    assert "http://" not in page and "https://" not in page  # nothing external
    assert page.count('class="sample"') == 3

    data = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert data["summary"]["psnr"]["mean"] == pytest.approx(32.0)
    assert data["summary"]["psnr"]["median"] == pytest.approx(32.0)
    assert data["summary"]["psnr"]["std"] == pytest.approx(np.std([30, 32, 34]))
    assert data["summary"]["depth_mae_mm"]["count"] == 2 and data["summary"]["depth_mae_mm"]["nan"] == 1
    assert data["summary"]["depth_mae_mm"]["mean"] == pytest.approx(1.5)
    assert data["per_sample"]["depth_mae_mm"][2] == "nan"
    assert data["meta"]["checkpoint"].endswith("last.ckpt")
    lo, hi = data["depth_range_mm"]
    assert 570 < lo < hi < 650

    markdown = (tmp_path / "report" / "metrics.md").read_text()
    assert "| psnr | 32 | 32 |" in markdown

    grids = sorted((tmp_path / "report" / "samples").glob("*.png"))
    assert len(grids) == 3
    grid = cv2.imread(str(grids[0]))
    # 24 px frames are enlarged to 168 px (7x, whole pixels) so labels fit; seven columns and a label band.
    assert grid.shape[1] > 7 * 168 and grid.shape[0] > 168

    clouds = sorted((tmp_path / "report" / "pointclouds").glob("*.ply"))
    assert len(clouds) == 4  # pred + true of the first two samples
    truth = read_ply(tmp_path / "report" / "pointclouds" / "s_000001_true.ply")
    assert len(truth.points) == int((samples[0].true_depth_mm > 0).sum())
    assert 'href="pointclouds/s_000001_pred.ply"' in page


def test_embedded_report_is_one_file(tmp_path):
    index = write_report(tmp_path, {"psnr": [1.0]}, [_sample("a", 0)], "t", {}, embed_images=True, num_point_clouds=0)
    assert "data:image/png;base64," in index.read_text()
    assert not (tmp_path / "samples").exists() and not (tmp_path / "pointclouds").exists()


def test_bad_inputs_name_the_problem(tmp_path):
    good = _sample("ok", 0)
    bad = ReportSample("broken", good.feature[:5], good.pred_rgb, good.true_rgb, good.pred_depth_mm, good.true_depth_mm)
    with pytest.raises(ValueError, match=r"broken.*feature"):
        write_report(tmp_path, {}, [bad], "t", {})
    with pytest.raises(TypeError, match="psnr"):
        write_report(tmp_path, {"psnr": 3.0}, [good], "t", {})
    assert not (tmp_path / "index.html").exists()


def test_summary_leaves_out_nan_and_keeps_inf():
    stats = summarize_values([float("nan")])
    assert stats["count"] == 0 and stats["nan"] == 1 and math.isnan(stats["mean"])
    stats = summarize_values([30.0, float("inf"), float("nan")])
    assert stats["count"] == 2 and stats["max"] == math.inf and stats["min"] == 30.0
