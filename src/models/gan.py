"""The shared GAN LightningModule: every facesynth system (rgbd_face, dfdn, dg, head2head, faces2one) subclasses it.

The base owns everything that is not specific to a system: optimizers and their manual D / G steps, the loss
table (weights from config, zero-weight terms never computed, every term logged by name), gradient clipping,
LR schedulers stepped by epoch, an optional EMA of G, explicit inference-mode semantics of norm layers, per-sample
metric collection on val / test, predict, and a checkpoint that rebuilds the model by itself.

A subclass declares (the whole contract):

    GENERATOR_TERMS: tuple[str, ...]         loss terms generator_losses can compute (names of loss_weights keys)
    DISCRIMINATOR_TERMS: tuple[str, ...]     likewise for discriminator_losses (weights: discriminator_loss_weights)
    CRITERIA_FOR_TERMS: dict[str, tuple]     which `criteria` entries each term uses (unused criteria are not built)
    generate(batch, generator) -> dict       forward pass; `generator` is the training G or the inference G (EMA)
    generator_losses(batch, outputs, terms) -> dict[str, Tensor]        exactly the active `terms`
    discriminator_losses(batch, outputs, terms) -> dict[str, Tensor]    `outputs` arrive detached
    sample_metrics(batch, outputs) -> dict[str, Tensor (B,)]            per-sample metrics on val / test
    sample_grid(batch, outputs) -> np.ndarray (H, W, 3) uint8            for the sample-grid callback

Networks, criteria, optimizers and schedulers arrive as Hydra `_target_` configs (plain mappings; the model
config sets `_recursive_: false`), so `save_hyperparameters` stores them and `src.utils.checkpoint.load_module`
rebuilds the whole module from the checkpoint alone. nn.Module arguments also work (tests, notebooks) but such a
checkpoint cannot rebuild itself.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import hydra
import numpy as np
import torch
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from src.metrics import summarize
from src.models.components.norms import set_norm_inference_mode
from src.models.system import SystemHooks
from src.utils.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_KEY
from src.utils.errors import UserError

log = logging.getLogger(__name__)

UPDATE_ORDERS = ("d_first", "g_first")
Batch = dict[str, Any]


class LinearDecayLR(LRScheduler):
    """pix2pix 'linear' policy: the base LR for `n_epochs`, then linear decay over `n_epochs_decay` epochs.

    Stepped once per epoch. During epoch e (1-based) the factor is 1 - max(0, e - n_epochs) / (n_epochs_decay + 1),
    exactly the original's lambda with epoch_count = 1: it never reaches 0 (last epoch: 1 / (n_epochs_decay + 1)).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, n_epochs: int, n_epochs_decay: int, last_epoch: int = -1):
        if n_epochs < 0 or n_epochs_decay < 0:
            raise ValueError(f"LinearDecayLR: epochs must be >= 0, got {n_epochs} + {n_epochs_decay}")
        self.n_epochs = n_epochs
        self.n_epochs_decay = n_epochs_decay
        super().__init__(optimizer, last_epoch)

    def factor(self, completed_epochs: int) -> float:
        return 1.0 - max(0, completed_epochs + 1 - self.n_epochs) / float(self.n_epochs_decay + 1)

    def get_lr(self) -> list[float]:
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain dict / list (checkpoints load with weights_only=True)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _build(spec: Any, what: str) -> Any:
    """An object from a `_target_` mapping, or the object itself when one was passed."""
    if spec is None or isinstance(spec, nn.Module) or callable(spec):
        return spec
    if isinstance(spec, Mapping) and "_target_" in spec:
        return hydra.utils.instantiate(spec)
    raise UserError(f"{what}: expected a config with _target_ (or an object), got {type(spec).__name__}")


class GANModule(SystemHooks, LightningModule):
    """Manual-optimization GAN base; see the module docstring for the subclass contract."""

    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = ()
    DISCRIMINATOR_TERMS: ClassVar[tuple[str, ...]] = ("real", "fake")
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(
        self,
        generator: Mapping | nn.Module,
        discriminator: Mapping | nn.Module | None,
        criteria: Mapping[str, Mapping | nn.Module],
        loss_weights: Mapping[str, float],
        optimizer_g: Mapping | Callable,
        optimizer_d: Mapping | Callable | None = None,
        scheduler: Mapping | Callable | None = None,
        discriminator_loss_weights: Mapping[str, float] | None = None,
        update_order: str = "d_first",
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        ema_decay: float | None = None,
        inference_norm: str = "running",
        inference_dropout: bool = False,
        num_kept_samples: int = 4,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        module_args = [
            k for k, v in (("generator", generator), ("discriminator", discriminator)) if isinstance(v, nn.Module)
        ]
        if any(isinstance(v, nn.Module) for v in criteria.values()):
            module_args.append("criteria")
        self.save_hyperparameters(ignore=module_args)
        # Stored hyper-parameters become plain containers so the checkpoint loads with weights_only=True.
        self.save_hyperparameters({k: _plain(v) for k, v in self.hparams.items()})
        if module_args:
            log.warning(f"{', '.join(module_args)} passed as modules: a checkpoint of this model cannot rebuild itself")

        if update_order not in UPDATE_ORDERS:
            raise UserError(f"model.update_order must be one of {UPDATE_ORDERS}, got {update_order!r}")
        self.loss_weights = {str(k): float(v) for k, v in _plain(loss_weights).items()}
        d_weights = {"real": 0.5, "fake": 0.5} if discriminator_loss_weights is None else discriminator_loss_weights
        self.discriminator_loss_weights = {str(k): float(v) for k, v in _plain(d_weights).items()}
        self._check_terms(self.loss_weights, self.GENERATOR_TERMS, "model.loss_weights")
        self._check_terms(self.discriminator_loss_weights, self.DISCRIMINATOR_TERMS, "model.discriminator_loss_weights")
        self.generator_terms = frozenset(k for k, w in self.loss_weights.items() if w != 0.0)
        self.discriminator_terms = frozenset(k for k, w in self.discriminator_loss_weights.items() if w != 0.0)

        self.generator = _build(generator, "model.generator")
        self.discriminator = _build(discriminator, "model.discriminator")
        if self.discriminator is None:
            self.discriminator_terms = frozenset()
        needed = {
            c for term in self.generator_terms | self.discriminator_terms for c in self.CRITERIA_FOR_TERMS.get(term, ())
        }
        missing = sorted(needed - set(criteria))
        if missing:
            raise UserError(f"model.criteria: the active loss terms need {missing}, which are not configured")
        # Only criteria an active term uses are built: a zero-weight LPIPS never loads its backbone.
        self.criteria = nn.ModuleDict(
            {name: _build(criteria[name], f"model.criteria.{name}") for name in sorted(needed)}
        )
        for criterion in self.criteria.values():
            criterion.requires_grad_(False)  # frozen backbones (VGG, LPIPS) are not trained

        self._optimizer_specs = (optimizer_g, optimizer_d, scheduler)
        self.update_order = update_order
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.inference_norm = inference_norm
        self.inference_dropout = inference_dropout
        self.num_kept_samples = num_kept_samples
        self.generator_ema: AveragedModel | None = None
        self._generator_override: nn.Module | None = None
        if ema_decay is not None:
            if not 0.0 < ema_decay < 1.0:
                raise UserError(f"model.ema_decay must be in (0, 1), got {ema_decay}")
            self.generator_ema = AveragedModel(
                self.generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True
            )
            self.generator_ema.requires_grad_(False)
        for net in (self.generator, self.inference_generator):
            set_norm_inference_mode(net, inference_norm, inference_dropout)
        self.eval_results: dict[str, dict[str, Any]] = {}
        self._eval_store: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _check_terms(weights: Mapping[str, float], supported: tuple[str, ...], key: str) -> None:
        unknown = sorted(set(weights) - set(supported))
        if unknown:
            raise UserError(f"{key}: unknown loss term(s) {unknown}; this model supports {list(supported)}")

    # ------------------------------------------------------------------ subclass hooks
    def generate(self, batch: Batch, generator: nn.Module) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def generator_losses(
        self, batch: Batch, outputs: dict[str, torch.Tensor], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def discriminator_losses(
        self, batch: Batch, outputs: dict[str, torch.Tensor], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample_metrics(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def sample_grid(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ generators
    @property
    def inference_generator(self) -> nn.Module:
        """The G used for val / test / predict / export: the EMA copy when enabled, else G itself."""
        if self._generator_override is not None:
            return self._generator_override
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    @contextlib.contextmanager
    def generator_replaced(self, generator: nn.Module) -> Iterator[None]:
        """Evaluate another generator (an untrained G, a baseline) through this module's val / test code."""
        # Same eval-mode semantics as our own G, so the comparison is fair.
        set_norm_inference_mode(generator, self.inference_norm, self.inference_dropout)
        # object.__setattr__: a temporary reference, not a registered submodule (it must not enter state_dict)
        object.__setattr__(self, "_generator_override", generator.to(self.device))
        try:
            yield
        finally:
            object.__setattr__(self, "_generator_override", None)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.inference_generator(*inputs)

    # ------------------------------------------------------------------ optimization
    def configure_optimizers(self) -> Any:
        optimizer_g, optimizer_d, scheduler = (_build(spec, "model.optimizer") for spec in self._optimizer_specs)
        optimizers = [optimizer_g(params=self.generator.parameters())]
        if self.discriminator is not None:
            if optimizer_d is None:
                raise UserError("model.optimizer_d is required when the model has a discriminator")
            optimizers.append(optimizer_d(params=self.discriminator.parameters()))
        if scheduler is None:
            return optimizers
        schedulers = [{"scheduler": scheduler(optimizer=opt), "interval": "epoch"} for opt in optimizers]
        return optimizers, schedulers

    def _weighted_total(self, values: dict[str, torch.Tensor], weights: dict[str, float], prefix: str, batch_size: int):
        expected = {k for k, w in weights.items() if w != 0.0}
        if set(values) != expected:
            raise RuntimeError(
                f"{type(self).__name__}: {prefix} losses returned {sorted(values)}, expected {sorted(expected)}"
            )
        total = sum(weights[name] * value for name, value in values.items())
        for name, value in values.items():
            self.log(f"train/{prefix}/{name}", value.detach(), on_step=True, on_epoch=True, batch_size=batch_size)
        self.log(
            f"train/{prefix}/total", total.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=batch_size
        )
        return total

    def _update(
        self,
        optimizer: Any,
        compute: Callable[[], dict[str, torch.Tensor]],
        weights: dict[str, float],
        prefix: str,
        size: int,
    ) -> None:
        """toggle (freeze the other network) -> losses -> zero_grad -> backward -> clip -> step -> untoggle."""
        self.toggle_optimizer(optimizer)
        total = self._weighted_total(compute(), weights, prefix, size)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, self.gradient_clip_val, self.gradient_clip_algorithm)
        optimizer.step()
        self.untoggle_optimizer(optimizer)

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        size = _batch_size(batch)
        outputs = self.generate(batch, self.generator)
        has_d = self.discriminator is not None and bool(self.discriminator_terms)
        for which in ("d", "g") if self.update_order == "d_first" else ("g", "d"):
            if which == "g":
                compute = functools.partial(self.generator_losses, batch, outputs, self.generator_terms)
                self._update(optimizers[0], compute, self.loss_weights, "G", size)
            elif has_d:
                detached = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in outputs.items()}
                compute = functools.partial(self.discriminator_losses, batch, detached, self.discriminator_terms)
                self._update(optimizers[1], compute, self.discriminator_loss_weights, "D", size)
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)

    def on_train_epoch_end(self) -> None:
        """Manual optimization: Lightning does not step schedulers, so they advance here, once per epoch."""
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        self.log("train/lr_G", schedulers[0].get_last_lr()[0])  # the LR this epoch trained with
        for scheduler in schedulers:
            scheduler.step()

    # ------------------------------------------------------------------ evaluation
    def _evaluate_batch(self, batch: Batch, stage: str) -> dict[str, torch.Tensor]:
        generator = self.inference_generator
        generator.eval()
        synchronize = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        synchronize()
        start = time.perf_counter()
        outputs = self.generate(batch, generator)
        synchronize()
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        size = _batch_size(batch)
        metrics = {k: v.detach().float().cpu() for k, v in self.sample_metrics(batch, outputs).items()}
        metrics["forward_ms"] = torch.full((size,), elapsed_ms / size)
        store = self._eval_store.setdefault(stage, {"metrics": {}, "frame_ids": [], "samples": []})
        for name, values in metrics.items():
            store["metrics"].setdefault(name, []).append(values.reshape(size))
        store["frame_ids"] += list(
            batch.get("frame_id", [f"{stage}_{len(store['frame_ids']) + i}" for i in range(size)])
        )
        room = self.num_kept_samples - len(store["samples"])
        if room > 0:
            store["samples"].append(
                (
                    {k: v[:room].cpu() if isinstance(v, torch.Tensor) else v[:room] for k, v in batch.items()},
                    {k: v[:room].detach().cpu() for k, v in outputs.items()},
                )
            )
            store["samples"] = store["samples"][: self.num_kept_samples]
        return outputs

    def _finish_evaluation(self, stage: str) -> None:
        store = self._eval_store.pop(stage, None)
        if not store:
            return
        per_sample = {name: torch.cat(chunks).numpy() for name, chunks in store["metrics"].items()}
        summary = {name: summarize(values) for name, values in per_sample.items()}
        for name, stats in summary.items():
            self.log(f"{stage}/{name}", stats["mean"], prog_bar=name in ("psnr",), sync_dist=True)
        self.eval_results[stage] = {
            "frame_ids": store["frame_ids"],
            "per_sample": per_sample,
            "summary": summary,
            "samples": store["samples"],
        }

    def on_validation_epoch_start(self) -> None:
        self._eval_store.pop("val", None)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate_batch(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._eval_store.pop("test", None)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate_batch(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test")

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        generator = self.inference_generator
        generator.eval()
        outputs = self.generate(batch, generator)
        return {"frame_id": batch.get("frame_id"), **outputs}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.setdefault(CHECKPOINT_KEY, {})
        meta["module"] = f"{type(self).__module__}.{type(self).__qualname__}"
        meta["format"] = CHECKPOINT_FORMAT


def _batch_size(batch: Batch) -> int:
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise ValueError("batch holds no tensor")
