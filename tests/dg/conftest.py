"""Shared fixtures of the DG tests: a tiny FaceWorld DG dataset and tiny IDSG / RFG systems built from the tiny
configs (conf/tiny/dg_*.yaml), saved as checkpoints without training (load_module reads them like train.py's)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hydra
import pytest
import torch

from src.faceworld.writers.reenact import write_reenactment_dataset

REPO = Path(__file__).resolve().parents[2]
SIZE = 32


def compose_model(experiment: str, overrides: list[str] | None = None) -> Any:
    """The model config of `experiment` with its tiny settings (Hydra compose, as the entry points compose)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    os.environ.setdefault("PROJECT_ROOT", str(REPO))
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train.yaml", [f"experiment={experiment}", f"+tiny={experiment}", *(overrides or [])])
    return cfg


def save_untrained_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """A checkpoint load_module accepts (state dict, hyper-parameters, the facesynth record)."""
    checkpoint: dict[str, Any] = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def dg_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reenactment_dataset(
        tmp_path_factory.mktemp("dg_data") / "set", num_identities=6, videos_per_identity=1, frames_per_video=3,
        pairs_per_identity=2, test_identities=2, size=SIZE, workers=1, progress=False,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("dg_ckpt")
    idsg = hydra.utils.instantiate(compose_model("dg_idsg").model)
    idsg_path = save_untrained_checkpoint(idsg, folder / "idsg.ckpt")
    rfg_cfg = compose_model("dg_rfg", [f"model.idsg_checkpoint={idsg_path}", "model.loss_weights.perceptual=0"])
    rfg = hydra.utils.instantiate(rfg_cfg.model)
    return {"idsg": idsg_path, "rfg": save_untrained_checkpoint(rfg, folder / "rfg.ckpt")}
