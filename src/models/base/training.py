"""The training step: phases pick the active updates and weights, sequences run in chunks with carried state, and
every update is toggle -> losses -> zero_grad -> backward -> clip -> step -> untoggle, logged by term.

Manual optimization (Lightning does not step optimizers or schedulers for us): schedulers advance here once per
epoch; `global_step` counts optimizer steps, so lazy updates count training iterations themselves
(`iterations`, saved in the checkpoint so a resumed run keeps the same every-k rhythm).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import nn

from src.models.base.specs import PhaseSpec, UpdateSpec, build
from src.utils.errors import NonFiniteLossError, UserError

log = logging.getLogger(__name__)

Batch = dict[str, Any]
CARRY = "carry"


def detach_tree(value: Any) -> Any:
    """The same structure with every tensor detached: no graph reaches back into a previous chunk."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, dict):
        return {k: detach_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(detach_tree(v) for v in value)
    return value


def batch_size(batch: Batch) -> int:
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise ValueError("batch holds no tensor")


class TrainingMixin:
    """configure_optimizers / training_step / phases / chunks / lazy updates; see the module docstring."""

    # ------------------------------------------------------------------ plan
    def active_phase(self, epoch: int, batch_idx: int) -> PhaseSpec | None:
        """The first configured phase covering (epoch, batch index); None when the model has no phases."""
        if not self.phases:
            return None
        for phase in self.phases:
            if phase.covers(epoch, batch_idx):
                return phase
        raise UserError(f"model.phases: no phase covers epoch {epoch}, batch {batch_idx}")

    def update_weights(self, update: UpdateSpec, phase: PhaseSpec | None) -> dict[str, float]:
        """The update's weight table with the phase's overrides applied (zero-weight terms dropped)."""
        weights = {**update.loss_weights, **(phase.loss_weights.get(update.name, {}) if phase else {})}
        return {k: w for k, w in weights.items() if w != 0.0}

    def update_is_active(self, update: UpdateSpec, phase: PhaseSpec | None, iteration: int) -> bool:
        if iteration % update.every_k_steps:
            return False
        if phase is None:
            return True
        if update.phases is not None and phase.name not in update.phases:
            return False
        return phase.updates is None or update.name in phase.updates

    # ------------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> Any:
        """One optimizer per update that owns one (declaration order), each with its scheduler if any."""
        optimizers, schedulers = [], []
        default_scheduler = build(self._default_scheduler, "model.scheduler")
        for update in self.update_specs:
            if update.shares_optimizer:
                continue
            what = self.optimizer_config_keys.get(update.name, f"model.updates ({update.name}).optimizer")
            factory = build(update.optimizer, what)
            params = [p for name in update.parameters for p in self.network(name).parameters()]
            try:
                optimizer = factory(params=params)
            except (ValueError, TypeError) as err:  # e.g. a negative learning rate
                raise UserError(f"{what}: {str(err).strip().splitlines()[0]}") from err
            optimizers.append(optimizer)
            scheduler = default_scheduler if update.inherit_scheduler else build(update.scheduler, what)
            if scheduler is not None:
                schedulers.append({"scheduler": scheduler(optimizer=optimizer), "interval": "epoch"})
        return (optimizers, schedulers) if schedulers else optimizers

    def optimizer_of(self, update: UpdateSpec) -> Any:
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        owner = update.optimizer if update.shares_optimizer else update.name
        return optimizers[self._optimizer_index[owner]]

    # ------------------------------------------------------------------ the step
    def chunks(self, batch: Batch) -> list[Batch]:
        """The batch cut along time (dim 1 of SEQUENCE_KEYS) into chunks of `chunk_frames`; one chunk otherwise."""
        if not self.SEQUENCE_KEYS or not self.chunk_frames:
            return [batch]
        missing = [k for k in self.SEQUENCE_KEYS if k not in batch]
        if missing:
            raise UserError(f"{type(self).__name__}: the batch lacks the sequence key(s) {missing}")
        length = int(batch[self.SEQUENCE_KEYS[0]].shape[1])
        return [
            {k: v[:, start : start + self.chunk_frames] if k in self.SEQUENCE_KEYS else v for k, v in batch.items()}
            for start in range(0, length, self.chunk_frames)
        ]

    def run_chunks(
        self, batch: Batch, generator: nn.Module, each_chunk: Any = None, carry: Any = None
    ) -> list[dict[str, Any]]:
        """generate() over the chunks in order, feeding each chunk the detached `carry` the previous one returned;
        the first chunk gets `carry` (None: the start of a sequence; see generate_whole's evaluation streams)."""
        carry = detach_tree(carry)
        results = []
        for chunk in self.chunks(self.in_memory_format(batch)):
            if self.SEQUENCE_KEYS and self.chunk_frames:
                chunk = {**chunk, CARRY: carry}
            outputs = self.generate(chunk, generator)
            if each_chunk is not None:
                each_chunk(chunk, outputs)
            carry = detach_tree(outputs.get(CARRY))
            results.append(outputs)
        return results

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        self._batch_index = batch_idx
        phase = self.active_phase(self.current_epoch, batch_idx)
        if phase is not None and len(self.phases) > 1:
            self.log("train/phase", float(self.phases.index(phase)), on_step=True, on_epoch=False)
        self.run_chunks(batch, self.generator, lambda chunk, outputs: self._train_chunk(chunk, outputs, phase))

    def _train_chunk(self, chunk: Batch, outputs: dict[str, Any], phase: PhaseSpec | None) -> None:
        iteration = self.iterations
        for name in self.execution_order:
            update = self._updates_by_name[name]
            if self.update_is_active(update, phase, iteration):
                self.run_update(update, chunk, outputs, self.update_weights(update, phase))
        self.iterations += 1
        self.update_ema(chunk)

    def run_update(self, update: UpdateSpec, batch: Batch, outputs: dict[str, Any], weights: dict[str, float]) -> None:
        """toggle (freeze the other networks) -> losses -> zero_grad -> backward -> clip -> step -> untoggle."""
        if not weights:  # nothing to optimise in this phase: no step, nothing logged
            return
        optimizer = self.optimizer_of(update)
        inputs = detach_tree(outputs) if update.detach_outputs else outputs
        scale = float(update.every_k_steps)  # lazy regularisation: k times rarer, k times heavier (StyleGAN2)
        self.toggle_optimizer(optimizer)
        values = getattr(self, update.loss)(batch, inputs, frozenset(weights))
        if set(values) != set(weights):
            raise RuntimeError(
                f"{type(self).__name__}.{update.loss} returned {sorted(values)}, expected {sorted(weights)}"
            )
        total = sum(weights[name] * scale * value for name, value in values.items())
        self.check_finite(update, values, total)
        size = batch_size(batch)
        for name, value in values.items():
            self.log(f"train/{update.name}/{name}", value.detach(), on_step=True, on_epoch=True, batch_size=size)
        self.log(
            f"train/{update.name}/total", total.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=size
        )
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, self.gradient_clip_val, self.gradient_clip_algorithm)
        optimizer.step()
        self.untoggle_optimizer(optimizer)

    def check_finite(self, update: UpdateSpec, values: dict[str, torch.Tensor], total: torch.Tensor) -> None:
        """Stop before a NaN / Inf loss reaches the weights: the message names the term and the step, and the last
        checkpoint (written before this step) stays the last good one. One check of the total per update."""
        if bool(torch.isfinite(total.detach()).all()):
            return
        bad = [name for name, value in values.items() if not bool(torch.isfinite(value.detach()).all())]
        named = ", ".join(f"train/{update.name}/{n} = {float(values[n].detach().float().mean())}" for n in bad)
        raise NonFiniteLossError(
            f"non-finite loss {named or f'train/{update.name}/total = {float(total.detach())}'} at iteration "
            f"{self.iterations} (epoch {self.current_epoch}, batch {getattr(self, '_batch_index', '?')}, global step "
            f"{self.global_step}): training stopped before the update, the last checkpoint is the last good one"
        )

    def on_train_epoch_end(self) -> None:
        """Manual optimization: Lightning does not step schedulers, so they advance here, once per epoch."""
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        owners = [u.name for u in self.update_specs if not u.shares_optimizer]
        for scheduler in schedulers:
            index = next(i for i, opt in enumerate(self._plain_optimizers()) if opt is scheduler.optimizer)
            self.log(f"train/lr_{owners[index]}", scheduler.get_last_lr()[0])  # the LR this epoch trained with
            with warnings.catch_warnings():
                # Schedules follow epochs: an update idle this epoch (another phase, zero weights) still advances.
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                scheduler.step()

    def _plain_optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = self.optimizers(use_pl_optimizer=False)
        return optimizers if isinstance(optimizers, list) else [optimizers]

    # ------------------------------------------------------------------ fitted statistics
    def on_fit_start(self) -> None:
        """Fit the system's statistics once: never when a checkpoint (resume or init_from) already holds them."""
        self.expect_frozen_modules_in_eval_mode()
        if not self.FITTED_STATISTICS or bool(self.statistics_fitted):
            return
        datamodule = self.trainer.datamodule
        if datamodule is not None:
            loader = datamodule.train_dataloader()
        else:
            loader = self.trainer.fit_loop._data_source.dataloader()
        values = self.fit_statistics(loader)
        if set(values) != set(self.FITTED_STATISTICS):
            raise RuntimeError(f"fit_statistics returned {sorted(values)}, expected {list(self.FITTED_STATISTICS)}")
        for name, value in values.items():
            buffer = getattr(self, name)
            if buffer.shape != value.shape:
                raise RuntimeError(f"fit_statistics: {name} has shape {tuple(value.shape)}, not {tuple(buffer.shape)}")
            buffer.copy_(value.to(buffer))
        self.statistics_fitted.fill_(True)
        log.info(f"{type(self).__name__}: fitted {', '.join(self.FITTED_STATISTICS)} on the training split")

    def copy_fitted_statistics(self, source: Any) -> None:
        """Take over another instance's fitted statistics (data statistics, not learned weights): what the
        "untrained" comparison row needs, since it must not fit them again on its own."""
        for name in (*self.FITTED_STATISTICS, "statistics_fitted") if self.FITTED_STATISTICS else ():
            getattr(self, name).copy_(getattr(source, name))
