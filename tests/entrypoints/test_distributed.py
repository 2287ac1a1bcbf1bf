"""Distributed training on Lightning's engine: `trainer=ddp` with 2 CPU processes (gloo) trains rgbd_face to the same
weights as one process with the same global batch.

Why they can agree: the resumable sampler (src/utils/data_order.py) gives rank r every 2nd index of the one
(seed, epoch) permutation, so the two ranks' batches of 1 are exactly the single process's batch of 2; DDP averages
the two ranks' gradients (= the mean loss over the global batch). On GPUs sync_batchnorm (conf/trainer/ddp.yaml)
normalises over the global batch; PyTorch's SyncBatchNorm has no CPU version, so here both networks use instance
norm (per-sample statistics: the same in both layouts). Dropout is off: each rank draws its own masks. What remains
is float summation order (all-reduce vs one batched kernel). Adam turns gradients that are pure rounding noise
into full-size steps (a conv bias in front of an affine-free InstanceNorm has a zero gradient in exact arithmetic),
so such weights may differ by up to lr x steps without changing any output: the comparison is in function space.
Stated tolerance: the two generators' (and discriminators') outputs on fixed random inputs differ by at most 1e-3
(outputs in [-1, 1]), after 2 epochs x 2 steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from entrypoint_helpers import only_child, run_script, tiny_overrides

from src.utils.checkpoint import load_module, read_checkpoint

TOLERANCE = 1e-3


def _train(project: Path, dataset: Path, *extra: str) -> Path:
    # 4 training frames (s1, s2 minus the held-out group): 2 steps of global batch 2 per epoch
    per_sample = ["model.generator.dropout=false", "model.generator.norm=instance", "model.discriminator.norm=instance"]
    overrides = tiny_overrides(dataset, "test=false", *per_sample, "data.val_fraction=0.25", *extra)
    result = run_script(project, "train.py", *overrides, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_child(project / "logs" / "train" / "runs")
    return run / "checkpoints" / "last.ckpt"


def _outputs(checkpoint: Path) -> list[torch.Tensor]:
    module, _ = load_module(checkpoint)
    module.eval()
    generator = torch.Generator().manual_seed(0)
    feature = torch.rand(3, 1, 32, 32, generator=generator) * 2 - 1
    rgbd = torch.rand(3, 4, 32, 32, generator=generator) * 2 - 1
    with torch.no_grad():
        fake = module.generator(feature)
        judged = module.discriminator(torch.cat([feature, rgbd], 1))
    return [fake, *_tensors(judged)]


def _tensors(value: object) -> list[torch.Tensor]:
    """Every tensor of a (nested) list of D outputs (pix2pixHD layout: features per layer)."""
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for item in value for t in _tensors(item)]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "single").mkdir()
    (tmp_path / "ddp").mkdir()
    single = _train(tmp_path / "single", dataset, "data.batch_size=2")
    ddp = _train(
        tmp_path / "ddp", dataset, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.sync_batchnorm=false", "data.batch_size=1",
    )  # fmt: skip
    assert read_checkpoint(ddp)["global_step"] == read_checkpoint(single)["global_step"] == 2 * 2 * 2  # 2 x 2 x (G, D)
    single_out, ddp_out = _outputs(single), _outputs(ddp)
    worst = max(float((a - b).abs().max()) for a, b in zip(single_out, ddp_out))
    assert worst <= TOLERANCE, f"largest output difference {worst:.3g}"
