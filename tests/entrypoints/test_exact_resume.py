"""rgbd_face killed with SIGKILL (a real kill: no handler runs) and resumed with the README's command ends exactly like
the uninterrupted run: weights, EMA, BatchNorm statistics, optimizer and scheduler states, the held-out test metrics.

Kill points: mid-epoch (after training batch 4 of 3 epochs x 2 batches; last.ckpt, written every batch, then holds
batch 3) and in the middle of the validation after batch 4 (in its second of two batches). Also during the
end-of-run export, which must leave no partial file under a final name (`python export.py` then finishes it). The
kill is a callback added from the command line (tests/experiments/fault_injection.py); the sample grid callback
stays on (it used to move the random streams when a resumed run drew its grid batch in another epoch).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from entrypoint_helpers import only_child, run_script, tiny_overrides, user_env

from src.utils.checkpoint import read_checkpoint

KILL = "+callbacks.kill._target_=tests.experiments.fault_injection.KillAt"


def _command(dataset: Path, *extra: str) -> list[str]:
    return tiny_overrides(
        dataset, "trainer.max_epochs=3", "data.val_fraction=0.5", "trainer.limit_val_batches=2",
        "trainer.deterministic=true", "callbacks.model_checkpoint.last_every_n_train_steps=1", *extra,
    )  # fmt: skip


def _finished_run(project: Path, *args: str) -> tuple[Path, dict]:
    result = run_script(project, "train.py", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_child(project / "logs" / "train" / "runs")
    return run, read_checkpoint(run / "checkpoints" / "last.ckpt")


def _test_metrics(run: Path) -> dict[str, list[float]]:
    """Every per-sample held-out value except timings."""
    per_sample = json.loads((run / "report" / "metrics.json").read_text())["per_sample"]
    return {name: values for name, values in per_sample.items() if not name.endswith("_ms")}


def _same(a: object, b: object, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


@pytest.fixture(scope="module")
def uninterrupted(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _finished_run(tmp_path_factory.mktemp("uninterrupted"), *_command(dataset))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill",
    [["+callbacks.kill.train_batches=4"], ["+callbacks.kill.val_after_train_batches=4", "+callbacks.kill.val_batch=1"]],
    ids=["mid_epoch", "mid_validation"],
)
def test_sigkill_then_resume_equals_the_uninterrupted_run(
    kill: list[str], dataset: Path, project: Path, uninterrupted: tuple[Path, dict]
) -> None:
    killed = run_script(project, "train.py", *_command(dataset, KILL, "+callbacks.kill.how=sigkill", *kill))
    assert killed.returncode == -9, killed.stderr[-2000:]
    run = only_child(project / "logs" / "train" / "runs")
    last = run / "checkpoints" / "last.ckpt"
    progress = read_checkpoint(last)["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["processed"] == 3 and progress["current"]["processed"] == 1  # mid-epoch 1
    assert not (run / "report").exists()

    resume = ["experiment=rgbd_face", f"ckpt_path={last.relative_to(project)}"]  # the README's resume command
    resumed, final = _finished_run(project, *resume)
    assert resumed == run
    reference_run, reference = uninterrupted
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "global_step", "epoch"):
        _same(reference[key], final[key], key)
    assert _test_metrics(run) == _test_metrics(reference_run)


KILL_DURING_EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    real_export = torch.onnx.export

    def die(*args, **kwargs):  # the TorchScript file is written; SIGKILL while the ONNX graph is built
        os.kill(os.getpid(), signal.SIGKILL)

    torch.onnx.export = die
    sys.argv = ["train.py", *sys.argv[1:]]
    import train
    from src.utils.errors import run_cli
    run_cli(train.main)
    """
)


@pytest.mark.slow
def test_a_kill_during_the_export_leaves_no_partial_file_under_a_final_name(dataset: Path, project: Path) -> None:
    command = tiny_overrides(dataset, "trainer.max_epochs=1", "test=false", "export=true")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DURING_EXPORT, *command],
        cwd=project, env=user_env(project), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    run = only_child(project / "logs" / "train" / "runs")
    export = run / "export"
    finals = sorted(p.name for p in export.iterdir() if not p.name.startswith("."))
    assert finals == ["generator.torchscript.pt"], finals  # no generator.onnx, no export.json
    torch.jit.load(str(export / "generator.torchscript.pt"))  # the file that is there is complete
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 0  # training's result is kept

    redo = run_script(project, "export.py", f"ckpt={run / 'checkpoints' / 'last.ckpt'}", f"out_dir={export}")
    assert redo.returncode == 0, redo.stderr[-2000:]
    manifest = json.loads((export / "export.json").read_text())
    assert set(manifest["modules"]["generator"]["formats"]) == {"torchscript", "onnx"}
    assert (export / "generator.onnx").stat().st_size > 0
