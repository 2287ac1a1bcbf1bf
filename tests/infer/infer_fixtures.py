"""Helpers of the inference tests: a FaceWorld dataset + tiny checkpoint + export, a FaceWorld photo, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from src.convert.steps import crop_transform
from src.io.rgbd_layout import parse_landmark_file, read_config
from src.landmarks.drawing import draw_feature_image
from tests.framework.framework_fixtures import TINY_MODEL

REPO = Path(__file__).resolve().parents[2]
DATASET_SIZE = 256  # the processed frames
MODEL_SIZE = 128  # data.image_size of the tiny run: drawings are made at 256 and shrunk, as in training
PHOTO_SHAPE = (480, 640)  # H, W: a webcam-sized photo with the face off-centre on a textured background


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def check_ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def write_faceworld_dataset(root: Path) -> Path:
    from src.faceworld.writers.rgbd import write_processed_dataset

    return write_processed_dataset(
        root, num_identities=3, frames_per_identity=2, size=DATASET_SIZE, eval_identities=1, workers=1, progress=False
    )


def train_tiny_checkpoint(dataset: Path, out: Path) -> Path:
    """train.py on the FaceWorld dataset with the framework tests' tiny network, one short epoch, no test."""
    check_ok(
        run_cli(
            "train.py",
            "experiment=rgbd_face",
            *TINY_MODEL,
            f"data.root={dataset}",
            f"data.image_size={MODEL_SIZE}",
            "data.batch_size=2",
            "data.val_fraction=0.34",
            "model.scheduler.n_epochs=1",
            "model.scheduler.n_epochs_decay=0",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.enable_model_summary=false",
            "callbacks.sample_grid=null",
            "test=false",
            "logger=csv",
            "extras.print_config=false",
            f"paths.output_dir={out}",
            f"paths.log_dir={out}/logs",
            f"paths.data_dir={out}/data",
        )
    )
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


def render_photo(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(BGR photo, its true 70 landmarks): a FaceWorld identity, off-centre, about a third of the frame."""
    from src.faceworld import FaceWorld

    world = FaceWorld()
    params = world.sample_params(seed, pose_range_deg=6.0)
    camera = world.framing_camera(params, size=PHOTO_SHAPE, fill=0.3, center_offset=(0.15, -0.03))
    frame = world.render(params, camera, modalities=("rgb", "landmarks"))
    return cv2.cvtColor(frame["rgb"], cv2.COLOR_RGB2BGR), frame["landmarks2d"].astype(np.float64)


def median_face_side_fraction(dataset: Path) -> float:
    """Median longer side of the training landmark boxes / frame size (computed here, not by src.infer)."""
    sides = []
    for path in sorted((dataset / "train" / "Landmark").glob("*.txt")):
        points = parse_landmark_file(path).points
        sides.append(max(points[:, 0].max() - points[:, 0].min(), points[:, 1].max() - points[:, 1].min()))
    return float(np.median(sides)) / int(read_config(dataset / "config.txt")["size"])


def reference_crop(landmarks: np.ndarray, dataset: Path) -> np.ndarray:
    """Photo landmarks -> dataset pixels by the converter's crop, the face scaled to the training faces' size."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    box = (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
    scale = median_face_side_fraction(dataset) * DATASET_SIZE / max(box[2], box[3])
    transform = crop_transform(box, scale, DATASET_SIZE)
    return landmarks @ transform[:, :2].T + transform[:, 2]


def reference_drawing(dataset_landmarks: np.ndarray) -> np.ndarray:
    """The drawing as the FaceWorld writer draws it (256 px) shrunk as the datamodule shrinks it (INTER_AREA)."""
    drawing = draw_feature_image(dataset_landmarks, DATASET_SIZE)
    return cv2.resize(drawing, (MODEL_SIZE, MODEL_SIZE), interpolation=cv2.INTER_AREA)
