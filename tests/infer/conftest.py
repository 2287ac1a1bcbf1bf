"""Fixtures of the inference tests: one FaceWorld dataset, one tiny checkpoint trained on it by train.py, its
export (export.py), and one documented infer.py run over a folder (photo + landmark files). Built once per session.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from infer_fixtures import (
    check_ok,
    reference_crop,
    render_photo,
    run_cli,
    train_tiny_checkpoint,
    write_faceworld_dataset,
)

from src.io.atomic import write_text_atomic
from src.io.rgbd_layout import format_landmark_file


@dataclass(frozen=True)
class TrainedRun:
    dataset: Path
    ckpt: Path
    export_dir: Path


@dataclass(frozen=True)
class FolderRun:
    inputs: Path
    output: Path
    photo_truth: np.ndarray  # (70, 2) true landmarks of the photo, photo pixels
    train_frame: str  # id of the training frame whose landmark file is an input


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    work = tmp_path_factory.mktemp("infer_model")
    dataset = write_faceworld_dataset(work / "dataset")
    ckpt = train_tiny_checkpoint(dataset, work / "run")
    export_dir = work / "export"
    check_ok(
        run_cli(
            "export.py",
            f"ckpt={ckpt}",
            f"out_dir={export_dir}",
            "extras.print_config=false",
            f"hydra.run.dir={work}/export_logs",
        )
    )
    return TrainedRun(dataset, ckpt, export_dir)


@pytest.fixture(scope="session")
def folder_run(trained: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> FolderRun:
    """python infer.py ckpt=... input=<folder> output=<dir>: a photo, its true landmarks, a training frame."""
    work = tmp_path_factory.mktemp("infer_folder")
    inputs = work / "inputs"
    inputs.mkdir()
    photo, truth = render_photo()
    cv2.imwrite(str(inputs / "photo.png"), photo)
    write_text_atomic(inputs / "truth.txt", format_landmark_file(reference_crop(truth, trained.dataset)))
    train_frame = sorted((trained.dataset / "train" / "Landmark").glob("*.txt"))[0]
    shutil.copy(train_frame, inputs / "train_frame.txt")
    output = work / "out"
    check_ok(
        run_cli(
            "infer.py",
            f"ckpt={trained.ckpt}",
            f"input={inputs}",
            f"output={output}",
            "extras.print_config=false",
            f"hydra.run.dir={work}/logs",
        )
    )
    return FolderRun(inputs, output, truth, train_frame.stem)
