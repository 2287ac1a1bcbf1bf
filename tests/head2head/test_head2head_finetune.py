"""Pre-train on FaceForensics++-layout data (experiment=head2head_ffpp), fine-tune on one target with init_from
(experiment=head2head): the pre-trained networks load key for key; a different generator is one error line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def train(tmp_path: Path, name: str, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "train.py", f"experiment={name}", f"+tiny={name}", f"paths.output_dir={tmp_path / name}",
        f"paths.data_dir={tmp_path / 'data'}", "test=false", "export=false", "compare_baselines=false",
        "extras.print_config=false", *overrides,
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_pretrain_then_finetune_with_init_from(tmp_path: Path) -> None:
    pre = train(tmp_path, "head2head_ffpp")
    assert pre.returncode == 0, pre.stderr[-2000:]
    checkpoint = tmp_path / "head2head_ffpp" / "checkpoints" / "last.ckpt"
    # learning rate 0: one epoch runs (and saves last.ckpt) without moving the loaded weights
    fine = train(tmp_path, "head2head", f"init_from={checkpoint}", "model.optimizer_g.lr=0", "model.optimizer_d.lr=0")
    assert fine.returncode == 0, fine.stderr[-2000:]
    pretrained = torch.load(checkpoint, weights_only=True)["state_dict"]
    started = torch.load(tmp_path / "head2head" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    generator = [k for k in pretrained if k.startswith("generator.")]
    assert generator and all(torch.equal(pretrained[k], started[k]) for k in generator)
    other = train(tmp_path, "head2head", f"init_from={checkpoint}", "model.generator.ngf=8")
    errors = [line for line in other.stderr.splitlines() if line.startswith("error:")]
    assert other.returncode == 1 and len(errors) == 1 and "generator." in errors[0], other.stderr[-2000:]
