import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.utils.data import DataLoader

from src.callbacks.run_config import RunConfigInCheckpoint
from src.export import ONNX_FILE, TORCHSCRIPT_FILE
from src.export.checkpoint import export_checkpoint
from src.io.rgbd_layout import write_config
from src.models.rgbd_face import RGBDFaceModule
from src.utils.errors import CheckpointError

REPO = Path(__file__).resolve().parents[2]
SIZE = 64


def _tiny_model_config() -> dict:
    adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-4, "betas": [0.5, 0.999]}
    return {
        "generator": {
            "_target_": "src.models.components.generators.build_generator",
            "name": "resnet_6blocks",
            "input_nc": 1,
            "output_nc": 4,
            "ngf": 8,
            "norm": "batch",
            "dropout": True,
        },
        "discriminator": {
            "_target_": "src.models.components.discriminators.NLayerDiscriminator",
            "input_nc": 5,
            "ndf": 8,
            "n_layers": 2,
        },
        "criteria": {
            "gan": {"_target_": "src.losses.gan.GANLoss", "mode": "lsgan"},
            "l1": {"_target_": "src.losses.reconstruction.L1ReconstructionLoss"},
        },
        "loss_weights": {"gan": 1.0, "l1": 100.0},
        "optimizer_g": adam,
        "optimizer_d": adam,
        "lpips_metric": None,
    }


def _batches(count: int = 2) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    items = []
    for index in range(count):
        rgbd = torch.rand(4, SIZE, SIZE, generator=g) * 2 - 1
        rgbd[:, :, : SIZE // 4] = -1.0  # a background band
        items.append(
            {
                "feature": torch.rand(1, SIZE, SIZE, generator=g) * 2 - 1,
                "rgbd": rgbd,
                "face_mask": rgbd[3:] > -1,
                "depth_near_mm": torch.tensor(480.0),
                "depth_far_mm": torch.tensor(700.0),
                "depth_bits": torch.tensor(16),
                "frame_id": f"t_{index:06d}",
            }
        )
    return items


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """A checkpoint written by Lightning (one training step) with the run config train.py stores."""
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("ckpt")
    dataset = work / "dataset"
    write_config(dataset / "config.txt", {"near_mm": 480.0, "far_mm": 700.0, "depth_bits": 16, "fx": 300.0})
    torch.manual_seed(0)
    module = RGBDFaceModule(**_tiny_model_config())
    run_config = {"data": {"root": str(dataset), "image_size": SIZE}, "model": _tiny_model_config()}
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[RunConfigInCheckpoint(run_config)],
    )
    trainer.fit(module, train_dataloaders=DataLoader(_batches(), batch_size=2))
    ckpt = work / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    return ckpt, dataset


def test_checkpoint_export_rebuilds_the_module_and_matches_its_deployable_network(trained_checkpoint, tmp_path):
    ckpt, dataset = trained_checkpoint
    manifest = export_checkpoint(ckpt, tmp_path, batch_size=2)

    assert manifest["module"] == "src.models.rgbd_face.RGBDFaceModule"
    assert manifest["exported_network"] == "export_model()" and manifest["depth_as_mask_in_graph"] is True
    assert manifest["input"]["shape"] == ["batch", 1, SIZE, SIZE] and manifest["input"]["example_batch"] == 2
    encoding = manifest["depth_encoding"]
    assert (encoding["near_mm"], encoding["far_mm"], encoding["bits"], encoding["fx"]) == (480.0, 700.0, 16, 300.0)
    assert manifest["dataset"] == str(dataset) and manifest["global_step"] == 2
    assert json.loads((tmp_path / "export.json").read_text())["checkpoint"] == str(ckpt.resolve())

    from src.utils.checkpoint import load_module

    module, _ = load_module(ckpt)
    reference = module.export_model()
    x = torch.rand(1, 1, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        eager = reference(x).numpy()
    session = ort.InferenceSession(str(tmp_path / ONNX_FILE), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    scripted = torch.jit.load(str(tmp_path / TORCHSCRIPT_FILE))
    with torch.no_grad():
        ts_out = scripted(x).numpy()
    assert np.abs(onnx_out - eager).max() < 1e-4 and np.abs(ts_out - eager).max() < 1e-4
    background = onnx_out[:, 3:] <= module.background_threshold
    assert np.all(onnx_out[:, :3][np.broadcast_to(background, onnx_out[:, :3].shape)] == -1.0)


def test_raw_generator_export_with_explicit_image_size(trained_checkpoint, tmp_path):
    ckpt, _ = trained_checkpoint
    manifest = export_checkpoint(ckpt, tmp_path / "raw", formats=("torchscript",), use_ema=False, image_size=32)
    assert manifest["exported_network"] == "generator" and manifest["input"]["shape"][-1] == 32
    assert not (tmp_path / "raw" / ONNX_FILE).exists()


def test_bad_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"broken\.ckpt: (corrupt or truncated checkpoint|not a checkpoint)"):
        export_checkpoint(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_entry_point_prints_one_line_for_a_bad_checkpoint(tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"\x00" * 64)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "export.py",
        f"ckpt={bad}",
        f"paths.log_dir={tmp_path}/logs",
        "extras.print_config=false",
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.ckpt" in errors[0]
    assert "Traceback" not in result.stderr
