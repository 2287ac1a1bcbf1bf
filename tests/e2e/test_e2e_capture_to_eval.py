"""The documented chain on a tiny FaceWorld recording, exactly as a user runs it from the shell:

    record (.mkv, Azure Kinect track layout) -> python -m src.capture (playback) -> python -m src.convert
    -> python train.py experiment=rgbd_face data.root=<converted> -> python eval.py ckpt=<best>

Each step reads only what the previous one wrote, so a change of layout anywhere breaks this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from src.capture.faceworld_source import write_faceworld_recording
from src.io.rgbd_layout import read_config
from tests.framework.framework_fixtures import TINY_MODEL

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args[:2])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_recording_capture_convert_train_eval(tmp_path: Path) -> None:
    recording = tmp_path / "session.mkv"
    # The FaceWorld rig's default head sway and the default +-10 degree gates of capture and convert (the original's).
    write_faceworld_recording(recording, num_frames=14, color_size=(320, 240), depth_size=(160, 144), seed=1)
    unprocessed = tmp_path / "unprocessed"
    run(
        "-m",
        "src.capture",
        "capture/source=mkv",
        f"source.path={recording}",
        f"output_dir={unprocessed}",
        "session=rec1",
        "split.train_frames=10",
        "split.eval_frames=3",
        "progress=false",
        f"hydra.run.dir={tmp_path}/capture_logs",
    )
    train_colour = sorted((unprocessed / "train" / "Color").glob("*.png"))
    eval_colour = sorted((unprocessed / "eval" / "Color").glob("*.png"))
    # block split (default): the first 10 accepted frames train, the next 3 are the held-out block
    assert (len(train_colour), len(eval_colour)) == (10, 3)

    processed = tmp_path / "processed"
    run(
        "-m",
        "src.convert",
        f"input={unprocessed}",
        f"output={processed}",
        "size=64",
        "padding=4",
        "face_depth=80",
        "depth_bits=16",
        "workers=1",
        "progress=false",
        f"hydra.run.dir={tmp_path}/convert_logs",
    )
    report = json.loads((processed / "conversion_report.json").read_text())
    assert report["accepted"] == {"train": 10, "eval": 3}, report
    config = read_config(processed / "config.txt")
    assert config["depth_bits"] == "16" and float(config["far_mm"]) > float(config["near_mm"])

    out = tmp_path / "run"
    run(
        "train.py",
        "experiment=rgbd_face",
        *TINY_MODEL,
        f"data.root={processed}",
        "data.image_size=64",
        "data.batch_size=2",
        "data.val_fraction=0.25",
        "model.scheduler.n_epochs=1",
        "model.scheduler.n_epochs_decay=1",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "logger=csv",
        "extras.print_config=false",
        f"paths.output_dir={out}",
        f"paths.log_dir={out}/logs",
        f"paths.data_dir={out}/data",
    )
    checkpoints = sorted((out / "checkpoints").glob("*.ckpt"))
    assert checkpoints, f"no checkpoint under {out / 'checkpoints'}"

    evaluation = tmp_path / "eval"
    run(
        "eval.py",
        f"ckpt={checkpoints[0]}",
        f"paths.output_dir={evaluation}",
        f"paths.log_dir={evaluation}/logs",
        "extras.print_config=false",
    )
    metrics = json.loads(next(evaluation.rglob("metrics.json")).read_text())
    assert "psnr_rgbd" in json.dumps(metrics) and "depth_mae_mm" in json.dumps(metrics)
    assert next(evaluation.rglob("index.html")).stat().st_size > 0
