"""The DG app (python -m src.apps.dg): one output frame per reference frame, faceless frames passed through and
counted, bad inputs as one error before any output is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from src.apps.dg.run import AppSettings, run_app
from src.utils.errors import DatasetError, UserError


def crops(root: Path, count: int) -> list[np.ndarray]:
    files = sorted(root.glob("faceworld_crop_*/*/*/*.jpg"))[:count]
    return [cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), (128, 128)) for f in files]


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 128, 128, "yuv420p"
    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def source(dg_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app") / "source.png"
    cv2.imwrite(str(path), cv2.cvtColor(crops(dg_dataset, 1)[0], cv2.COLOR_RGB2BGR))
    return path


def settings(checkpoints: dict[str, Path], **kwargs) -> AppSettings:
    return AppSettings(idsg=str(checkpoints["idsg"]), rfg=str(checkpoints["rfg"]), progress=False, **kwargs)


def test_video_with_faceless_frames_is_complete(dg_dataset, source, tiny_checkpoints, tmp_path):
    faces = crops(dg_dataset, 4)
    black = np.zeros((128, 128, 3), np.uint8)
    reference = write_video(tmp_path / "ref.mp4", [faces[0], black, faces[1], black, faces[2], faces[3]])
    summary = run_app(
        settings(tiny_checkpoints, source=str(source), reference=str(reference), output=str(tmp_path / "o.mp4"))
    )
    assert summary.frames == 6 == frames_in(tmp_path / "o.mp4")
    assert summary.reenacted + summary.passed_through == 6 and summary.passed_through >= 2 and summary.reenacted >= 2
    with av.open(str(tmp_path / "o.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (64, 32)  # [reference crop | reenacted face] at the model's 32 px
    assert not list(tmp_path.glob(".*partial*"))


def test_no_face_in_the_source_is_one_error_before_any_output(tiny_checkpoints, tmp_path, dg_dataset):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((128, 128, 3), 90, np.uint8))
    reference = write_video(tmp_path / "ref.mp4", crops(dg_dataset, 2))
    with pytest.raises(UserError, match=r"blank.png: no face found in the source image"):
        run_app(settings(tiny_checkpoints, source=str(blank), reference=str(reference), output=str(tmp_path / "o.mp4")))
    assert not (tmp_path / "o.mp4").exists()


def test_landmark_csv_folder_and_wrong_point_counts(dg_dataset, source, tiny_checkpoints, tmp_path):
    folder = tmp_path / "landmarks"
    folder.mkdir()
    for path in sorted(dg_dataset.glob("faceworld_csv_*/*/*/*.csv"))[:3]:
        shutil.copy(path, folder / f"{len(list(folder.iterdir())):04d}.csv")
    summary = run_app(
        settings(
            tiny_checkpoints, source=str(source), reference=str(folder), output=str(tmp_path / "o.mp4"),
            landmark_size=32, side_by_side=False,
        )
    )  # fmt: skip
    assert summary.frames == 3 == summary.reenacted == frames_in(tmp_path / "o.mp4")
    bad = folder / "0001.csv"
    header, row = bad.read_text().splitlines()
    bad.write_text(header + "\n" + ",".join(row.split(",")[:-4]) + "\n")
    with pytest.raises(DatasetError, match=r"0001.csv: expected 136 landmark values .* got 132 \(66 points\)"):
        run_app(settings(tiny_checkpoints, source=str(source), reference=str(folder), output=str(tmp_path / "p.mp4")))
    assert not (tmp_path / "p.mp4").exists()


def test_app_draws_the_landmarks_as_the_rfg_run_trained(tiny_checkpoints, dg_dataset):
    """A quick-start RFG learns from supersampled grey lines: the app must feed it the same drawing, not the
    original's hard one (the run's checkpoint says how it drew)."""
    from src.apps.dg.run import Reenactor, load_models
    from src.datamodules.dg import dg_drawing
    from src.utils.checkpoint import read_checkpoint

    hparams = read_checkpoint(tiny_checkpoints["rfg"])["hyper_parameters"]
    supersample = int(hparams["drawing_supersample"])
    assert supersample > 1, "the tiny RFG run should supersample its drawing (conf/tiny/dg_rfg.yaml)"
    idsg, rfg, size, drawing = load_models(settings(tiny_checkpoints, source="unused", reference="unused"))
    assert (drawing.supersample, drawing.line_width) == (supersample, hparams["drawing_line_width"])
    reenactor = Reenactor(idsg, rfg, size, use_eye_fix=False, drawing=drawing)
    reenactor.set_source(crops(dg_dataset, 1)[0])
    reference = np.array([[0.3 + 0.4 * (k % 17) / 16, 0.25 + 0.5 * (k // 17) / 4] for k in range(68)])
    shown, face = reenactor(reference)
    # the app's picture is the drawing the RFG was fed: recompute it from IDSG's landmarks with the run's settings
    with torch.no_grad():
        ref = torch.from_numpy(reference.astype(np.float32).reshape(1, -1))
        points = idsg.decode(ref, reenactor.identity).reshape(68, -1)[:, :2].numpy() * size
    expected = dg_drawing(points, size, drawing.half_face, supersample, hparams["drawing_line_width"])
    np.testing.assert_array_equal(shown[..., 0], (expected * 255).round().astype(np.uint8))
    hard = dg_drawing(points, size, drawing.half_face)  # the original's drawing differs: grey levels appear
    assert not np.array_equal(expected, hard) and ((expected > 0) & (expected < 1)).mean() > 0
    assert face.shape == (size, size, 3)
