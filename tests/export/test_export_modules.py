"""Several deployable modules with NAMED inputs (images, a landmark vector, a sequence chunk, an index), each exported
to TorchScript and ONNX with a dynamic batch axis and checked against eager PyTorch; the manifest lists them all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from src.export.generator import MANIFEST_FILE, ExportError, export_modules
from src.export.spec import ExportInput, ExportSpec

SUFFIXES = (("torchscript", ".torchscript.pt"), ("onnx", ".onnx"))


pytestmark = pytest.mark.usefixtures("one_thread")


class ImageGenerator(nn.Module):
    """dg's image generator in miniature: a landmark image and a style vector -> an image and a mask."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.style = nn.Linear(136, 4)

    def forward(self, landmark_image: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.conv(landmark_image) + self.style(landmarks)[:, :, None, None]
        return torch.tanh(features[:, :3]), torch.sigmoid(features[:, 3:])


class ChunkGenerator(nn.Module):
    """head2head in miniature: a chunk of T conditioning frames and an identity index -> the last frame."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3 * 2, 3, 3, padding=1)
        self.identity = nn.Embedding(5, 3)

    def forward(self, chunk: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        batch, frames, channels, height, width = chunk.shape
        flat = chunk.reshape(batch, frames * channels, height, width)
        return torch.tanh(self.conv(flat) + self.identity(identity)[:, :, None, None])


def _specs() -> dict[str, ExportSpec]:
    torch.manual_seed(0)
    return {
        "image_generator": ExportSpec(
            ImageGenerator(),
            inputs=(
                ExportInput("landmark_image", (3, 16, 16)),
                ExportInput("landmarks", (136,), low=0.0, high=1.0, description="68 (x, y) / 256"),
            ),
            outputs=("image", "mask"),
        ),
        "chunk_generator": ExportSpec(
            ChunkGenerator(),
            inputs=(ExportInput("chunk", (3, 2, 16, 16)), ExportInput("identity", (), low=0, high=5, dtype="int64")),
            outputs=("frame",),
        ),
    }


def test_two_modules_with_named_inputs_match_eager_at_another_batch_size(tmp_path: Path) -> None:
    specs = _specs()
    manifest = export_modules(specs, tmp_path, metadata={"dataset": "tiny"})
    assert set(manifest["modules"]) == {"image_generator", "chunk_generator"}
    assert "input" not in manifest and manifest["dataset"] == "tiny"  # several modules: no single-network fields
    on_disk = json.loads((tmp_path / MANIFEST_FILE).read_text())
    image = on_disk["modules"]["image_generator"]
    assert [i["name"] for i in image["inputs"]] == ["landmark_image", "landmarks"]
    assert image["inputs"][1] == {
        "name": "landmarks", "shape": ["batch", 136], "dtype": "float32", "range": [0.0, 1.0],
        "description": "68 (x, y) / 256",
    }  # fmt: skip
    assert [o["name"] for o in image["outputs"]] == ["image", "mask"] and image["outputs"][1]["shape"] == [
        "batch",
        1,
        16,
        16,
    ]
    chunk = on_disk["modules"]["chunk_generator"]
    assert chunk["inputs"][0]["layout"] == "NTCHW" and chunk["inputs"][1]["dtype"] == "int64"
    listed = {f"{name}.{fmt}": str(tmp_path / f"{name}{suffix}") for name in specs for fmt, suffix in SUFFIXES}
    assert manifest["files"] == {**listed, "manifest": str(tmp_path / MANIFEST_FILE)}
    assert all(Path(path).is_file() for path in manifest["files"].values())

    rng = torch.Generator().manual_seed(5)
    for name, spec in specs.items():
        inputs = [i.example(4, rng, torch.device("cpu"), torch.float32) for i in spec.inputs]  # batch 4: new
        with torch.no_grad():
            eager = spec.module.eval()(*inputs)
        eager = [t.numpy() for t in (eager if isinstance(eager, tuple) else (eager,))]
        scripted = torch.jit.load(str(tmp_path / f"{name}.torchscript.pt"))
        with torch.no_grad():
            traced = scripted(*inputs)
        traced = [t.numpy() for t in (traced if isinstance(traced, tuple) else (traced,))]
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [i.name for i in spec.inputs]
        onnx_out = session.run(None, {i.name: x.numpy() for i, x in zip(spec.inputs, inputs)})
        for expected, ts, ox in zip(eager, traced, onnx_out):
            assert np.abs(ts - expected).max() < 1e-5 and np.abs(ox - expected).max() < 1e-5


def test_declaration_mismatches_are_one_line_errors(tmp_path: Path) -> None:
    image = _specs()["image_generator"]
    one_output = ExportSpec(image.module, inputs=image.inputs, outputs=("image",))
    with pytest.raises(ExportError, match=r"returns 2 tensor\(s\) but its export spec names 1 output"):
        export_modules({"image_generator": one_output}, tmp_path)
    wrong_shape = ExportSpec(
        image.module, inputs=(image.inputs[0], ExportInput("landmarks", (68, 2))), outputs=("a", "b")
    )
    with pytest.raises(
        ExportError, match=r"cannot run on its declared inputs \(landmark_image \(2, 3, 16, 16\), landmarks"
    ):
        export_modules({"g": wrong_shape}, tmp_path)
    with pytest.raises(ExportError, match="must be identifiers"):
        export_modules({"my generator": image}, tmp_path)
    with pytest.raises(ExportError, match="nothing to export"):
        export_modules({}, tmp_path)
    with pytest.raises(ValueError, match="unique"):
        ExportSpec(image.module, inputs=(ExportInput("x", (3,)), ExportInput("x", (3,))))
    assert not any(tmp_path.iterdir())
