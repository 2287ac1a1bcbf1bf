"""Checkpoints that hold up: atomic writes survive a kill mid-write, a pickle that would run code is refused before
it runs (in every entry point), our own checkpoints need nothing beyond weights-only loading, and a NaN loss stops
the run naming the term and the step while last.ckpt stays the last good one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from entrypoint_helpers import run_script

import train as train_entry
from src.utils.checkpoint import AtomicCheckpointIO, load_module, read_checkpoint, save_checkpoint_atomic
from src.utils.errors import CheckpointError, NonFiniteLossError
from tests.framework.framework_fixtures import REPO, compose_config, tiny_train_overrides

# ---------------------------------------------------------------------------------------------- atomic writes
KILL_MID_WRITE = textwrap.dedent(
    """
    import io, os, signal, sys
    import torch
    import src.utils.checkpoint as checkpoint

    path = sys.argv[1]
    checkpoint.save_checkpoint_atomic({"version": 1, "weights": torch.arange(200_000.0)}, path)
    real_save = torch.save

    def half_then_die(obj, handle):  # the process is killed halfway through writing the next version
        buffer = io.BytesIO()
        real_save(obj, buffer)
        data = buffer.getvalue()
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.torch.save = half_then_die
    checkpoint.save_checkpoint_atomic({"version": 2, "weights": torch.zeros(200_000)}, path)
    """
)


def test_a_kill_mid_write_leaves_the_previous_complete_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, str(path)], env=env, cwd=REPO, timeout=120)
    assert result.returncode == -9  # SIGKILL, halfway through version 2
    state = torch.load(path, weights_only=True)
    assert state["version"] == 1 and torch.equal(state["weights"], torch.arange(200_000.0))
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.ckpt.") and leftovers[0].endswith(".tmp")


def test_atomic_save_replaces_the_file_and_keeps_normal_permissions(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    save_checkpoint_atomic({"state_dict": {"w": torch.full((3,), 2.0)}}, path)
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.full((3,), 2.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


# ---------------------------------------------------------------------------------------------- safe loading
class _RunsCode:
    """Unpickling this runs a shell command that creates `marker`: any code a hostile checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _hostile_checkpoint(folder: Path) -> tuple[Path, Path]:
    marker = folder / "code_ran"
    path = folder / "shared.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "facesynth": {"module": "x"}, "payload": _RunsCode(marker)}, path)
    return path, marker


def test_a_pickle_that_would_run_code_is_refused_with_one_line(tmp_path: Path) -> None:
    path, marker = _hostile_checkpoint(tmp_path)
    for load in (read_checkpoint, load_module, AtomicCheckpointIO().load_checkpoint):
        with pytest.raises(CheckpointError) as caught:
            load(path)
        message = str(caught.value)
        assert "\n" not in message and "refused" in message and "posix.system" in message and str(path) in message
    assert not marker.exists()
    # the same file really runs code when loaded without the weights-only rule
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "script",
    ["train.py", pytest.param("eval.py", marks=pytest.mark.slow), pytest.param("export.py", marks=pytest.mark.slow)],
)
def test_entry_points_refuse_a_hostile_checkpoint_before_it_runs(script: str, project: Path, tmp_path: Path) -> None:
    path, marker = _hostile_checkpoint(tmp_path)
    key = "ckpt_path" if script == "train.py" else "ckpt"
    result = run_script(project, script, *(["experiment=rgbd_face"] if script == "train.py" else []), f"{key}={path}")
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused" in errors[0] and "Traceback" not in result.stderr
    assert not marker.exists()


def test_our_checkpoints_load_weights_only_with_no_allow_listed_globals(dataset: Path, tmp_path: Path) -> None:
    overrides = tiny_train_overrides(
        dataset, tmp_path, "test=false", "callbacks.model_checkpoint.last_every_n_train_steps=1"
    )
    train_entry.train(compose_config("train.yaml", overrides))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last) == []
    checkpoint = read_checkpoint(last)  # random streams and the loader's data-order state included
    assert checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "batches_done": 2}]
    assert set(checkpoint["facesynth"]["random_state"]) >= {"python", "numpy", "torch"}


# ---------------------------------------------------------------------------------------------- non-finite losses
def test_a_nan_loss_stops_the_run_naming_term_and_step_and_keeps_the_last_good_checkpoint(
    dataset: Path, tmp_path: Path
) -> None:
    poison = [
        "+callbacks.poison._target_=tests.experiments.fault_injection.PoisonBatch",
        "+callbacks.poison.train_batch=3",  # the first batch of epoch 1 (2 batches an epoch)
        "+callbacks.poison.key=rgbd",
    ]
    extra = ["test=false", "callbacks.model_checkpoint.last_every_n_train_steps=1", *poison]
    cfg = compose_config("train.yaml", tiny_train_overrides(dataset, tmp_path, *extra))
    with pytest.raises(NonFiniteLossError) as caught:
        train_entry.train(cfg)
    message = str(caught.value)
    # D runs first: its loss on the poisoned real image is the first non-finite term
    assert "train/D/real = nan" in message and "epoch 1, batch 0" in message and "iteration 2" in message
    last = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 0 and last["global_step"] == 4  # after batch 2: two batches x two optimizers
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
