"""End to end: tiny train -> checkpoint -> resume -> eval; one-line bad-input errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from framework_fixtures import REPO, compose_config, tiny_train_overrides
from hydra.core.global_hydra import GlobalHydra

import eval as eval_entry
import train as train_entry
from src.io.rgbd_layout import processed_paths
from src.utils.checkpoint import read_checkpoint
from src.utils.errors import run_cli as run_entry_point

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_cli(script: str, *overrides: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *overrides],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_train_checkpoint_resume_eval(rgbd_dataset: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    cfg = compose_config("train.yaml", tiny_train_overrides(rgbd_dataset, first, "compare_baselines=true"))
    metrics, objects = train_entry.train(cfg)
    last = first / "checkpoints" / "last.ckpt"
    assert last.is_file() and "test/psnr_rgbd" in metrics and "val/depth_mae_mm" in metrics
    assert sorted(p.name for p in (first / "samples").glob("*.png")) == ["epoch_0000.png", "epoch_0001.png"]
    assert (first / "report" / "index.html").is_file()
    rows = json.loads((first / "comparison.json").read_text())["rows"]
    assert set(rows) == {"trained", "untrained", "mean_face"}
    checkpoint = read_checkpoint(last)
    assert checkpoint["optimizer_states"] and checkpoint["lr_schedulers"]  # the original lacked them
    assert checkpoint["facesynth"]["config"]["data"]["root"] == str(rgbd_dataset)

    resumed = tmp_path / "resumed"
    overrides = tiny_train_overrides(rgbd_dataset, resumed, f"ckpt_path={last}", "trainer.max_epochs=3", "test=false")
    _, objects = train_entry.train(compose_config("train.yaml", overrides))
    trainer = objects["trainer"]
    assert trainer.current_epoch == 3 and trainer.global_step == checkpoint["global_step"] + 2 * 2  # 2 batches x G+D
    assert read_checkpoint(resumed / "checkpoints" / "last.ckpt")["epoch"] == 2
    # paths.output_dir on the resume command line moves the run: the first folder is left as it was
    assert read_checkpoint(last)["epoch"] == 1 and not (first / "checkpoints" / "epoch_002.ckpt").exists()
    stored = read_checkpoint(resumed / "checkpoints" / "last.ckpt")["facesynth"]["config"]
    assert stored["callbacks"]["model_checkpoint"]["dirpath"] == str(resumed / "checkpoints")
    assert stored["logger"]["csv"]["save_dir"] == str(resumed)

    out = tmp_path / "eval"
    eval_cfg = compose_config("eval.yaml", [f"ckpt={last}", f"paths.output_dir={out}", "extras.print_config=false"])
    eval_metrics, objects = eval_entry.evaluate(eval_cfg)
    assert objects["datamodule"].root == rgbd_dataset  # the dataset stored in the checkpoint
    for name in ("psnr_rgbd", "ssim_rgbd", "threshold_pixel_accuracy", "depth_mae_mm", "depth_rmse_mm", "forward_ms"):
        assert f"test/{name}" in eval_metrics
    report = json.loads((out / "report" / "metrics.json").read_text())
    assert len(report["per_sample"]["psnr_rgbd"]) == 3 and set(report["summary"]["psnr_rgbd"]) >= {"median", "max"}


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _corrupt_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    return path


def _other_model_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "facesynth": {"module": "src.models.dfdn.DFDNModule"}}, path)
    return path


def _truncated_dataset(dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "truncated"
    shutil.copytree(dataset, root)
    png = processed_paths(root, "train", "s2_000001")["Feature"]
    png.write_bytes(png.read_bytes()[:-40])
    return root


BAD_INPUTS = {
    "unknown experiment": (
        lambda d, t: ["train.py", "experiment=nope"],
        "Could not find 'experiment/nope'; Available options in 'experiment': dfdn; ",
    ),
    "missing key": (lambda d, t: ["train.py", "model.loss_weights.nope=1"], "Key 'nope' is not in struct"),
    "missing ckpt": (lambda d, t: ["eval.py"], "ckpt is required"),
    "another model": (
        lambda d, t: ["eval.py", "experiment=rgbd_face", f"ckpt={_other_model_checkpoint(t)}"],
        "holds a src.models.dfdn",
    ),
    "corrupt checkpoint": (lambda d, t: ["eval.py", f"ckpt={_corrupt_checkpoint(t)}"], "corrupt or truncated"),
    "truncated PNG": (
        lambda d, t: ["train.py", *tiny_train_overrides(_truncated_dataset(d, t), t / "out")],
        "s2_000001.png: truncated or corrupt PNG",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line(
    case: str, rgbd_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """In-process run of the real entry point (hydra.main + the friendly-error layer) with the case's argv."""
    make_args, expected = BAD_INPUTS[case]
    script, *overrides = make_args(rgbd_dataset, tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", [script, *overrides, f"hydra.run.dir={tmp_path / 'run'}"])
    GlobalHydra.instance().clear()
    entry = train_entry if script == "train.py" else eval_entry
    with pytest.raises(SystemExit) as info:
        run_entry_point(entry.main)
    assert info.value.code == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    line = _last_line(stderr)
    assert line.startswith("error: ") and expected in line, stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_from_the_shell(case: str, rgbd_dataset: Path, tmp_path: Path) -> None:
    make_args, expected = BAD_INPUTS[case]
    script, *overrides = make_args(rgbd_dataset, tmp_path)
    result = run_cli(script, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    line = _last_line(result.stderr)
    assert line.startswith("error: ") and expected in line, result.stderr[-2000:]


# The sweeps (a failing job, Optuna) run from the shell without hydra.sweep.dir in tests/entrypoints/test_sweeps.py.
