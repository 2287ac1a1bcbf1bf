"""src/utils/checkpoint.py's decisions pinned exactly: which file is refused and why, which keys a weight mismatch
names, which submodules a fine-tune may drop, what a resume may change, and where a relocated run's paths go.

Every expected value is written out by hand from the rule in the docstring it checks (not computed by the code under
test), so a flipped comparison, a dropped prefix or a constant off by one changes a result here. All in-process and
pure Python apart from a few KB of torch.save: the whole file runs in well under a second of CPU.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from src.utils import checkpoint as ckpt
from src.utils.errors import CheckpointError, UserError

# ---------------------------------------------------------------------------------------------- reading files


def test_read_checkpoint_names_each_kind_of_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ckpt"
    with pytest.raises(CheckpointError, match=r"^" + str(missing) + r": checkpoint file not found$"):
        ckpt.read_checkpoint(missing)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r": not a checkpoint \(an empty file; a \.ckpt written by train\.py"):
        ckpt.read_checkpoint(empty)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r": not a checkpoint \(not a PyTorch file; "):
        ckpt.read_checkpoint(text)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:300])  # still starts with the zip magic
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt: corrupt or truncated checkpoint \(.+\)$"):
        ckpt.read_checkpoint(truncated)
    no_state = tmp_path / "no_state.ckpt"
    torch.save({"weights": torch.zeros(1)}, no_state)
    with pytest.raises(CheckpointError, match=r"no_state\.ckpt: not a Lightning checkpoint \(no state_dict\)$"):
        ckpt.read_checkpoint(no_state)
    listed = tmp_path / "list.ckpt"
    torch.save([{"state_dict": {}}], listed)
    with pytest.raises(CheckpointError, match=r"no state_dict"):
        ckpt.read_checkpoint(listed)


def test_legacy_pickle_checkpoints_and_zip_checkpoints_both_load(tmp_path: Path) -> None:
    """torch < 1.6 wrote a bare pickle (first byte 0x80): its magic is accepted next to the zip one."""
    legacy = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": {"w": torch.full((2,), 7.0)}, "epoch": 4}, legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:1] == b"\x80"
    loaded = ckpt.read_checkpoint(legacy)
    assert loaded["epoch"] == 4 and torch.equal(loaded["state_dict"]["w"], torch.full((2,), 7.0))
    modern = tmp_path / "modern.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1, dtype=torch.float64)}}, modern)
    assert modern.read_bytes()[:4] == b"PK\x03\x04"
    assert ckpt.read_checkpoint(modern)["state_dict"]["w"].dtype == torch.float64


class _Imports:
    """Unpickles to os.getcwd(): harmless, but a global import the weights-only loader must refuse."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return os.getcwd, ()


def test_an_unsafe_global_is_named_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "x": _Imports()}, path)
    with pytest.raises(CheckpointError) as caught:
        ckpt.safe_torch_load(path, what="weights file")
    message = str(caught.value)
    assert message.startswith(f"{path}: refused to load this weights file: it would import posix.getcwd while ")
    assert "\n" not in message
    # Both wordings torch has used for a refused global are recognised (the regex ignores case).
    for wording in ("Unsupported global: GLOBAL posix.getcwd was", "unsupported GLOBAL posix.getcwd whose"):
        assert ckpt._UNSAFE_GLOBAL.search(wording).group(1) == "posix.getcwd"


def test_an_unpickling_error_without_a_global_is_left_to_the_caller(tmp_path: Path, monkeypatch) -> None:
    def raises(*_: Any, **__: Any) -> None:
        raise pickle.UnpicklingError("invalid load key, 'x'.")

    monkeypatch.setattr(ckpt.torch, "load", raises)
    with pytest.raises(pickle.UnpicklingError, match="invalid load key"):
        ckpt.safe_torch_load(tmp_path / "any.ckpt")


def test_safe_torch_load_maps_to_the_requested_device_weights_only(tmp_path: Path, monkeypatch) -> None:
    seen: dict[str, Any] = {}

    def fake_load(path: Any, map_location: Any = None, weights_only: Any = None) -> dict[str, Any]:
        seen.update(map_location=map_location, weights_only=weights_only)
        return {"state_dict": {}}

    monkeypatch.setattr(ckpt.torch, "load", fake_load)
    ckpt.safe_torch_load(tmp_path / "x.ckpt")
    assert seen == {"map_location": "cpu", "weights_only": True}
    path = tmp_path / "x.ckpt"
    path.write_bytes(b"PK\x03\x04")
    ckpt.AtomicCheckpointIO().load_checkpoint(path)
    assert seen == {"map_location": "cpu", "weights_only": True}  # Lightning passes map_location=None
    ckpt.AtomicCheckpointIO().load_checkpoint(path, map_location="meta", weights_only=True)
    assert seen == {"map_location": "meta", "weights_only": True}


# ---------------------------------------------------------------------------------------------- writing files


def test_a_failed_atomic_save_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"  # the folders do not exist yet
    ckpt.save_checkpoint_atomic({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        ckpt.save_checkpoint_atomic({"state_dict": {}, "bad": lambda: None}, path)  # cannot be pickled
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    assert torch.equal(ckpt.read_checkpoint(path)["state_dict"]["w"], torch.ones(2))


def test_atomic_io_refuses_storage_options_and_weights_only_false(tmp_path: Path) -> None:
    io = ckpt.AtomicCheckpointIO()
    with pytest.raises(TypeError, match=r"^AtomicCheckpointIO takes no storage_options$"):
        io.save_checkpoint({"state_dict": {}}, tmp_path / "a.ckpt", storage_options={})
    assert not (tmp_path / "a.ckpt").exists()
    io.save_checkpoint({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError, match=r"a\.ckpt: checkpoints are loaded weights-only; weights_only=False"):
        io.load_checkpoint(tmp_path / "a.ckpt", weights_only=False)
    assert "w" in io.load_checkpoint(tmp_path / "a.ckpt", weights_only=None)["state_dict"]


# ---------------------------------------------------------------------------------------------- metadata


def test_class_path_and_stored_config_of_a_checkpoint() -> None:
    assert ckpt.module_class_path({"facesynth": {"module": "a.B"}}) == "a.B"
    for bad in ({}, {"facesynth": "a.B"}, {"facesynth": {"config": {}}}):
        with pytest.raises(CheckpointError, match=r"^x\.ckpt: not a facesynth checkpoint \(it records no model"):
            ckpt.module_class_path(bad, "x.ckpt")
    assert ckpt.stored_run_config({}) == {}
    assert ckpt.stored_run_config({"facesynth": {"config": None}}) == {}
    assert ckpt.stored_run_config({"facesynth": {"config": {"seed": 3}}}) == {"seed": 3}


# ---------------------------------------------------------------------------------------------- weights


def _state(**shapes: tuple[int, ...]) -> dict[str, torch.Tensor]:
    return {key.replace("__", "."): torch.zeros(shape) for key, shape in shapes.items()}


def test_weight_mismatch_names_missing_unexpected_and_reshaped_keys() -> None:
    model = _state(a=(2,), b=(3,), c=(1,), ema__w=(5,))
    assert ckpt.describe_weight_mismatch(model, dict(model)) is None
    checkpoint = _state(a=(2,), b=(4, 1), d=(1,), ema__w=(6,))
    assert ckpt.describe_weight_mismatch(model, checkpoint, optional=["ema"]) == (
        "1 missing from the checkpoint (c); 1 not in the model (d); 1 with other shapes (b [4, 1] vs model [3])"
    )
    # Without the optional prefix the EMA's shape counts too; "emax" is not under the prefix "ema".
    assert ckpt.describe_weight_mismatch(model, checkpoint) == (
        "1 missing from the checkpoint (c); 1 not in the model (d); "
        "2 with other shapes (b [4, 1] vs model [3], ema.w [6] vs model [5])"
    )
    assert ckpt.describe_weight_mismatch(_state(emax=(1,)), {}, optional=["ema"]) == (
        "1 missing from the checkpoint (emax)"
    )


def test_weight_mismatch_shows_three_keys_of_each_kind_then_an_ellipsis() -> None:
    four = {f"k{i}": torch.zeros(1) for i in range(4)}
    three = {f"k{i}": torch.zeros(1) for i in range(3)}
    assert ckpt.describe_weight_mismatch(four, {}) == "4 missing from the checkpoint (k0, k1, k2, ...)"
    assert ckpt.describe_weight_mismatch(three, {}) == "3 missing from the checkpoint (k0, k1, k2)"
    assert ckpt.describe_weight_mismatch({}, four) == "4 not in the model (k0, k1, k2, ...)"
    reshaped = {k: torch.zeros(2) for k in four}
    assert ckpt.describe_weight_mismatch(four, reshaped) == (
        "4 with other shapes (k0 [2] vs model [1], k1 [2] vs model [1], k2 [2] vs model [1], ...)"
    )
    reshaped3 = {k: torch.zeros(2) for k in three}
    assert ckpt.describe_weight_mismatch(three, reshaped3).endswith("k2 [2] vs model [1])")


class _Student(nn.Module):
    """A trainable generator, a frozen loss network and a parameter-free block."""

    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.generator = nn.Linear(width, width)
        self.frozen = nn.Linear(width, 1).requires_grad_(False)
        self.act = nn.ReLU()


def test_only_submodules_without_trainable_parameters_may_be_dropped() -> None:
    student = _Student()
    checkpoint = {**student.state_dict(), "generator_ema.weight": torch.zeros(2, 2)}
    assert ckpt._frozen_or_absent_submodules(student, checkpoint) == {"frozen", "generator_ema"}


def test_load_weights_fits_trainable_parts_exactly_and_keeps_frozen_mismatches_as_built() -> None:
    source = _Student()
    with torch.no_grad():
        source.generator.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        source.generator.bias.fill_(0.5)
    state = dict(source.state_dict())
    state["frozen.weight"] = torch.zeros(1, 3)  # a frozen part of another shape
    target = _Student()
    frozen_before = target.frozen.weight.detach().clone()
    ckpt.load_weights(target, state, "src.ckpt")
    assert torch.equal(target.generator.weight, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.equal(target.generator.bias, torch.full((2,), 0.5))
    assert torch.equal(target.frozen.weight, frozen_before)
    state["generator.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as caught:
        ckpt.load_weights(_Student(), state, "src.ckpt")
    assert str(caught.value) == (
        "src.ckpt: weights do not fit the model this run builds: 1 with other shapes (generator.bias [3] vs model [2])"
    )


def test_load_module_rebuilds_the_stored_class_with_overrides(tmp_path: Path) -> None:
    layer = nn.Linear(2, 3)
    path = tmp_path / "linear.ckpt"
    meta = {"module": "torch.nn.Linear"}
    torch.save({"state_dict": layer.state_dict(), "hyper_parameters": {"in_features": 2, "out_features": 3},
                "facesynth": meta}, path)  # fmt: skip
    module, raw = ckpt.load_module(path, expected_class="torch.nn.Linear", overrides={"bias": True})
    assert isinstance(module, nn.Linear) and torch.equal(module.weight, layer.weight) and raw["facesynth"] == meta
    with pytest.raises(
        CheckpointError, match=r"linear\.ckpt: holds a torch\.nn\.Linear model, but this run expects a\.B$"
    ):
        ckpt.load_module(path, expected_class="a.B")
    with pytest.raises(CheckpointError, match=r"linear\.ckpt: weights do not fit the torch\.nn\.Linear it describes: "):
        ckpt.load_module(path, overrides={"bias": False})
    torch.save({"state_dict": {}, "facesynth": {"module": "no_such_package.Model"}}, path)
    unknown = rf"^{re.escape(str(path))}: model class no_such_package\.Model cannot be imported \("
    with pytest.raises(CheckpointError, match=unknown):
        ckpt.load_module(path)


# ---------------------------------------------------------------------------------------------- last.ckpt


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        return self.layer(batch[0]).sum()

    def train_dataloader(self) -> Any:
        data = torch.utils.data.TensorDataset(torch.ones(5, 1))
        return torch.utils.data.DataLoader(data, batch_size=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _CountingLast(ckpt.LastEpochCheckpoint):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.saved_after: list[int] = []

    def _save_last_checkpoint(self, trainer: L.Trainer, candidates: Any) -> None:
        self.saved_after.append(trainer.fit_loop.epoch_loop.batch_progress.total.processed)


def test_last_ckpt_is_refreshed_every_n_batches_but_not_on_the_last_one_and_at_the_epoch_end(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    saver = _CountingLast(dirpath=tmp_path, save_last=True, save_top_k=0, last_every_n_train_steps=2)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[saver], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(_Tiny())
    # batches 2 and 4 mid-epoch (5 is the last batch: the epoch-end save holds it), then epoch end and train end
    # (the end-of-training refresh is skipped by Lightning for a step already saved).
    assert saver.saved_after[:3] == [2, 4, 5]
    assert set(saver.saved_after[3:]) <= {5}


def test_last_checkpoint_settings() -> None:
    assert ckpt.LastEpochCheckpoint(save_last=True, save_top_k=1).save_top_k == 0  # no monitor: last.ckpt only
    assert ckpt.LastEpochCheckpoint(save_last=True, save_top_k=-1).save_top_k == -1
    assert ckpt.LastEpochCheckpoint(save_last=False, save_top_k=1).save_top_k == 1
    assert ckpt.LastEpochCheckpoint(monitor="val", save_last=True, save_top_k=1).save_top_k == 1
    assert ckpt.LastEpochCheckpoint(last_every_n_train_steps=1).last_every_n_train_steps == 1
    for bad in (0, -2, True):
        with pytest.raises(UserError, match=rf"last_every_n_train_steps must be >= 1 or null, got {bad}$"):
            ckpt.LastEpochCheckpoint(last_every_n_train_steps=bad)


# ---------------------------------------------------------------------------------------------- resume


def test_resume_run_folder_is_two_levels_up_only_for_files_in_checkpoints(tmp_path: Path) -> None:
    inside = tmp_path / "run" / "checkpoints" / "last.ckpt"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"x")
    loose = tmp_path / "run" / "last.ckpt"
    loose.write_bytes(b"x")
    assert ckpt.resume_run_folder(inside) == (tmp_path / "run").resolve()
    assert ckpt.resume_run_folder(loose) is None
    assert ckpt.resume_run_folder(inside.parent / "absent.ckpt") is None


def test_config_helpers() -> None:
    assert ckpt._may_change("paths") and ckpt._may_change("paths.output_dir") and ckpt._may_change("test")
    assert not ckpt._may_change("pathsX") and not ckpt._may_change("trainer") and not ckpt._may_change("model.lr")
    tree = {"a": {"b": {"c": 0}}, "x": 1}
    assert ckpt._lookup(tree, "a.b.c") == (True, 0) and ckpt._lookup(tree, "a.b") == (True, {"c": 0})
    assert ckpt._lookup(tree, "a.z") == (False, None) and ckpt._lookup(tree, "x.y") == (False, None)
    assert ckpt._shown(None) == "null" and ckpt._shown(0) == "0" and ckpt._shown(False) == "False"
    moved = ckpt._relocate(
        {"out": "/old", "ckpt": "/old/checkpoints/a", "other": "/older/x", "list": ["/old/l", 3], "n": None},
        "/old",
        "/new",
    )
    assert moved == {"out": "/new", "ckpt": "/new/checkpoints/a", "other": "/older/x", "list": ["/new/l", 3], "n": None}
    assert ckpt._relocate("/old/x", "/old/", "/new/") == "/new/x"


STORED = {
    "model": {"_target_": "pkg.Model", "lr": 0.2, "beta": 0.5},
    "trainer": {"max_epochs": 3},
    "paths": {"output_dir": "/runs/a", "log_dir": "/runs/a/logs"},
    "seed": 1,
}


def _checkpoint(**meta: Any) -> dict[str, Any]:
    return {"facesynth": {"module": "pkg.Model", "config": STORED, **meta}}


def _current(**changes: Any) -> Any:
    cfg = OmegaConf.create(STORED)
    cfg.paths.output_dir = "/runs/b"
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def test_resume_keeps_the_stored_config_moves_its_paths_and_applies_allowed_changes() -> None:
    cfg = _current(**{"trainer.max_epochs": 5})
    meta = {"overrides": ["model.lr=0.2", "trainer.max_epochs=3"]}
    restored, new_meta = ckpt.restore_run_config(
        cfg, _checkpoint(**meta), "/runs/a/checkpoints/last.ckpt", ["trainer.max_epochs=5", "model.lr=0.2"]
    )
    assert OmegaConf.to_container(restored) == {
        "model": {"_target_": "pkg.Model", "lr": 0.2, "beta": 0.5},
        "trainer": {"max_epochs": 5},
        "paths": {"output_dir": "/runs/b", "log_dir": "/runs/b/logs"},
        "seed": 1,
        "ckpt_path": "/runs/a/checkpoints/last.ckpt",
    }
    assert new_meta["overrides"] == ["model.lr=0.2", "trainer.max_epochs=5"]
    assert new_meta["module"] == "pkg.Model"


def test_resume_refuses_overrides_that_change_the_run() -> None:
    cfg = _current(**{"model.lr": 0.1, "model.gamma": 2})
    with pytest.raises(UserError) as caught:
        ckpt.restore_run_config(cfg, _checkpoint(), "c.ckpt", ["model.lr=0.1", "+model.gamma=2", "~model.beta"])
    message = str(caught.value)
    assert message.startswith(
        "ckpt_path=c.ckpt resumes the run with its own config; these overrides would change it: "
        "model.lr=0.1 (the run used model.lr=0.2); +model.gamma=2; ~model.beta (the run has model.beta=0.5). "
        "A resume may change only paths, trainer.max_epochs, "
    )
    assert message.endswith("start a new run with init_from=c.ckpt")
    # start keys, the run's own overrides and unchanged values pass
    restored, _ = ckpt.restore_run_config(
        _current(), _checkpoint(overrides=["seed=1"]), "c.ckpt", ["ckpt_path=c.ckpt", "init_from=x", "seed=1"]
    )
    assert restored.seed == 1
    with pytest.raises(CheckpointError, match=r"^c\.ckpt: holds a pkg\.Model model, but this run trains pkg\.Other$"):
        ckpt.restore_run_config(_current(**{"model._target_": "pkg.Other"}), _checkpoint(), "c.ckpt", [])


def test_resume_compares_config_group_choices() -> None:
    cfg = _current()
    stored = _checkpoint(choices={"experiment": "rgbd_face", "model/generator": "unet"})
    ckpt.restore_run_config(cfg, stored, "c.ckpt", ["experiment=rgbd_face"], {"experiment": "rgbd_face"})
    ckpt.restore_run_config(cfg, stored, "c.ckpt", ["paths=cluster"], {"paths": "cluster"})  # may change
    with pytest.raises(UserError, match=r"would change it: model\.lr=0\.1 \(the run used model\.lr=0\.2\)\."):
        # an allowed group change first: the overrides after it are still checked
        ckpt.restore_run_config(
            _current(**{"model.lr": 0.1}), stored, "c.ckpt", ["paths=cluster", "model.lr=0.1"], {"paths": "cluster"}
        )
    with pytest.raises(UserError, match=r"would change it: experiment=other \(the run used experiment=rgbd_face\)\."):
        ckpt.restore_run_config(cfg, stored, "c.ckpt", ["experiment=other"], {"experiment": "other"})
    with pytest.raises(UserError, match=r"would change it: quickstart=x \(the checkpoint records no quickstart choice"):
        ckpt.restore_run_config(cfg, stored, "c.ckpt", ["quickstart=x"], {"quickstart": "x"})
    # An older checkpoint without stored choices: the experiment must train the same class.
    ckpt.restore_run_config(cfg, _checkpoint(), "c.ckpt", ["experiment=rgbd_face"], {"experiment": "rgbd_face"})
    other = _current(**{"model._target_": "pkg.Model"})
    other_stored = {"facesynth": {"config": {**STORED, "model": {"_target_": "pkg.Old"}}}}
    with pytest.raises(UserError, match=r"experiment=x \(the checkpoint records no experiment choice to compare\)"):
        ckpt.restore_run_config(other, other_stored, "c.ckpt", ["experiment=x"], {"experiment": "x"})


def test_resume_in_the_same_folder_changes_no_path() -> None:
    cfg = _current(**{"paths.output_dir": "/runs/a"})
    restored, _ = ckpt.restore_run_config(cfg, _checkpoint(), "c.ckpt", [])
    assert restored.paths.log_dir == "/runs/a/logs"
    no_class = OmegaConf.create({"paths": {"output_dir": "/runs/a"}})
    restored, meta = ckpt.restore_run_config(no_class, {"facesynth": {"config": STORED}}, "c.ckpt", [])
    assert restored.model.lr == 0.2 and meta["overrides"] == []


def test_the_temporary_file_is_hidden_beside_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dot-file with .tmp in the checkpoint's own folder: os.replace stays on one file system, and a half-written
    file never looks like a checkpoint (*.ckpt) to a resume or a sweep's glob."""
    made: list[str] = []
    real_mkstemp = ckpt.tempfile.mkstemp

    def recording_mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        made.append(name)
        return fd, name

    monkeypatch.setattr(ckpt.tempfile, "mkstemp", recording_mkstemp)
    ckpt.save_checkpoint_atomic({"state_dict": {}}, tmp_path / "last.ckpt")
    (name,) = made
    assert Path(name).parent == tmp_path and Path(name).name.startswith(".last.ckpt.") and name.endswith(".tmp")


def test_messages_name_the_default_source_and_what_a_fine_tune_kept(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(CheckpointError, match=r"^checkpoint: not a facesynth checkpoint"):
        ckpt.module_class_path({})
    state = dict(_Student().state_dict())
    del state["frozen.bias"]
    with caplog.at_level("INFO", logger="src.utils.checkpoint"):
        ckpt.load_weights(_Student(), state, "src.ckpt")
    assert "Loaded 3 weight tensors from src.ckpt; kept as built: frozen.bias" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="src.utils.checkpoint"):
        ckpt.load_weights(_Student(), _Student().state_dict(), "src.ckpt")
    assert caplog.messages == ["Loaded 4 weight tensors from src.ckpt"]


# What README.md says a resume may change, written out here, plus the GPU fast path (trainer.precision,
# channels_last: README "trainer=bf16 channels_last=true"), which RESUME_MAY_CHANGE also lets a resume switch.
DOCUMENTED_RESUME_CHANGES = [
    "trainer.max_epochs=9", "trainer.max_steps=50", "trainer.max_time=00:01:00:00", "trainer.accelerator=gpu",
    "trainer.devices=2", "trainer.num_nodes=2", "trainer.strategy=ddp", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "data.num_workers=4", "data.pin_memory=true", "paths.data_dir=/elsewhere",
    "test=false", "export=false", "compare_baselines=false", "extras.print_config=false", "channels_last=true",
    "trainer.precision=bf16-mixed",
]  # fmt: skip


@pytest.mark.parametrize("override", DOCUMENTED_RESUME_CHANGES)
def test_every_documented_resume_change_is_accepted_and_applied(override: str) -> None:
    key, value = override.split("=", 1)
    cfg = _current(**{key: value})
    restored, meta = ckpt.restore_run_config(cfg, _checkpoint(), "c.ckpt", [override])
    assert str(OmegaConf.select(restored, key)) == value and meta["overrides"] == [override]
