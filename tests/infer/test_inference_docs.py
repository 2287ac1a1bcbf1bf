"""The Python examples of docs/inference.md run as written against a real export (export.py on a tiny checkpoint):
each must reproduce what infer.py wrote for the same drawing (colour and depth in mm), so the documented input /
output format of the exported model cannot drift from the real one.
"""

from __future__ import annotations

import re
import shutil

import cv2
import numpy as np
import pytest
from infer_fixtures import REPO

from src.io.rgbd_layout import DepthEncoding, read_config

DOC = REPO / "docs" / "inference.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_doc_has_an_onnxruntime_and_a_torchscript_example():
    blocks = python_blocks()
    assert len(blocks) == 2
    assert "onnxruntime" in blocks[0] and "torch.jit.load" in blocks[1]


@pytest.mark.parametrize("index", [0, 1], ids=["onnxruntime", "torchscript"])
def test_doc_example_reproduces_infer_outputs(index, trained, folder_run, tmp_path, monkeypatch):
    shutil.copytree(trained.export_dir, tmp_path / "export")
    shutil.copy(folder_run.output / "Feature" / "truth.png", tmp_path / "drawing.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    exec(compile(python_blocks()[index], f"{DOC}:block{index}", "exec"), namespace)

    expected_rgb = cv2.imread(str(folder_run.output / "Color" / "truth.png"))[..., ::-1]
    assert np.abs(namespace["rgb"].astype(int) - expected_rgb.astype(int)).max() <= 1
    config = read_config(folder_run.output / "config.txt")
    encoding = DepthEncoding(float(config["near_mm"]), float(config["far_mm"]), int(config["depth_bits"]))
    levels = cv2.imread(str(folder_run.output / "Depth" / "truth.png"), cv2.IMREAD_UNCHANGED)
    expected_mm = encoding.decode(levels)
    depth_mm = np.asarray(namespace["depth_mm"])
    assert depth_mm.shape == expected_mm.shape
    assert np.array_equal(depth_mm > 0, expected_mm > 0)
    assert np.abs(depth_mm - expected_mm).max() <= encoding.mm_per_level * 1.01
