"""GANModule: the shared LightningModule every facesynth system subclasses (see docs/adding_a_system.md).

The base owns everything that is not specific to a system: networks from config, the ordered updates of a
training step (optimizer, scheduler, loss hook and weight table each; lazy every-k updates), named
discriminator tables, phases by epoch / batch, sequences in chunks with carried state, EMA of any network,
fitted statistics kept in the checkpoint, explicit inference-mode norm semantics, per-sample evaluation with
evenly spread kept samples, predict, and a checkpoint that rebuilds the model by itself.

A subclass declares (the whole contract; everything but generate and the loss hooks it uses is optional):

    GENERATOR_TERMS / DISCRIMINATOR_TERMS    terms generator_losses / discriminator_losses can compute
    ADVERSARIAL_TERMS                        G terms that need a D (rejected at construction when there is none)
    LOSS_TERMS: {hook: terms}                terms of further loss hooks named by `model.updates[*].loss`
    CRITERIA_FOR_TERMS: {term: criteria}     which `criteria` entries a term uses (unused criteria are not built)
    SEQUENCE_KEYS                            batch keys with time at dim 1: the batch runs in chunks
    FITTED_STATISTICS + fit_statistics()     buffers fitted once on the training split, kept in the checkpoint
    PROGRESS_BAR_METRIC                      the val metric shown on the progress bar
    generate(batch, generator) -> dict       forward pass (a chunk gets batch["carry"]; return "carry" to pass on)
    <hook>(batch, outputs, terms) -> dict    exactly the active `terms` (D updates get detached outputs)
    discriminator_inputs(batch, outputs, name)   (real, fake) of a named D table; None: it scores 0 in this chunk
    continues_stream(previous, batch)        an evaluation window continuing the last one starts from its carry
    add_frozen_module(name, module)          (call in __init__) a helper network that never trains or is saved
    sample_metrics / sample_grid / export_model / baselines / export_modules / report_samples (src/models/system.py)

Networks, criteria, optimizers and schedulers arrive as Hydra `_target_` configs (plain mappings; the model
config sets `_recursive_: false`), so `save_hyperparameters` stores them and `src.utils.checkpoint.load_module`
rebuilds the whole module from the checkpoint alone. nn.Module arguments also work (tests, notebooks) but such a
checkpoint cannot rebuild itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from torch import nn

from src.models.base.evaluation import EvaluationMixin
from src.models.base.networks import NetworksMixin
from src.models.base.resume import ResumeMixin
from src.models.base.specs import (
    UPDATE_ORDERS,
    UpdateSpec,
    build,
    check_plan,
    parse_phase,
    parse_tables,
    parse_update,
    plain,
    weight_table,
)
from src.models.base.tables import TablesMixin
from src.models.base.training import TrainingMixin
from src.models.system import SystemHooks
from src.utils.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_KEY
from src.utils.errors import UserError

log = logging.getLogger(__name__)


class GANModule(SystemHooks, NetworksMixin, TablesMixin, TrainingMixin, EvaluationMixin, ResumeMixin, LightningModule):
    """Manual-optimization GAN base; see the module docstring for the subclass contract."""

    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = ()
    DISCRIMINATOR_TERMS: ClassVar[tuple[str, ...]] = ("real", "fake")
    ADVERSARIAL_TERMS: ClassVar[tuple[str, ...]] = ("gan", "fm")
    LOSS_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {}
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {}
    SEQUENCE_KEYS: ClassVar[tuple[str, ...]] = ()
    FITTED_STATISTICS: ClassVar[tuple[str, ...]] = ()
    PROGRESS_BAR_METRIC: ClassVar[str | None] = None

    def __init__(
        self,
        generator: Mapping | nn.Module,
        discriminator: Mapping | nn.Module | None = None,
        criteria: Mapping[str, Mapping | nn.Module] | None = None,
        loss_weights: Mapping[str, float] | None = None,
        optimizer_g: Mapping | Callable | None = None,
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
        networks: Mapping[str, Mapping | nn.Module] | None = None,
        discriminators: Mapping[str, Mapping] | None = None,
        updates: Sequence[Mapping] | None = None,
        phases: Sequence[Mapping] | None = None,
        ema: Mapping[str, float] | None = None,
        chunk_frames: int | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        criteria = criteria or {}
        module_args = [
            k for k, v in (("generator", generator), ("discriminator", discriminator)) if isinstance(v, nn.Module)
        ]
        for name, table in (("criteria", criteria), ("networks", networks or {})):
            if any(isinstance(v, nn.Module) for v in table.values()):
                module_args.append(name)
        self.save_hyperparameters(ignore=module_args)
        # Stored hyper-parameters become plain containers so the checkpoint loads with weights_only=True.
        self.save_hyperparameters({k: plain(v) for k, v in self.hparams.items()})
        if module_args:
            log.warning(f"{', '.join(module_args)} passed as modules: a checkpoint of this model cannot rebuild itself")
        if update_order not in UPDATE_ORDERS:
            raise UserError(f"model.update_order must be one of {UPDATE_ORDERS}, got {update_order!r}")
        if ema_decay is not None and ema:
            raise UserError("model.ema_decay and model.ema: give one (ema_decay is ema: {generator: <decay>})")
        self.inference_norm = inference_norm
        self.inference_dropout = inference_dropout
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.num_kept_samples = num_kept_samples
        # The whole plan is checked from config before any network is built (a mistake costs no work).
        tables = parse_tables(discriminators)
        if discriminator is not None and tables:
            raise UserError("model.discriminator and model.discriminators: give one single D or named D tables")
        self.discriminator_tables = {t.name: t for t in tables}
        self.has_discriminator = discriminator is not None or bool(tables)
        self.loss_weights = weight_table(loss_weights, "model.loss_weights")
        d_weights = {"real": 0.5, "fake": 0.5} if discriminator_loss_weights is None else discriminator_loss_weights
        self.discriminator_loss_weights = weight_table(d_weights, "model.discriminator_loss_weights")
        self.optimizer_config_keys: dict[str, str] = {}  # update name -> the config key its optimizer came from
        if updates is None:
            specs = self._default_updates(optimizer_g, optimizer_d)
            self.optimizer_config_keys = {"G": "model.optimizer_g", "D": "model.optimizer_d"}
            self.execution_order = [u.name for u in specs]
            if update_order == "d_first":
                self.execution_order.reverse()
        else:
            if optimizer_g is not None or optimizer_d is not None:
                raise UserError("model.updates replaces model.optimizer_g / optimizer_d: give one or the other")
            specs = [self._with_default_weights(parse_update(e, i)) for i, e in enumerate(plain(updates))]
            self.execution_order = [u.name for u in specs]
        self.phases = [parse_phase(e, i) for i, e in enumerate(plain(phases) or [])]
        check_plan(specs, self.phases)
        self.update_specs = specs
        self._updates_by_name = {u.name: u for u in specs}
        self._optimizer_index = {u.name: i for i, u in enumerate(u for u in specs if not u.shares_optimizer)}
        self._default_scheduler = scheduler
        needed = self._check_terms(criteria, legacy=updates is None)
        if chunk_frames is not None and (not self.SEQUENCE_KEYS or int(chunk_frames) < 1):
            raise UserError(f"model.chunk_frames: needs a sequence system and a value >= 1, got {chunk_frames}")
        self.chunk_frames = None if chunk_frames is None else int(chunk_frames)

        ema_table = {"generator": ema_decay} if ema_decay is not None else plain(ema) or {}
        self._build_networks(generator, discriminator, tables, networks, ema_table)
        self._check_parameters()
        # Only criteria an active term uses are built: a zero-weight LPIPS never loads its backbone.
        built = {name: build(criteria[name], f"model.criteria.{name}") for name in sorted(needed)}
        self.criteria = nn.ModuleDict(built).requires_grad_(False)  # frozen backbones (VGG, LPIPS) are not trained
        if self.FITTED_STATISTICS:
            self.register_buffer("statistics_fitted", torch.tensor(False))
        self.iterations = 0
        self.eval_results: dict[str, dict[str, Any]] = {}
        self._eval_store: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ the update plan
    def _default_updates(self, optimizer_g: Any, optimizer_d: Any) -> list[UpdateSpec]:
        """Today's G / D pair from optimizer_g / optimizer_d / loss_weights / discriminator_loss_weights."""
        if optimizer_g is None:
            raise UserError("model.optimizer_g is required (or model.updates)")
        specs = [self._with_default_weights(UpdateSpec("G", ("generator",), optimizer_g, "generator_losses", {}))]
        if self.has_discriminator:
            if optimizer_d is None:
                raise UserError("model.optimizer_d is required when the model has a discriminator")
            params = ("discriminators",) if self.discriminator_tables else ("discriminator",)
            spec = UpdateSpec("D", params, optimizer_d, "discriminator_losses", {}, detach_outputs=True)
            specs.append(self._with_default_weights(spec))
        return specs

    def _with_default_weights(self, spec: UpdateSpec) -> UpdateSpec:
        """An update of generator_losses / discriminator_losses without its own table takes the model's tables."""
        if spec.loss_weights or spec.loss not in ("generator_losses", "discriminator_losses"):
            return spec
        if spec.loss == "generator_losses":
            weights = {**self.loss_weights, **self.table_weights("generator_loss_weights")}
        else:
            weights = (
                self.table_weights("loss_weights") if self.discriminator_tables else self.discriminator_loss_weights
            )
        return UpdateSpec(**{**spec.__dict__, "loss_weights": weights})

    def _weight_key(self, update: UpdateSpec, legacy: bool) -> str:
        if legacy:
            return "model.loss_weights" if update.name == "G" else "model.discriminator_loss_weights"
        return f"model.updates ({update.name}).loss_weights"

    def _check_parameters(self) -> None:
        owner: dict[int, str] = {}
        for update in self.update_specs:
            for name in update.parameters:
                for param in self.network(name).parameters():
                    if owner.setdefault(id(param), update.name) != update.name:
                        raise UserError(
                            f"model.updates: {name} is trained by both {owner[id(param)]} and {update.name}"
                        )

    def _check_terms(self, criteria: Mapping[str, Any], legacy: bool) -> set[str]:
        """Check every weight table (updates and phase overrides); returns the criteria the active terms use."""
        active: set[str] = set()
        for update in self.update_specs:
            supported = self.supported_terms(update.loss)
            tables = [update.loss_weights, *(p.loss_weights.get(update.name, {}) for p in self.phases)]
            key = self._weight_key(update, legacy)
            mine = set()
            for table in tables:
                unknown = sorted(set(table) - set(supported))
                if unknown:
                    raise UserError(f"{key}: unknown loss term(s) {unknown}; this model supports {list(supported)}")
                mine |= {t for t, w in table.items() if w != 0.0}
            active |= mine
            if not self.has_discriminator and update.loss == "generator_losses":
                needy = sorted(t for t in mine if t in self.ADVERSARIAL_TERMS)
                if needy:
                    raise UserError(
                        f"{key}: the term(s) {needy} need a discriminator, but the model has none "
                        "(configure model.discriminator, or set their weights to 0)"
                    )
        needed = {c for term in active for c in self.CRITERIA_FOR_TERMS.get(term.rsplit("/", 1)[-1], ())}
        missing = sorted(needed - set(criteria))
        if missing:
            raise UserError(f"model.criteria: the active loss terms need {missing}, which are not configured")
        return needed

    def supported_terms(self, hook: str) -> tuple[str, ...]:
        """The terms loss hook `hook` can compute (D-table terms are `<discriminator>/<term>`)."""
        if hook == "generator_losses":
            return (*self.GENERATOR_TERMS, *self.table_terms(self.ADVERSARIAL_TERMS))
        if hook == "discriminator_losses":
            return self.table_terms(self.DISCRIMINATOR_TERMS) if self.discriminator_tables else self.DISCRIMINATOR_TERMS
        if hook in self.LOSS_TERMS and callable(getattr(self, hook, None)):
            return self.LOSS_TERMS[hook]
        hooks = ["generator_losses", "discriminator_losses", *self.LOSS_TERMS]
        raise UserError(f"model.updates: {hook!r} is not a loss hook of {type(self).__name__} (it has {hooks})")

    # ------------------------------------------------------------------ subclass hooks
    def generate(self, batch: dict[str, Any], generator: nn.Module) -> dict[str, Any]:
        raise NotImplementedError

    def generator_losses(self, batch: dict[str, Any], outputs: dict[str, Any], terms: frozenset[str]) -> dict:
        raise NotImplementedError

    def sample_metrics(self, batch: dict[str, Any], outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {}

    def sample_grid(self, batch: dict[str, Any], outputs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def fit_statistics(self, train_batches: Any) -> dict[str, torch.Tensor]:
        """Values of FITTED_STATISTICS from the training split (called once, at the first fit)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.setdefault(CHECKPOINT_KEY, {})
        meta["module"] = f"{type(self).__module__}.{type(self).__qualname__}"
        meta["format"] = CHECKPOINT_FORMAT
        meta["iterations"] = self.iterations
        self.save_random_state(meta)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get(CHECKPOINT_KEY, {})
        self.iterations = int(meta.get("iterations", 0))
        self.load_random_state(meta)
