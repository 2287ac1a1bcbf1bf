"""The SLURM launcher config (conf/hydra/launcher/slurm.yaml, hydra-submitit-launcher) composes with every trainer
setting it reads, turns `trainer=ddp trainer.num_nodes=N trainer.devices=G` into an sbatch script asking for N nodes
of G tasks and G GPUs, and submitit's local executor really runs a tiny training job through the same plugin.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from entrypoint_helpers import only_child, run_script, tiny_overrides
from omegaconf import OmegaConf

from src.utils.checkpoint import read_checkpoint
from tests.framework.framework_fixtures import compose_config


def _launcher(*overrides: str) -> dict:
    cfg = compose_config("train.yaml", ["experiment=rgbd_face", "hydra/launcher=slurm", *overrides])
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_slurm_launcher_takes_its_layout_from_the_trainer() -> None:
    launcher = _launcher("trainer=ddp", "trainer.num_nodes=3", "trainer.devices=2")
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (3, 2, 2)
    assert launcher["submitit_folder"].endswith("/.submitit/%j") and launcher["max_num_timeout"] == 0


def test_slurm_launcher_writes_the_sbatch_script_of_a_multi_node_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    # submitit checks that srun exists before it writes anything; this machine has no SLURM
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    params = _launcher("trainer=ddp", "trainer.num_nodes=2", "trainer.devices=4", "hydra.launcher.partition=gpu")
    # the plugin's own mapping (submitit_launcher.launch): base keys as they are, the others prefixed slurm_
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path / "%j"), slurm_max_num_timeout=0)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    skipped = {"_target_", "submitit_folder", "max_num_timeout"}
    executor.update_parameters(
        **{k if k in base else f"slurm_{k}": v for k, v in params.items() if k not in skipped and v is not None}
    )
    script = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "uid")
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=4320"):
        assert f"#SBATCH {line}" in script, script


@pytest.mark.slow
def test_submitit_local_executor_runs_a_tiny_training_job(dataset: Path, project: Path) -> None:
    result = run_script(
        project, "train.py", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20",
        *tiny_overrides(dataset, "test=false", "trainer.max_epochs=1"), timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_child(project / "logs" / "train" / "multiruns")
    assert read_checkpoint(sweep / "0" / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert any((sweep / ".submitit").rglob("*_result.pkl"))  # the job went through submitit
