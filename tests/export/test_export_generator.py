import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from src.export import MANIFEST_FILE, ONNX_FILE, TORCHSCRIPT_FILE, ExportError, export_generator
from src.models.components.generators import build_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def _run_exports(out_dir, x: torch.Tensor):
    scripted = torch.jit.load(str(out_dir / TORCHSCRIPT_FILE))
    session = ort.InferenceSession(str(out_dir / ONNX_FILE), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ts = scripted(x).numpy()
    onnx_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    return ts, onnx_out


def test_resnet_generator_exports_match_eager_with_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    generator = build_generator("resnet_6blocks", 1, 4, ngf=8, norm="instance", dropout=False)
    manifest = export_generator(generator, torch.zeros(1, 1, 64, 64), tmp_path, metadata={"dataset": "tiny"})

    assert generator.training  # the caller's module is untouched
    x = torch.rand(3, 1, 64, 64) * 2 - 1  # batch 3: neither the trace nor the check batch size
    with torch.no_grad():
        eager = generator.eval()(x).numpy()
    ts, onnx_out = _run_exports(tmp_path, x)
    assert np.abs(ts - eager).max() < 1e-4 and np.abs(onnx_out - eager).max() < 1e-4

    on_disk = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert on_disk == json.loads(json.dumps(manifest, default=str))
    assert on_disk["input"]["shape"] == ["batch", 1, 64, 64] and on_disk["input"]["range"] == [-1.0, 1.0]
    assert on_disk["output"]["channels"] == ["R", "G", "B", "depth"]
    assert on_disk["formats"]["onnx"]["opset"] >= 17
    assert 0 <= on_disk["formats"]["onnx"]["max_abs_diff"] <= on_disk["formats"]["onnx"]["atol"]
    assert on_disk["inference_norm"] == "instancenorm" and on_disk["dataset"] == "tiny"
    # one module: the single-network layout (files by format) next to the per-module entry
    assert on_disk["files"] == {
        "torchscript": str(tmp_path / TORCHSCRIPT_FILE),
        "onnx": str(tmp_path / ONNX_FILE),
        "manifest": str(tmp_path / MANIFEST_FILE),
    }
    assert (
        list(on_disk["modules"]) == ["generator"] and on_disk["modules"]["generator"]["inputs"][0]["name"] == "feature"
    )
    assert not list(tmp_path.glob(".*.tmp*"))


def test_unet_with_original_test_time_semantics_exports_batch_statistics(tmp_path):
    """pix2pix test behaviour: BatchNorm on the batch's own statistics; active dropout is removed for export."""
    torch.manual_seed(1)
    generator = build_generator(
        "unet_128", 1, 4, ngf=8, norm="batch", dropout=True, inference_norm="batch", inference_dropout=True
    )
    manifest = export_generator(generator, torch.zeros(1, 1, 128, 128), tmp_path)
    assert manifest["inference_norm"] == "batchnorm-batch-statistics"
    assert manifest["inference_dropout_removed"] > 0
    x = torch.rand(1, 1, 128, 128) * 2 - 1
    ts, onnx_out = _run_exports(tmp_path, x)
    reference = torch.jit.load(str(tmp_path / TORCHSCRIPT_FILE))
    with torch.no_grad():
        assert torch.equal(reference(x), reference(x))  # deterministic: no dropout left
    assert np.abs(ts - onnx_out).max() < 1e-4
    with pytest.raises(ExportError, match="dropout layers are active"):
        export_generator(generator, torch.zeros(1, 1, 128, 128), tmp_path / "random", keep_inference_dropout=True)


class _BakesBatchSize(nn.Module):
    """Turns the batch size into a Python number: a trace freezes it, so other batch sizes go wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * float(x.shape[0])


def test_export_that_differs_from_eager_fails_and_keeps_previous_files(tmp_path):
    good = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh())
    export_generator(good, torch.zeros(1, 1, 16, 16), tmp_path, formats=("torchscript",))
    before = (tmp_path / TORCHSCRIPT_FILE).read_bytes()
    with pytest.raises(ExportError, match=r"TorchScript export differs from eager PyTorch by .* \(> tolerance"):
        export_generator(_BakesBatchSize(), torch.zeros(1, 1, 16, 16), tmp_path, formats=("torchscript",))
    assert (tmp_path / TORCHSCRIPT_FILE).read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp*"))


def test_bad_requests_are_one_line_errors(tmp_path):
    generator = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh())
    with pytest.raises(ExportError, match="half precision export needs a CUDA device"):
        export_generator(generator, torch.zeros(1, 1, 16, 16), tmp_path, half=True)
    with pytest.raises(ExportError, match="formats"):
        export_generator(generator, torch.zeros(1, 1, 16, 16), tmp_path, formats=("tflite",))
    with pytest.raises(ExportError, match="opset 13 is too old"):
        export_generator(generator, torch.zeros(1, 1, 16, 16), tmp_path, opset=13)
    with pytest.raises(ExportError, match="NCHW"):
        export_generator(generator, torch.zeros(1, 16, 16), tmp_path)
    with pytest.raises(ExportError, match="cannot run"):
        export_generator(generator, torch.zeros(1, 3, 16, 16), tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="half precision export needs a CUDA device")
def test_half_precision_export_on_cuda(tmp_path):
    generator = build_generator("resnet_6blocks", 1, 4, ngf=8, norm="instance", dropout=False)
    manifest = export_generator(generator, torch.zeros(1, 1, 64, 64, device="cuda"), tmp_path, half=True)
    assert manifest["input"]["dtype"] == "float16"
    assert manifest["formats"]["torchscript"]["max_abs_diff"] <= manifest["formats"]["torchscript"]["atol"]
