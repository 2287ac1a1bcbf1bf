"""last.ckpt is always the final epoch (best-on-monitor kept beside it); init_from fine-tunes from weights only.

Lightning 2.6 refreshed last.ckpt only when a top-k file was saved: with a monitor, last.ckpt froze at the best
epoch (the quick start's held epoch 7 of 0-9), so the final weights were lost and a resume repeated epochs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import train as train_entry
from src.utils.checkpoint import read_checkpoint
from tests.framework.framework_fixtures import compose_config, tiny_train_overrides

BATCHES, OPTIMIZERS = 2, 2  # tiny settings: limit_train_batches=2, one G and one D step per batch


def _train(dataset: Path, out: Path, *extra: str) -> dict:
    cfg = compose_config("train.yaml", tiny_train_overrides(dataset, out, "test=false", *extra))
    return train_entry.train(cfg)[1]


def test_last_ckpt_is_the_final_epoch_when_the_best_epoch_is_earlier(dataset: Path, tmp_path: Path) -> None:
    # monitor the epoch number, lower is better: the best epoch is 0 by construction, the run has 3
    objects = _train(dataset, tmp_path, "monitor=epoch", "monitor_mode=min", "trainer.max_epochs=3")
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    assert objects["trainer"].checkpoint_callback.best_model_path == str(folder / "epoch_000.ckpt")
    last = read_checkpoint(folder / "last.ckpt")
    assert last["epoch"] == 2 and last["global_step"] == 3 * BATCHES * OPTIMIZERS
    best = read_checkpoint(folder / "epoch_000.ckpt")
    assert best["epoch"] == 0 and best["global_step"] == BATCHES * OPTIMIZERS
    final = objects["model"].state_dict()
    assert all(torch.equal(final[k], v) for k, v in last["state_dict"].items())  # the weights training ended with


def test_without_a_monitor_only_last_ckpt_is_kept(dataset: Path, tmp_path: Path) -> None:
    objects = _train(dataset, tmp_path, "monitor=null", "trainer.max_epochs=3")
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.ckpt"]
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["epoch"] == 2
    assert train_entry._best_checkpoint(objects["trainer"]) == str(tmp_path / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def source_checkpoint(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source_run")
    _train(dataset, out)
    return out / "checkpoints" / "last.ckpt"


def test_init_from_loads_the_weights_into_the_configured_model(
    dataset: Path, tmp_path: Path, source_checkpoint: Path
) -> None:
    objects = _train(dataset, tmp_path, f"init_from={source_checkpoint}", "train=false")
    loaded = objects["model"].state_dict()
    source = read_checkpoint(source_checkpoint)["state_dict"]
    assert set(loaded) == set(source) and all(torch.equal(loaded[k], v) for k, v in source.items())


def test_init_from_starts_a_new_run_at_epoch_zero_with_fresh_optimizers(
    dataset: Path, tmp_path: Path, source_checkpoint: Path
) -> None:
    source = read_checkpoint(source_checkpoint)
    assert source["epoch"] == 1 and source["global_step"] == 2 * BATCHES * OPTIMIZERS
    _train(dataset, tmp_path, f"init_from={source_checkpoint}", "trainer.max_epochs=1")
    tuned = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert tuned["epoch"] == 0 and tuned["global_step"] == BATCHES * OPTIMIZERS
    # Adam counts its own steps: a resumed optimizer would be at 2 + 2 steps, a fresh one at BATCHES
    for optimizer in tuned["optimizer_states"]:
        assert {float(state["step"]) for state in optimizer["state"].values()} == {float(BATCHES)}
    assert [s["last_epoch"] for s in tuned["lr_schedulers"]] == [1, 1]  # one epoch stepped, from 0
    assert tuned["facesynth"]["config"]["init_from"] == str(source_checkpoint)
    assert read_checkpoint(source_checkpoint)["epoch"] == 1  # the source run is untouched
