"""Every experiment takes the scale-out and GPU-path options: `trainer=ddp` (multi-process, `trainer.num_nodes=N`
for several machines), `trainer=bf16` (bf16 mixed precision) and `channels_last=true`. The configs must compose for
every conf/experiment/*.yaml; on a CPU each experiment also trains one step with channels-last weights and batches
under bf16 autocast (CI has no GPU; the numbers of the GPU path are in bench/RESULTS.md when a GPU was lent).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_every_experiment import EXPERIMENTS, compose, require_tiny


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_scale_out_and_gpu_options_compose(name: str) -> None:
    cfg = compose("train.yaml", [f"experiment={name}", "trainer=ddp", "trainer.num_nodes=3"])
    assert cfg.trainer.strategy == "ddp_find_unused_parameters_true" and cfg.trainer.num_nodes == 3
    assert cfg.trainer.sync_batchnorm is True
    cfg = compose("train.yaml", [f"experiment={name}", "trainer=bf16", "channels_last=true"])
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "gpu" and cfg.channels_last is True
    assert cfg.trainer.plugins[0]._target_ == "src.utils.checkpoint.AtomicCheckpointIO"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_channels_last_bf16_step_on_cpu(name: str, tmp_path: Path, data_dir: Path) -> None:
    import train as train_entry
    from tests.experiments.probes import ConvDtypeProbe

    require_tiny(name)
    torch.set_num_threads(1)
    overrides = [
        f"experiment={name}",
        f"+tiny={name}",
        "trainer.fast_dev_run=true",
        "trainer.precision=bf16-mixed",
        "channels_last=true",
        "+callbacks.probe._target_=tests.experiments.probes.ConvDtypeProbe",
        "test=false",
        "export=false",
        "compare_baselines=false",
        "extras.print_config=false",
        f"paths.output_dir={tmp_path}",
        f"paths.log_dir={tmp_path}/logs",
        f"paths.data_dir={data_dir}",
    ]
    metrics, objects = train_entry.train(compose("train.yaml", overrides))
    model, trainer = objects["model"], objects["trainer"]
    assert trainer.global_step >= 1
    weights = [p for p in model.generator.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    probe = next(c for c in trainer.callbacks if isinstance(c, ConvDtypeProbe))
    assert probe.dtypes and set(probe.dtypes) == {torch.bfloat16}, probe.dtypes
    losses = [float(v) for k, v in metrics.items() if k.startswith("train/")]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
