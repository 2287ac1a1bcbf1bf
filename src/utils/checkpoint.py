"""Checkpoints that rebuild their model alone: read, check, instantiate, resume and fine-tune facesynth modules.

Every facesynth checkpoint carries `checkpoint["facesynth"]`: the module's class path, a format version, the
resolved run config (data section included) and the run's command-line overrides / config-group choices, next
to Lightning's `hyper_parameters` (the network / loss / optimizer configs as plain containers). eval and export
therefore need only the checkpoint file plus optional overrides, and `train.py ckpt_path=...` restores the run's
own config (see `restore_run_config` for the rule on overrides).

Safety: every load is `torch.load(weights_only=True)` (`safe_torch_load`): tensors and plain containers only, so a
shared checkpoint cannot run code; one that would (a pickle importing `os.system`, a class) is refused with one
line naming what it imports. Our checkpoints need no allow-listed globals (hyper-parameters are stored as plain
dicts). Writes are atomic (`save_checkpoint_atomic`: a temporary file in the same folder, fsync, `os.replace`), so a
kill at any moment leaves the previous complete last.ckpt or the new one, never a truncated file; Lightning writes
and reads through `AtomicCheckpointIO` (conf/trainer/default.yaml: plugins).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.utils.errors import CheckpointError, UserError

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "facesynth"
CHECKPOINT_FORMAT = 1
# First bytes of what torch.save writes: a zip archive (torch >= 1.6) or a legacy pickle (protocol 2+).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
_EXAMPLES = 3  # keys named per kind of mismatch in one error line
# How torch's weights-only unpickler names a global it refused ("... unsupported GLOBAL posix.system whose ...").
_UNSAFE_GLOBAL = re.compile(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL)\s+([\w.]+)", re.IGNORECASE)


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """torch.load(weights_only=True); a file that would import code on load is one CheckpointError naming it.

    Other failures (truncated, not a torch file) propagate for the caller to word.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        match = _UNSAFE_GLOBAL.search(str(err))
        if match is None:
            raise
        raise CheckpointError(
            f"{path}: refused to load this {what}: it would import {match.group(1)} while unpickling, which can run "
            "arbitrary code (only tensors and plain containers are loaded; re-save trusted weights as a state dict)"
        ) from None


def save_checkpoint_atomic(checkpoint: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the target's folder, fsync, then os.replace: never a truncated file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp_name, 0o666 & ~mask)  # mkstemp makes 0600 files; give what a plain open() would
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:  # the rename itself reaches the disk
        os.fsync(directory)
    finally:
        os.close(directory)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with an atomic save and a weights-only load (resume reads like eval / export)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_checkpoint_atomic(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            raise CheckpointError(f"{path}: checkpoints are loaded weights-only; weights_only=False is not supported")
        return read_checkpoint(path, map_location if map_location is not None else "cpu")


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """torch.load with one clear error for a missing, truncated, corrupt, text or non-checkpoint file.

    Any failure of torch.load on a user's file means "not a readable checkpoint" (a text file raises IndexError
    or KeyError from deep inside the unpickler), so every exception it raises becomes a CheckpointError.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    with p.open("rb") as handle:
        head = handle.read(4)
    if not head.startswith(_TORCH_MAGIC):
        kind = "an empty file" if not head else "not a PyTorch file"
        raise CheckpointError(f"{p}: not a checkpoint ({kind}; a .ckpt written by train.py is a zip archive)")
    try:
        checkpoint = safe_torch_load(p, map_location)
    except CheckpointError:
        raise
    except Exception as err:  # whatever the unpickler raises, the file is not a checkpoint
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{p}: corrupt or truncated checkpoint ({first[:200]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{p}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def module_class_path(checkpoint: Mapping[str, Any], source: str | os.PathLike = "checkpoint") -> str:
    meta = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(meta, Mapping) or "module" not in meta:
        raise CheckpointError(f"{source}: not a facesynth checkpoint (it records no model class)")
    return str(meta["module"])


def stored_run_config(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config of the run that wrote the checkpoint ({} for checkpoints written outside train.py)."""
    return dict(checkpoint.get(CHECKPOINT_KEY, {}).get("config") or {})


# ---------------------------------------------------------------------------------------------- weights
def _examples(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_EXAMPLES])
    return f"{shown}, ..." if len(keys) > _EXAMPLES else shown


def describe_weight_mismatch(
    model_state: Mapping[str, torch.Tensor], checkpoint_state: Mapping[str, torch.Tensor], optional: Iterable[str] = ()
) -> str | None:
    """One sentence naming the keys that differ between a model and checkpoint weights; None when they fit.

    Keys under an `optional` prefix (frozen or absent submodules, see load_weights) are left out.
    """
    prefixes = tuple(f"{p}." for p in optional)
    missing = sorted(k for k in model_state if k not in checkpoint_state and not k.startswith(prefixes))
    unexpected = sorted(k for k in checkpoint_state if k not in model_state and not k.startswith(prefixes))
    reshaped = sorted(
        k
        for k in model_state
        if k in checkpoint_state
        and not k.startswith(prefixes)
        and tuple(model_state[k].shape) != tuple(checkpoint_state[k].shape)
    )
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing from the checkpoint ({_examples(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the model ({_examples(unexpected)})")
    if reshaped:
        shapes = [
            f"{k} {list(checkpoint_state[k].shape)} vs model {list(model_state[k].shape)}" for k in reshaped[:_EXAMPLES]
        ]
        parts.append(f"{len(reshaped)} with other shapes ({', '.join(shapes)}{', ...' if len(reshaped) > 3 else ''})")
    return "; ".join(parts) or None


def _frozen_or_absent_submodules(module: nn.Module, checkpoint_state: Mapping[str, torch.Tensor]) -> set[str]:
    """Top-level names whose weights a fine-tune may lack or drop: no trainable parameter in `module` uses them.

    These are copies and fixed parts (an EMA of G, frozen loss backbones, metric networks): a run may switch them on
    or off without changing what is trained. Everything with a trainable parameter must match exactly.
    """
    names = {key.split(".", 1)[0] for key in (*module.state_dict(), *checkpoint_state)}
    optional = set()
    for name in names:
        child = getattr(module, name, None)
        if not isinstance(child, nn.Module) or not any(p.requires_grad for p in child.parameters()):
            optional.add(name)
    return optional


def load_weights(module: nn.Module, checkpoint_state: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Load checkpoint weights into a freshly built `module` (fine-tuning), or raise one CheckpointError.

    Trainable submodules must match key for key and shape for shape; frozen / absent ones (EMA, loss backbones)
    load where they fit and are otherwise left as built (an EMA restarts from the loaded G on its first update).
    """
    model_state = module.state_dict()
    optional = _frozen_or_absent_submodules(module, checkpoint_state)
    problem = describe_weight_mismatch(model_state, checkpoint_state, optional)
    if problem:
        raise CheckpointError(f"{source}: weights do not fit the model this run builds: {problem}")
    fitting = {
        k: v for k, v in checkpoint_state.items() if k in model_state and tuple(v.shape) == tuple(model_state[k].shape)
    }
    module.load_state_dict(fitting, strict=False)
    skipped = sorted(set(model_state) - set(fitting))
    kept = f"; kept as built: {_examples(skipped)}" if skipped else ""
    log.info(f"Loaded {len(fitting)} weight tensors from {source}{kept}")


def load_module(
    path: str | os.PathLike,
    expected_class: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[LightningModule, dict[str, Any]]:
    """Rebuild the module stored in `path` and load its weights; returns (module, raw checkpoint).

    `expected_class` (a `_target_` path) turns "a checkpoint of another model" into a clear error instead of a
    cryptic state-dict mismatch. `overrides` replace top-level constructor arguments (e.g. inference_norm).
    """
    checkpoint = read_checkpoint(path, map_location)
    class_path = module_class_path(checkpoint, path)
    if expected_class and class_path != expected_class:
        raise CheckpointError(f"{path}: holds a {class_path} model, but this run expects {expected_class}")
    try:
        module_class = hydra.utils.get_class(class_path)
    except Exception as err:  # an unknown class path: a checkpoint from a newer / other code base
        raise CheckpointError(f"{path}: model class {class_path} cannot be imported ({err})") from None
    kwargs = dict(checkpoint.get("hyper_parameters") or {})
    kwargs.update(overrides or {})
    module = module_class(**kwargs)
    problem = describe_weight_mismatch(module.state_dict(), checkpoint["state_dict"])
    if problem:
        raise CheckpointError(f"{path}: weights do not fit the {class_path} it describes: {problem}")
    module.load_state_dict(checkpoint["state_dict"])
    return module, checkpoint


# ---------------------------------------------------------------------------------------------- last.ckpt
class LastEpochCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last.ckpt always holds the latest epoch, next to the best file on `monitor`.

    Lightning 2.6 refreshes last.ckpt only when it also writes a top-k file, so with a monitor last.ckpt froze at
    the best epoch: the final weights were lost and a resume repeated epochs. Here last.ckpt is written after every
    epoch's checkpoint step (and at the end of training) unless this step was already saved. Without a monitor a
    single top-k file would only duplicate last.ckpt, so save_top_k=1 keeps none (best_model_path stays empty).
    `last_every_n_train_steps` also refreshes last.ckpt mid-epoch, so a killed run resumes where it was (exactly:
    the data order and random streams are in the checkpoint, see src/models/base/resume.py).
    """

    def __init__(self, *args: Any, last_every_n_train_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.monitor is None and self.save_last and self.save_top_k == 1:
            self.save_top_k = 0
        if last_every_n_train_steps is not None and (
            isinstance(last_every_n_train_steps, bool) or int(last_every_n_train_steps) < 1
        ):
            raise UserError(
                "callbacks.model_checkpoint.last_every_n_train_steps must be >= 1 or null, "
                f"got {last_every_n_train_steps}"
            )
        self.last_every_n_train_steps = last_every_n_train_steps

    def _refresh_last(self, trainer: Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        """Mid-epoch last.ckpt every `last_every_n_train_steps` training batches (a kill loses at most that many);
        the epoch's last batch is left to the end-of-epoch save, which also holds the epoch's scheduler step."""
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        every = self.last_every_n_train_steps
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if every and not progress.is_last_batch and progress.total.processed % every == 0:
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)


# ---------------------------------------------------------------------------------------------- resume
# What a resume may change: how long the run goes on, where it runs and where its folders are (paths: a run
# copied to another machine), how data is loaded, what happens after training, and cosmetics. Everything else is
# the run's own (stored) config; changing it is a new run (init_from).
RESUME_MAY_CHANGE = (
    "paths",
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "data.num_workers",
    "data.pin_memory",
    "test",
    "export",
    "compare_baselines",
    "extras",
    "channels_last",
    "trainer.precision",
)
# Keys that say what to start from, never part of the comparison with the stored run.
START_KEYS = ("ckpt_path", "init_from")


def resume_run_folder(ckpt_path: str | os.PathLike) -> Path | None:
    """The run folder a checkpoint belongs to (<run>/checkpoints/<file>.ckpt), or None for a loose file."""
    path = Path(ckpt_path).expanduser().resolve()
    return path.parent.parent if path.parent.name == "checkpoints" and path.is_file() else None


def _may_change(key: str) -> bool:
    return any(key == allowed or key.startswith(f"{allowed}.") for allowed in RESUME_MAY_CHANGE)


def _lookup(tree: Any, key: str) -> tuple[bool, Any]:
    node = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _shown(value: Any) -> str:
    """A config value as the command line writes it (null, not None)."""
    return "null" if value is None else str(value)


def _relocate(value: Any, old: str, new: str) -> Any:
    """Every path string under the old run folder, moved to the new one (a run folder copied elsewhere)."""
    if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
        return new + value[len(old) :]
    if isinstance(value, Mapping):
        return {k: _relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocate(v, old, new) for v in value]
    return value


def _override_conflicts(
    cfg: DictConfig,
    stored: Mapping[str, Any],
    meta: Mapping[str, Any],
    overrides: Sequence[str],
    choices: Mapping[str, Any],
) -> tuple[list[str], list[str]]:
    """(conflicts, accepted changes) of the resume command line's overrides against the stored run."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    stored_choices = meta.get("choices") or {}
    stored_overrides = set(meta.get("overrides") or [])
    conflicts, changes = [], []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key in START_KEYS or override.input_line in stored_overrides:
            continue
        if key in choices:  # a config group (experiment=, quickstart=, model/generator=, ...)
            if _may_change(key):
                continue
            if key in stored_choices:
                if stored_choices[key] != choices[key]:
                    conflicts.append(f"{override.input_line} (the run used {key}={_shown(stored_choices[key])})")
            elif key == "experiment" and cfg.model.get("_target_") == _lookup(stored, "model._target_")[1]:
                continue  # an older checkpoint without stored choices: the experiment must train the same class
            else:
                conflicts.append(f"{override.input_line} (the checkpoint records no {key} choice to compare)")
            continue
        found, before = _lookup(stored, key)
        if override.is_delete():
            if found:
                conflicts.append(f"{override.input_line} (the run has {key}={_shown(before)})")
            continue
        now = OmegaConf.select(cfg, key)
        now = OmegaConf.to_container(now, resolve=True) if OmegaConf.is_config(now) else now
        if found and before == now:
            continue
        elif _may_change(key):
            changes.append(key)
        else:
            conflicts.append(
                f"{override.input_line} (the run used {key}={_shown(before)})" if found else override.input_line
            )
    return conflicts, changes


def restore_run_config(
    cfg: DictConfig,
    checkpoint: Mapping[str, Any],
    ckpt_path: str,
    overrides: Sequence[str],
    choices: Mapping[str, Any] | None = None,
) -> tuple[DictConfig, dict[str, Any]]:
    """The config a resume continues with: the run's own stored config, in this run's output folder.

    Rule: the resume command line may repeat the run's own overrides, and may change only RESUME_MAY_CHANGE
    (run length, hardware, data loading, post-training steps); any other override that differs from the stored
    run is one UserError naming it (start a new run from the weights with init_from=<ckpt> instead).
    Returns (config, stored facesynth meta with the accepted overrides added) for the next checkpoints.
    """
    meta = dict(checkpoint.get(CHECKPOINT_KEY) or {})
    stored = stored_run_config(checkpoint)
    model_target = cfg.model.get("_target_") if cfg.get("model") else None
    stored_class = meta.get("module")
    if stored_class and model_target and stored_class != model_target:
        raise CheckpointError(f"{ckpt_path}: holds a {stored_class} model, but this run trains {model_target}")
    conflicts, changes = _override_conflicts(cfg, stored, meta, overrides, choices or {})
    if conflicts:
        raise UserError(
            f"ckpt_path={ckpt_path} resumes the run with its own config; these overrides would change it: "
            f"{'; '.join(conflicts)}. A resume may change only {', '.join(RESUME_MAY_CHANGE)}; "
            f"to train with other settings from these weights, start a new run with init_from={ckpt_path}"
        )
    restored = dict(stored)
    old_dir = str(_lookup(stored, "paths.output_dir")[1] or "")
    new_dir = str(cfg.paths.output_dir)
    if old_dir and old_dir != new_dir:
        log.info(f"Resuming in {new_dir} (the run wrote to {old_dir})")
        restored = _relocate(restored, old_dir, new_dir)
    restored_cfg = OmegaConf.create(restored)
    for key in changes:
        value = OmegaConf.select(cfg, key)
        OmegaConf.update(restored_cfg, key, value, merge=False)
        log.info(f"Resume changes {key}: {_lookup(stored, key)[1]} -> {value}")
    restored_cfg.ckpt_path = str(ckpt_path)
    kept = [o for o in meta.get("overrides") or [] if o.split("=", 1)[0].lstrip("+~") not in changes]
    meta["overrides"] = kept + [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in changes]
    return restored_cfg, meta
