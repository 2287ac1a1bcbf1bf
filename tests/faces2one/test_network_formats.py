"""The app's network from a PRNet checkpoint and from its ONNX export: the same maps, the training UV data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # trains the tiny PRNet through train.py (~30 s on a busy machine)
def test_checkpoint_and_onnx_give_the_same_maps(tmp_path: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import train as train_entry
    from src.apps.faces2one.network import PositionMapNetwork
    from src.export.checkpoint import export_checkpoint
    from src.models.components.prnet_uv import write_uv_data

    os.environ.setdefault("PROJECT_ROOT", str(REPO))
    GlobalHydra.instance().clear()
    overrides = ["experiment=prnet", "+tiny=prnet", "trainer.fast_dev_run=true", "extras.print_config=false"]
    overrides += [f"paths.output_dir={tmp_path}", f"paths.log_dir={tmp_path}/logs", f"paths.data_dir={tmp_path}/data"]
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose(config_name="train.yaml", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    _, objects = train_entry.train(cfg)
    checkpoint = tmp_path / "tiny.ckpt"
    objects["trainer"].save_checkpoint(checkpoint)
    model = objects["model"].cpu().eval()
    from_checkpoint = PositionMapNetwork(checkpoint, threads=1)
    crops = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    expected = model.export_model()(torch.from_numpy(crops.transpose(0, 3, 1, 2) / 255.0).float()).detach().numpy()
    np.testing.assert_allclose(from_checkpoint(crops), expected.transpose(0, 2, 3, 1), atol=1e-5)
    np.testing.assert_array_equal(from_checkpoint.uv.face_mask, model.uv_face_mask.numpy())
    export_checkpoint(checkpoint, tmp_path / "export")
    write_uv_data(tmp_path / "export" / "uv-data", from_checkpoint.uv)
    from_onnx = PositionMapNetwork(tmp_path / "export" / "prnet.onnx", threads=1)
    np.testing.assert_allclose(from_onnx(crops), from_checkpoint(crops), atol=1e-3)
