"""infer.py as documented (docs/inference.md), run by subprocess on a FaceWorld photo and landmark files, with a
tiny checkpoint trained by train.py and its export. References are independent of src/infer: the dataset's own
config.txt, the pinhole formula, the converter's crop function, FaceWorld's true landmarks and the datamodule.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from infer_fixtures import (
    DATASET_SIZE,
    MODEL_SIZE,
    check_ok,
    reference_crop,
    reference_drawing,
    render_photo,
    run_cli,
)

from src.datamodules.rgbd import RGBDFrames
from src.io.ply import read_ply
from src.io.rgbd_layout import DepthEncoding, parse_landmark_file, read_config
from src.landmarks.nme import normalised_mean_error

NAMES = ("photo", "truth", "train_frame")
# mediapipe's NME on FaceWorld faces is ~0.05 (tests/landmarks: threshold 0.065); a different face is ~0.15.
DETECTOR_NME_LIMIT = 0.065


def _dataset_encoding(dataset) -> DepthEncoding:
    config = read_config(dataset / "config.txt")
    return DepthEncoding(float(config["near_mm"]), float(config["far_mm"]), int(config["depth_bits"]))


def _scaled_dataset_intrinsics(dataset) -> tuple[float, float, float, float]:
    config = read_config(dataset / "config.txt")
    s = MODEL_SIZE / int(config["size"])
    fx, fy, cx, cy = (float(config[k]) for k in ("fx", "fy", "cx", "cy"))
    return fx * s, fy * s, (cx + 0.5) * s - 0.5, (cy + 0.5) * s - 0.5


def _boundary_f_score(a: np.ndarray, b: np.ndarray, tolerance_px: int) -> float:
    """F1 of drawn pixels, a pixel counting as matched when the other drawing has one within tolerance_px."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1, 2 * tolerance_px + 1))
    near_a = cv2.dilate(a.astype(np.uint8), kernel) > 0
    near_b = cv2.dilate(b.astype(np.uint8), kernel) > 0
    precision = (a & near_b).sum() / a.sum()
    recall = (b & near_a).sum() / b.sum()
    return float(2 * precision * recall / (precision + recall))


def test_every_output_is_written_and_depth_decodes_to_mm_of_the_dataset_encoding(trained, folder_run):
    out = folder_run.output
    encoding = _dataset_encoding(trained.dataset)
    for name in NAMES:
        for kind, suffix in (("Color", ".png"), ("Feature", ".png"), ("Landmark", ".txt"), ("Preview", ".png")):
            assert (out / kind / f"{name}{suffix}").stat().st_size > 0, (kind, name)
        colour = cv2.imread(str(out / "Color" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert colour.shape == (MODEL_SIZE, MODEL_SIZE, 3) and colour.dtype == np.uint8
        levels = cv2.imread(str(out / "Depth" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert levels.dtype == np.uint16 and levels.shape == (MODEL_SIZE, MODEL_SIZE)
        face = levels > 0
        assert face.any(), name
        mm = encoding.near_mm + (levels[face].astype(np.float64) - 1) * (encoding.far_mm - encoding.near_mm) / 65534
        assert encoding.near_mm <= mm.min() and mm.max() <= encoding.far_mm
    written = read_config(out / "config.txt")
    assert (float(written["near_mm"]), float(written["far_mm"]), int(written["depth_bits"])) == (
        encoding.near_mm,
        encoding.far_mm,
        16,
    )
    summary = json.loads((out / "infer.json").read_text())
    assert summary["counts"] == {"written": 3, "failed": 0}
    assert summary["framing"]["rule"] == "dataset" and summary["framing"]["dataset_size"] == DATASET_SIZE


def test_point_cloud_back_projects_with_the_dataset_intrinsics_scaled_to_the_model_size(trained, folder_run):
    out = folder_run.output
    fx, fy, cx, cy = _scaled_dataset_intrinsics(trained.dataset)
    levels = cv2.imread(str(out / "Depth" / "photo.png"), cv2.IMREAD_UNCHANGED)
    rgb = cv2.imread(str(out / "Color" / "photo.png"))[..., ::-1]
    depth_mm = _dataset_encoding(trained.dataset).decode(levels)
    cloud = read_ply(out / "PointCloud" / "photo.ply")
    rows, cols = np.nonzero(levels > 0)  # row-major, the order the writer walks the pixels
    assert len(cloud.points) == len(rows)
    for index in (0, len(rows) // 2, len(rows) - 1):
        v, u = rows[index], cols[index]
        z = float(depth_mm[v, u])
        expected = ((u - cx) * z / fx, (v - cy) * z / fy, z)
        np.testing.assert_allclose(cloud.points[index], expected, rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(cloud.colors[index], rgb[v, u])


def test_photo_drawing_matches_the_drawing_of_its_true_landmarks(trained, folder_run):
    detected = parse_landmark_file(folder_run.output / "Landmark" / "photo.txt").points
    truth_at_dataset = reference_crop(folder_run.photo_truth, trained.dataset)
    truth = (truth_at_dataset + 0.5) * MODEL_SIZE / DATASET_SIZE - 0.5
    nme = normalised_mean_error(detected, truth)
    assert nme < DETECTOR_NME_LIMIT, nme

    drawn = cv2.imread(str(folder_run.output / "Feature" / "photo.png"), cv2.IMREAD_GRAYSCALE) > 0
    reference = reference_drawing(truth_at_dataset) > 0
    score = _boundary_f_score(drawn, reference, 2)
    assert score > 0.75, score  # measured 0.87
    # The same comparison against another FaceWorld person's face fails clearly: the test can tell faces apart.
    _, other_truth = render_photo(seed=11)
    other = reference_drawing(reference_crop(other_truth, trained.dataset)) > 0
    assert _boundary_f_score(drawn, other, 2) < 0.6
    other_at_model = (reference_crop(other_truth, trained.dataset) + 0.5) * MODEL_SIZE / DATASET_SIZE - 0.5
    assert normalised_mean_error(detected, other_at_model) > 0.1  # measured 0.155


def test_landmark_files_give_exactly_the_training_drawing(trained, folder_run):
    out = folder_run.output
    truth_drawing = cv2.imread(str(out / "Feature" / "truth.png"), cv2.IMREAD_GRAYSCALE)
    truth_points = parse_landmark_file(folder_run.inputs / "truth.txt").points
    np.testing.assert_array_equal(truth_drawing, reference_drawing(truth_points))

    # A training frame's landmark file: the generator reads what the datamodule fed it during training.
    frames = RGBDFrames(trained.dataset, "train", [folder_run.train_frame], _dataset_encoding(trained.dataset), 128)
    fed = np.round((frames[0]["feature"][0].numpy() + 1.0) * 127.5).astype(np.uint8)
    ours = cv2.imread(str(out / "Feature" / "train_frame.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(ours, fed)


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_a_photo_without_a_face_stops_the_run_with_one_line_and_writes_nothing(trained, folder_run, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "a_good.png"), cv2.imread(str(folder_run.inputs / "photo.png")))
    cv2.imwrite(str(inputs / "b_wall.png"), np.full((240, 320, 3), 128, np.uint8))
    out = tmp_path / "out"
    logs = f"hydra.run.dir={tmp_path}/logs"
    result = run_cli("infer.py", f"ckpt={trained.ckpt}", f"input={inputs}", f"output={out}", logs)
    assert result.returncode == 1
    lines = _error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "no face found in photo" in lines[0] and str(inputs / "b_wall.png") in lines[0]
    assert not out.exists()


def test_a_deployed_folder_run_matches_the_checkpoint_and_skips_bad_files_when_asked(trained, folder_run, tmp_path):
    """exported=<export dir> (TorchScript + export.json, no checkpoint) with on_error=skip: the good file gives the
    checkpoint run's outputs, the bad ones are counted and named in infer.json."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = (folder_run.inputs / "truth.txt").read_text()
    (inputs / "truth.txt").write_text(good)
    (inputs / "short.txt").write_text(_rewrite_x(good, lambda xs: ["1.0", "2.0", *xs]))
    out = tmp_path / "out"
    result = run_cli(
        "infer.py",
        f"exported={trained.export_dir}",
        f"input={inputs}",
        f"output={out}",
        "on_error=skip",
        f"hydra.run.dir={tmp_path}/logs",
    )
    check_ok(result)
    summary = json.loads((out / "infer.json").read_text())
    assert summary["counts"] == {"written": 1, "failed": 2}
    failed = {item["input"]: item["error"] for item in summary["failed"]}
    assert "unreadable image" in failed[str(inputs / "broken.png")]
    assert "expected 70 X and Y values, got 72 and 70" in failed[str(inputs / "short.txt")]
    assert not (out / "Depth" / "broken.png").exists() and not (out / "Depth" / "short.png").exists()
    for kind in ("Depth", "Color", "Feature"):
        ours = cv2.imread(str(out / kind / "truth.png"), cv2.IMREAD_UNCHANGED).astype(np.int64)
        reference = cv2.imread(str(folder_run.output / kind / "truth.png"), cv2.IMREAD_UNCHANGED).astype(np.int64)
        assert np.abs(ours - reference).max() <= 1, kind
    assert read_config(out / "config.txt") == read_config(folder_run.output / "config.txt")


def _rewrite_x(landmark_text: str, change) -> str:
    """The landmark file with its X values replaced by change(list of value strings)."""
    lines = landmark_text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("X:"))
    values = lines[index].split(":", 1)[1].strip().rstrip(",").split(",")
    lines[index] = "X: " + "".join(f"{v}," for v in change(values))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("make_input", "extra", "expected"),
    [
        (lambda d: d / "missing.jpg", [], "input {path}: no such file or folder"),
        (lambda d: d / "notes.csv", [], "not a photo or a landmark file"),
        (lambda d: d / "empty.png", [], "unreadable image {path}: empty file"),
        (lambda d: d / "short.txt", [], "bad landmark file {path}: expected 70 X and Y values, got 69 and 70"),
        (lambda d: d / "photo_px.txt", [], "outside a 256 px processed image"),
        (lambda d: d / "short.txt", ["on_error=maybe"], "on_error must be one of"),
    ],
)
def test_bad_inputs_give_one_line_naming_the_file(trained, folder_run, tmp_path, make_input, extra, expected):
    """In-process (no subprocess per case): the line run_cli prints is describe_user_error of what is raised."""
    from src.infer.run import InferenceSettings, run_inference
    from src.utils.errors import describe_user_error

    (tmp_path / "notes.csv").write_text("a,b\n")
    (tmp_path / "empty.png").write_bytes(b"")
    good = (folder_run.inputs / "truth.txt").read_text()
    (tmp_path / "short.txt").write_text(_rewrite_x(good, lambda xs: xs[:69]))
    (tmp_path / "photo_px.txt").write_text(_rewrite_x(good, lambda xs: ["900.0", *xs[1:]]))
    path = make_input(tmp_path)
    keys = dict(arg.split("=", 1) for arg in extra)
    with pytest.raises(Exception) as caught:
        run_inference(InferenceSettings(input=str(path), output=str(tmp_path / "out"), ckpt=str(trained.ckpt), **keys))
    line = describe_user_error(caught.value)
    assert line is not None and "\n" not in line, repr(line)
    assert expected.format(path=path) in line, line
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_whose_dataset_is_gone_needs_the_encoding_and_falls_back_to_documented_defaults(
    trained, folder_run, tmp_path
):
    """Deployed without the training folder: one error naming depth_encoding, then the fit framing and the PLY
    default intrinsics, as docs/inference.md says."""
    import torch

    from src.infer.run import InferenceSettings, run_inference
    from src.io.ply import default_intrinsics
    from src.utils.errors import describe_user_error

    checkpoint = torch.load(trained.ckpt, map_location="cpu", weights_only=True)
    checkpoint["facesynth"]["config"]["data"]["root"] = str(tmp_path / "gone")
    moved = tmp_path / "moved.ckpt"
    torch.save(checkpoint, moved)
    settings = {"input": str(folder_run.inputs / "truth.txt"), "ckpt": str(moved), "progress": False}
    with pytest.raises(Exception) as caught:
        run_inference(InferenceSettings(output=str(tmp_path / "first"), **settings))
    assert "depth_encoding.near_mm=" in describe_user_error(caught.value)
    assert not (tmp_path / "first").exists()

    given = {"near_mm": 500.0, "far_mm": 700.0, "bits": 16}
    # The frame size of the training set is unknown too: drawings are made at the model's size, and landmark
    # files of 256 px frames must say so.
    with pytest.raises(Exception) as caught:
        run_inference(InferenceSettings(output=str(tmp_path / "second"), depth_encoding=given, **settings))
    assert "outside a 128 px processed image" in describe_user_error(caught.value)
    settings["landmark_size"] = DATASET_SIZE
    run_inference(InferenceSettings(output=str(tmp_path / "out"), depth_encoding=given, **settings))
    config = read_config(tmp_path / "out" / "config.txt")
    assert (float(config["near_mm"]), float(config["far_mm"])) == (500.0, 700.0)
    assert float(config["fx"]) == pytest.approx(default_intrinsics(MODEL_SIZE, MODEL_SIZE)[0])
    assert json.loads((tmp_path / "out" / "infer.json").read_text())["framing"]["rule"] == "fit"
    truth_points = parse_landmark_file(folder_run.inputs / "truth.txt").points
    written = parse_landmark_file(tmp_path / "out" / "Landmark" / "truth.txt").points
    np.testing.assert_allclose(written, (truth_points + 0.5) * MODEL_SIZE / DATASET_SIZE - 0.5, atol=1e-3)
