"""The export check is strict: a TorchScript graph that differs from eager PyTorch by more than 1e-4 is refused.

The module below computes something else while it is being traced than when it runs eagerly (the kind of drift a
shape or a flag baked into a traced graph causes), by a known amount: the check must see it, and the file must
not be left behind. A loosened tolerance (1.0) lets a wrong graph ship; this test fails then.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from src.export import ExportInput, ExportSpec
from src.export.checkpoint import (
    _get,
    _trains_on_depth,
    dataset_root_of_run,
    deployable_modules,
    depth_encoding_of_dataset,
    export_checkpoint,
    image_size_of_run,
)
from src.export.generator import (
    ExportError,
    _as_outputs,
    _check,
    _describe_outputs,
    _max_abs_diff,
    _max_diff_of_all,
    describe_inference_norm,
    export_generator,
    export_module,
    export_modules,
    infer_input_channels,
)
from src.models.components.norms import SwitchableDropout
from src.utils.errors import CheckpointError


class DriftsWhenTraced(nn.Module):
    def __init__(self, drift: float) -> None:
        super().__init__()
        self.drift = drift
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = torch.tanh(image * self.scale)
        return out + self.drift if torch.jit.is_tracing() else out


def spec(drift: float) -> dict[str, ExportSpec]:
    return {"g": ExportSpec(DriftsWhenTraced(drift), [ExportInput("image", (1, 8, 8))], ("rgbd",))}


def test_a_graph_off_by_a_hundredth_is_refused_and_not_written(tmp_path: Path) -> None:
    expected = r"TorchScript export differs from eager PyTorch by 0\.01 \(> tolerance 0\.0001\)"
    with pytest.raises(ExportError, match=expected):
        export_modules(spec(1e-2), tmp_path, formats=("torchscript",))
    assert not (tmp_path / "g.torchscript.pt").exists()


def test_a_graph_within_the_tolerance_is_written_with_its_difference(tmp_path: Path) -> None:
    manifest = export_modules(spec(3e-5), tmp_path, formats=("torchscript",))
    entry = manifest["modules"]["g"]["formats"]["torchscript"]
    assert entry["atol"] == 1e-4 and entry["max_abs_diff"] == pytest.approx(3e-5, rel=1e-2)
    assert (tmp_path / "g.torchscript.pt").is_file()
    with pytest.raises(ExportError, match=r"> tolerance 1e-05"):
        export_modules(spec(3e-5), tmp_path / "strict", formats=("torchscript",), atol=1e-5)


# ---------------------------------------------------------------------------------------------- the export contract
# Below: the declarations, the checks and the manifest pinned to values written out by hand from the docstrings of
# src/export (spec.py, generator.py, checkpoint.py). TorchScript of tiny modules only, plus one tiny ONNX export.


def test_export_input_rejects_each_bad_declaration_with_its_own_message() -> None:
    assert ExportInput("identity", ()).shape == ()  # one value per sample
    cases = [
        (("2x", (3,)), r"^export input name must be an identifier, got '2x'$"),
        (("x", (3, 0)), r"^export input 'x': shape must be positive sizes, got \(3, 0\)$"),
        (("x", (3,), -1.0, 1.0, "float16"), r"^export input 'x': dtype must be one of \('float32', 'int64'\), got"),
        (("x", (3,), 1.0, 1.0), r"^export input 'x': empty range \[1\.0, 1\.0\]$"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            ExportInput(*args)
    with pytest.raises(ValueError, match=r"^an export spec needs at least one input and one output$"):
        ExportSpec(nn.Identity(), inputs=(ExportInput("x", (1,)),), outputs=())
    with pytest.raises(ValueError, match=r"^an export spec needs at least one input and one output$"):
        ExportSpec(nn.Identity(), inputs=())


def test_examples_fill_their_declared_range_and_shape() -> None:
    generator = torch.Generator().manual_seed(0)
    floats = ExportInput("x", (50, 40), low=2.0, high=5.0).example(3, generator, torch.device("cpu"), torch.float64)
    assert floats.shape == (3, 50, 40) and floats.dtype == torch.float64
    assert 2.0 <= float(floats.min()) < 2.01 and 4.99 < float(floats.max()) < 5.0  # 6000 uniform draws
    assert abs(float(floats.mean()) - 3.5) < 0.05
    ints = ExportInput("i", (2000,), low=1, high=4, dtype="int64").example(1, generator, torch.device("cpu"), None)
    assert ints.dtype == torch.int64 and sorted(ints.unique().tolist()) == [1, 2, 3]


def test_inputs_are_described_with_batch_axis_layout_and_the_dtype_used() -> None:
    image = ExportInput("feature", (1, 8, 8), description="a drawing")
    assert image.describe(torch.float16) == {
        "name": "feature", "shape": ["batch", 1, 8, 8], "dtype": "float16", "range": [-1.0, 1.0], "layout": "NCHW",
        "description": "a drawing",
    }  # fmt: skip
    chunk = ExportInput("chunk", (2, 3, 4, 4), low=0.0)
    assert chunk.describe(torch.float32)["layout"] == "NTCHW"
    vector = ExportInput("idx", (5,), low=0, high=9, dtype="int64").describe(torch.float32)
    assert vector == {"name": "idx", "shape": ["batch", 5], "dtype": "int64", "range": [0, 9]}


def test_difference_helpers() -> None:
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, 2.5], [2.0, 4.0]], dtype=np.float64)
    assert _max_abs_diff(a, b) == 1.0
    assert _max_abs_diff(a, a.T.reshape(4)) == float("inf")
    assert _max_abs_diff(torch.zeros(0, 3), torch.zeros(0, 3)) == 0.0
    assert _max_diff_of_all([a, a + 0.25], [a, a]) == 0.25
    assert _max_diff_of_all([a], [a, a]) == float("inf")
    _check("TorchScript", Path("g.pt"), 1e-4, 1e-4)  # the tolerance itself is accepted
    for diff in (float("nan"), 1.5e-4):
        with pytest.raises(ExportError, match=r"^g\.pt: TorchScript export differs from eager PyTorch by"):
            _check("TorchScript", Path("g.pt"), diff, 1e-4)


def test_outputs_and_norms_are_described_for_deployers() -> None:
    assert _as_outputs((torch.zeros(1), torch.ones(1)), "g", 2)[1].item() == 1.0
    assert len(_as_outputs([torch.zeros(1)], "g", 1)) == 1
    with pytest.raises(ExportError, match=r"^g must return a tensor or a tuple of tensors, got dict$"):
        _as_outputs({"a": torch.zeros(1)}, "g", 1)
    batch_norm = nn.BatchNorm2d(2)
    batch_norm.inference_norm = "batch"
    assert describe_inference_norm(nn.Sequential(nn.Conv2d(1, 2, 1))) == "none"
    assert describe_inference_norm(nn.Sequential(nn.BatchNorm2d(2), nn.InstanceNorm2d(2))) == (
        "batchnorm-running-statistics,instancenorm"
    )
    assert describe_inference_norm(batch_norm) == "batchnorm-batch-statistics"
    assert infer_input_channels(nn.Sequential(nn.Tanh(), nn.Conv2d(5, 2, 1), nn.Conv2d(2, 7, 1))) == 5
    with pytest.raises(ExportError, match=r"^Sequential: no Conv2d found; pass the input channels explicitly$"):
        infer_input_channels(nn.Sequential(nn.Linear(2, 2)))
    spec_two = ExportSpec(nn.Identity(), inputs=(ExportInput("x", (1,)),), outputs=("a", "b"))
    described = _describe_outputs(spec_two, [torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, 2)], torch.float32)
    assert described == [
        {"name": "a", "shape": ["batch", 3, 2, 2], "dtype": "float32", "channels": ["R", "G", "B"]},
        {"name": "b", "shape": ["batch", 2, 2, 2], "dtype": "float32", "channels": ["c0", "c1"]},
    ]
    named = ExportSpec(nn.Identity(), inputs=(ExportInput("x", (1,)),), metadata={"output_channels": ["u", "v"]})
    assert _describe_outputs(named, [torch.zeros(1, 2, 1, 1)], torch.float32)[0]["channels"] == ["u", "v"]
    assert "channels" not in _describe_outputs(named, [torch.zeros(1, 2)], torch.float32)[0]


class RecordsBatches(nn.Module):
    """A 1x1 convolution, then a dropout left active in eval mode (the test patches forward to record batch sizes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1)
        self.dropout = SwitchableDropout(0.5)
        self.dropout.active_in_eval = True

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dropout(self.conv(feature)))


def test_one_module_export_checks_another_batch_and_writes_the_single_network_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    module = RecordsBatches()
    eager_runs: list[int] = []
    monkeypatch.setattr(RecordsBatches, "forward", _recording_forward(eager_runs))
    spec_ = ExportSpec(module, [ExportInput("feature", (1, 4, 4))], ("rgbd",), source="tiny", metadata={"k": 1})
    with pytest.raises(ExportError, match=r"1 dropout layers are active in eval mode"):
        export_modules({"generator": spec_}, tmp_path, ("torchscript",), keep_inference_dropout=True)
    manifest = export_modules({"generator": spec_}, tmp_path, ("torchscript",), batch_size=2)
    assert eager_runs == [3]  # the eager reference runs on batch_size + 1, not the trace's 2
    assert module.training and all(p.requires_grad for p in module.parameters())  # the caller's module is untouched
    assert module.dropout.active_in_eval
    assert manifest["dtype"] == "float32" and manifest["device"] == "cpu" and manifest["k"] == 1
    assert manifest["input"] == {
        "name": "feature", "shape": ["batch", 1, 4, 4], "dtype": "float32", "range": [-1.0, 1.0], "layout": "NCHW",
        "example_batch": 2,
    }  # fmt: skip
    assert manifest["output"] == {
        "name": "rgbd", "shape": ["batch", 4, 4, 4], "dtype": "float32", "channels": ["R", "G", "B", "depth"],
        "range": [-1.0, 1.0], "background": "depth channel -1 (level 0 of depth_encoding)",
    }  # fmt: skip
    assert manifest["exported_network"] == "tiny" and manifest["inference_dropout_removed"] == 1
    written = (tmp_path / "generator.torchscript.pt").read_bytes()
    assert manifest["formats"]["torchscript"]["sha256"] == hashlib.sha256(written).hexdigest()
    assert manifest["inference_norm"] == "none"
    assert manifest["files"] == {
        "torchscript": str(tmp_path / "generator.torchscript.pt"), "manifest": str(tmp_path / "export.json"),
    }  # fmt: skip
    assert json.loads((tmp_path / "export.json").read_text())["input"]["example_batch"] == 2
    # the single-network layout: the module's contract at the top level, its bookkeeping fields only under "modules"
    assert set(manifest) == {
        "modules", "device", "dtype", "torch", "created", "k", "generator", "exported_network", "formats",
        "inference_norm", "inference_dropout_removed", "input", "output", "files",
    }  # fmt: skip


def test_a_bare_generator_export_names_its_output_channels(tmp_path: Path) -> None:
    manifest = export_generator(
        nn.Conv2d(1, 2, 1),
        torch.zeros(1, 1, 4, 4),
        tmp_path,
        ("torchscript",),
        metadata={"output_channels": ["u", "v"]},
    )
    assert manifest["output"]["channels"] == ["u", "v"] and "output_channels" not in manifest
    assert manifest["input"]["name"] == "feature" and manifest["output"]["name"] == "image"


def _recording_forward(runs: list[int]):
    def forward(self: RecordsBatches, feature: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing():
            runs.append(int(feature.shape[0]))
        return torch.tanh(self.dropout(self.conv(feature)))

    return forward


def test_two_modules_list_their_files_by_module_and_format(tmp_path: Path) -> None:
    specs = {name: ExportSpec(nn.Conv2d(1, 3, 1), [ExportInput("x", (1, 2, 2))]) for name in ("a", "b")}
    manifest = export_modules(specs, tmp_path, ("torchscript",))
    assert manifest["files"] == {
        "a.torchscript": str(tmp_path / "a.torchscript.pt"), "b.torchscript": str(tmp_path / "b.torchscript.pt"),
        "manifest": str(tmp_path / "export.json"),
    }  # fmt: skip
    assert "input" not in manifest and set(manifest["modules"]) == {"a", "b"}
    assert manifest["modules"]["a"]["outputs"][0]["channels"] == ["R", "G", "B"]
    assert manifest["modules"]["a"]["source"] == "Conv2d"  # no declared source: the module's class names it
    with pytest.raises(ExportError, match=r"^export module name must be an identifier \(it names files\), got 'a b'$"):
        export_module("a b", specs["a"], tmp_path)
    with pytest.raises(ExportError, match=r"^batch_size must be >= 1, got 0$"):
        export_module("a", specs["a"], tmp_path, batch_size=0)
    with pytest.raises(ExportError, match=r"^ONNX opset 16 is too old: use >= 17$"):
        export_module("a", specs["a"], tmp_path, opset=16)
    export_module("a", specs["a"], tmp_path / "ts", formats=("torchscript",), opset=16)  # opset matters for ONNX only
    with pytest.raises(ExportError, match=r"non-empty subset of \('torchscript', 'onnx'\), got \[\]"):
        export_module("a", specs["a"], tmp_path, formats=())


# ---------------------------------------------------------------------------------------------- checkpoint -> files


def test_what_a_run_config_says_about_its_dataset(tmp_path: Path) -> None:
    assert _get({"a": {"b": 3}}, "a.b") == 3 and _get({"a": 3}, "a.b") is None
    assert dataset_root_of_run({}) is None and dataset_root_of_run({"data": 5}) is None
    assert dataset_root_of_run({"data": {"root": "/d/x"}}) == Path("/d/x")
    assert dataset_root_of_run({"data": {"cache_dir": "/c"}}) is None
    assert dataset_root_of_run({"data": {"_target_": "no_such.Module"}}) is None
    assert dataset_root_of_run({"data": {"_target_": "collections.OrderedDict"}}) is None  # not a FaceDataModule
    assert _trains_on_depth({"data": {"_target_": "src.datamodules.rgbd.RGBDDataModule"}})
    assert not _trains_on_depth({"data": {"_target_": "src.datamodules.dg.DGDataModule"}}) and not _trains_on_depth({})
    assert depth_encoding_of_dataset(None) is None and depth_encoding_of_dataset(tmp_path) is None
    (tmp_path / "config.txt").write_text("near_mm: 300\nfar_mm: 700\ndepth_bits: 16\nfx: 500.5\ncx: 16\n")
    assert depth_encoding_of_dataset(tmp_path) == {
        "near_mm": 300.0, "far_mm": 700.0, "bits": 16, "fx": 500.5, "cx": 16.0, "source": str(tmp_path / "config.txt"),
    }  # fmt: skip


def test_the_image_size_of_a_run(tmp_path: Path) -> None:
    assert image_size_of_run({"data": {"image_size": 48, "faceworld": {"size": 64}}}, None) == 48
    assert image_size_of_run({"data": {"faceworld": {"size": 64}}}, None) == 64
    assert image_size_of_run({"data": {"root": "/x", "faceworld": {"size": 64}}}, None) is None
    assert image_size_of_run({"data": {}}, None) is None
    features = tmp_path / "train" / "Feature"
    features.mkdir(parents=True)
    import cv2

    cv2.imwrite(str(features / "0001.png"), np.zeros((24, 24), np.uint8))
    assert image_size_of_run({"data": {"root": str(tmp_path)}}, tmp_path) == 24


def test_checkpoint_export_requests_are_checked_before_loading(tmp_path: Path) -> None:
    missing = tmp_path / "none.ckpt"
    with pytest.raises(ExportError, match=r"^half precision export needs a CUDA device: pass device=cuda"):
        export_checkpoint(missing, tmp_path, half=True)
    with pytest.raises(ExportError, match=r"^batch_size must be >= 1, got 0$"):
        export_checkpoint(missing, tmp_path, batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ExportError, match=r"^device 'cuda:0' requested but CUDA is not available"):
            export_checkpoint(missing, tmp_path, device="cuda:0")
    with pytest.raises(CheckpointError, match=r"checkpoint file not found"):  # valid requests reach the loading
        export_checkpoint(missing, tmp_path, batch_size=1)


def test_deployable_modules_of_a_bare_module() -> None:
    class Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.generator = nn.Sequential(nn.Conv2d(3, 4, 3)).train()

    specs = deployable_modules(Bare(), "x.ckpt", 16, True)
    ((name, spec_),) = specs.items()
    assert name == "generator" and not spec_.module.training and spec_.outputs == ("image",)
    assert spec_.inputs[0].name == "feature" and spec_.inputs[0].shape == (3, 16, 16) and spec_.source == "generator"
    with pytest.raises(CheckpointError, match=r"^x\.ckpt: Module has no `generator` network to export$"):
        deployable_modules(nn.Module(), "x.ckpt", 16, True)

    class DeclaresNothing(nn.Module):
        def export_modules(self, image_size: int, deployable: bool) -> dict:
            return {}

    with pytest.raises(CheckpointError, match=r"^x\.ckpt: DeclaresNothing declares no export modules$"):
        deployable_modules(DeclaresNothing(), "x.ckpt", 16, True)


def test_a_tiny_onnx_export_matches_eager_with_its_named_inputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec_ = ExportSpec(nn.Conv2d(2, 1, 1), [ExportInput("drawing", (2, 2, 2))], ("depth",))
    entry = export_module("g", spec_, tmp_path, formats=("onnx",), batch_size=1)
    onnx_entry = entry["formats"]["onnx"]
    assert onnx_entry["opset"] == 18 and onnx_entry["atol"] == 1e-4 and onnx_entry["max_abs_diff"] < 1e-6
    assert onnx_entry["checked_with"].endswith("CPUExecutionProvider")
    assert entry["files"] == {"onnx": str(tmp_path / "g.onnx")}
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("drawing", ["batch", 2, 2, 2])]  # dynamic batch
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("depth", ["batch", 1, 2, 2])]
    assert onnx_entry["sha256"] == hashlib.sha256((tmp_path / "g.onnx").read_bytes()).hexdigest()
    x = np.random.default_rng(0).uniform(-1, 1, (3, 2, 2, 2)).astype(np.float32)
    weight, bias = spec_.module.weight.detach().numpy()[:, :, 0, 0], spec_.module.bias.detach().numpy()
    naive = np.einsum("oc,bchw->bohw", weight, x) + bias[None, :, None, None]
    np.testing.assert_allclose(session.run(None, {"drawing": x})[0], naive, atol=1e-6)


def test_a_faceworld_run_names_its_cache_folder_and_unusable_settings_name_none(tmp_path: Path) -> None:
    from src.datamodules.faceworld import faceworld_cache_path

    settings = {"num_identities": 2, "expressions": ["neutral"], "test_identities": 1, "seed": 0}
    target = "src.datamodules.dfdn.DFDNDataModule"
    data = {"_target_": target, "cache_dir": str(tmp_path), "faceworld": {**settings, "workers": 1}}
    assert dataset_root_of_run({"data": data}) == faceworld_cache_path(tmp_path, "dfdn", settings)
    bad_workers = {**data, "faceworld": {**settings, "workers": -1}}
    assert dataset_root_of_run({"data": bad_workers}) is None


class _Drawn(nn.Module):
    """A bare module with a generator and no export declaration (what export_checkpoint falls back to)."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Conv2d(1, 4, 1)


def _fake_checkpoint(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    data = {"_target_": "src.datamodules.rgbd.RGBDDataModule", "root": str(root), "image_size": 8}
    checkpoint = {"epoch": 3, "global_step": 7, "facesynth": {"config": {"data": data}}}
    monkeypatch.setattr("src.export.checkpoint.load_module", lambda *_, **__: (_Drawn(), checkpoint))


def test_checkpoint_export_records_provenance_and_warns_without_the_depth_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_checkpoint(monkeypatch, tmp_path / "gone")
    with caplog.at_level("WARNING", logger="src.export.checkpoint"):
        manifest = export_checkpoint(tmp_path / "run.ckpt", tmp_path / "out", formats=("torchscript",))
    assert f"Dataset config of the run not found ({tmp_path / 'gone'})" in caplog.text
    assert manifest["checkpoint"] == str((tmp_path / "run.ckpt").resolve())
    assert manifest["module"] == f"{__name__}._Drawn" and manifest["epoch"] == 3 and manifest["global_step"] == 7
    assert manifest["dataset"] == str(tmp_path / "gone") and manifest["depth_encoding"] is None
    assert manifest["input"]["shape"] == ["batch", 1, 8, 8]  # the run's data.image_size
    root = tmp_path / "data"
    root.mkdir()
    (root / "config.txt").write_text("near_mm: 400\nfar_mm: 655\n")
    _fake_checkpoint(monkeypatch, root)
    caplog.clear()
    manifest = export_checkpoint(tmp_path / "run.ckpt", tmp_path / "out2", formats=("torchscript",), image_size=4)
    assert manifest["depth_encoding"] == {
        "near_mm": 400.0,
        "far_mm": 655.0,
        "bits": 8,
        "source": str(root / "config.txt"),
    }
    assert manifest["input"]["shape"] == ["batch", 1, 4, 4] and "not found" not in caplog.text
