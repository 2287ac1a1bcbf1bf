"""Distributed training on Lightning's engine: `trainer=ddp` with 2 CPU processes (gloo) trains rgbd_face to the same
weights as one process with the same global batch.

Why they can agree: the resumable sampler (src/utils/data_order.py) gives rank r every 2nd index of the one
(seed, epoch) permutation, so the two ranks' batches of 1 are exactly the single process's batch of 2; DDP averages
the two ranks' gradients (= the mean loss over the global batch). On GPUs sync_batchnorm (conf/trainer/ddp.yaml)
normalises over the global batch; PyTorch's SyncBatchNorm has no CPU version, so here both networks use instance
norm (per-sample statistics: the same in both layouts). Dropout is off: each rank draws its own masks. What remains
is float summation order (all-reduce vs one batched kernel), amplified by Adam's normalised first steps: the stated
tolerance is max |w_ddp - w_single| <= 2e-4 per weight over 2 epochs x 2 steps (measured: see the report).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from entrypoint_helpers import only_child, run_script, tiny_overrides

from src.utils.checkpoint import read_checkpoint

TOLERANCE = 2e-4


def _train(project: Path, dataset: Path, *extra: str) -> dict[str, torch.Tensor]:
    # 4 training frames (s1, s2 minus the held-out group): 2 steps of global batch 2 per epoch
    per_sample = ["model.generator.dropout=false", "model.generator.norm=instance", "model.discriminator.norm=instance"]
    overrides = tiny_overrides(dataset, "test=false", *per_sample, "data.val_fraction=0.25", *extra)
    result = run_script(project, "train.py", *overrides, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_child(project / "logs" / "train" / "runs")
    return read_checkpoint(run / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "single").mkdir()
    (tmp_path / "ddp").mkdir()
    single = _train(tmp_path / "single", dataset, "data.batch_size=2")
    ddp = _train(
        tmp_path / "ddp", dataset, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.sync_batchnorm=false", "data.batch_size=1",
    )  # fmt: skip
    assert ddp["global_step"] == single["global_step"] == 2 * 2 * 2  # 2 epochs x 2 batches x (G, D)
    floats = [k for k, v in single["state_dict"].items() if v.is_floating_point()]
    worst = max(float((single["state_dict"][k] - ddp["state_dict"][k]).abs().max()) for k in floats)
    moved = max(float((single["state_dict"][k]).abs().max()) for k in floats)
    assert worst <= TOLERANCE, f"largest weight difference {worst:.3g} (weights up to {moved:.3g})"
