"""The declarative parts of a training step, parsed from config and checked before any work starts.

An UPDATE is one optimizer step of a training step: which networks it trains, with which optimizer (own, or
shared with an earlier update, as StyleGAN2's lazy R1 shares D's), which loss hook computes its terms, and the
weight table of those terms. A PHASE selects, per epoch range (and optionally per batch-index cycle), which
updates run and overrides their weights. A DISCRIMINATOR TABLE is a named D with its own D-side weights and the
weights of the G-side terms computed against it. Every mistake here is a UserError naming the config key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from src.utils.errors import UserError

UPDATE_ORDERS = ("d_first", "g_first")
UPDATE_KEYS = {
    "name",
    "parameters",
    "optimizer",
    "scheduler",
    "loss",
    "loss_weights",
    "every_k_steps",
    "detach_outputs",
    "phases",
}
PHASE_KEYS = {"name", "epochs", "batch_cycle", "updates", "loss_weights"}
TABLE_KEYS = {"network", "loss_weights", "generator_loss_weights"}


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain dict / list (checkpoints load with weights_only=True)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def build(spec: Any, what: str) -> Any:
    """An object from a `_target_` mapping, or the object itself when one was passed."""
    if spec is None or isinstance(spec, nn.Module) or callable(spec):
        return spec
    if isinstance(spec, Mapping) and "_target_" in spec:
        try:
            return hydra.utils.instantiate(spec)
        except InstantiationException as err:  # a constructor rejecting its arguments: name the config key
            if isinstance(err.__cause__, ValueError | TypeError):
                raise UserError(f"{what}: {str(err.__cause__).strip().splitlines()[0]}") from err
            raise
    raise UserError(f"{what}: expected a config with _target_ (or an object), got {type(spec).__name__}")


def weight_table(weights: Mapping[str, Any] | None, key: str) -> dict[str, float]:
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise UserError(f"{key}: expected a mapping of loss term -> weight, got {type(weights).__name__}")
    try:
        return {str(k): float(v) for k, v in plain(weights).items()}
    except (TypeError, ValueError):
        raise UserError(f"{key}: every weight must be a number, got {dict(weights)}") from None


def _unknown_keys(entry: Mapping[str, Any], allowed: set[str], key: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise UserError(f"{key}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class UpdateSpec:
    """One optimizer step; `optimizer` is a config / callable, or the name of an earlier update to share."""

    name: str
    parameters: tuple[str, ...]
    optimizer: Any
    loss: str
    loss_weights: dict[str, float]
    scheduler: Any = None
    inherit_scheduler: bool = True
    every_k_steps: int = 1
    detach_outputs: bool = False
    phases: tuple[str, ...] | None = None

    @property
    def shares_optimizer(self) -> bool:
        return isinstance(self.optimizer, str)


@dataclass(frozen=True)
class PhaseSpec:
    """Active during epochs [first, end) (end None = forever) and, with batch_cycle (n, r), when batch % n == r."""

    name: str
    first_epoch: int
    end_epoch: int | None
    batch_cycle: tuple[int, int] | None = None
    updates: tuple[str, ...] | None = None
    loss_weights: dict[str, dict[str, float]] = field(default_factory=dict)

    def covers(self, epoch: int, batch_idx: int) -> bool:
        if epoch < self.first_epoch or (self.end_epoch is not None and epoch >= self.end_epoch):
            return False
        return self.batch_cycle is None or batch_idx % self.batch_cycle[0] == self.batch_cycle[1]


@dataclass(frozen=True)
class DiscriminatorTable:
    """A named discriminator: its network config and the weights of its D-side and G-side terms."""

    name: str
    network: Any
    loss_weights: dict[str, float]
    generator_loss_weights: dict[str, float]


def parse_update(entry: Mapping[str, Any], index: int) -> UpdateSpec:
    key = f"model.updates[{index}]"
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise UserError(f"{key}: expected a mapping with at least `name`, got {entry!r}")
    _unknown_keys(entry, UPDATE_KEYS, key)
    name = str(entry["name"])
    optimizer = plain(entry.get("optimizer"))
    if optimizer is None:
        raise UserError(f"{key} ({name}): `optimizer` is required (a config, or the name of an earlier update)")
    parameters = tuple(str(p) for p in plain(entry.get("parameters") or ()))
    if isinstance(optimizer, str) and parameters:
        raise UserError(f"{key} ({name}): an update sharing optimizer {optimizer!r} trains its parameters; drop it")
    if not isinstance(optimizer, str) and not parameters:
        raise UserError(f"{key} ({name}): `parameters` (network names) is required with its own optimizer")
    every = int(entry.get("every_k_steps", 1))
    if every < 1:
        raise UserError(f"{key} ({name}): every_k_steps must be >= 1, got {every}")
    phases = entry.get("phases")
    return UpdateSpec(
        name=name,
        parameters=parameters,
        optimizer=optimizer,
        loss=str(entry.get("loss", "generator_losses")),
        loss_weights=weight_table(entry.get("loss_weights"), f"{key}.loss_weights"),
        scheduler=plain(entry.get("scheduler")),
        inherit_scheduler="scheduler" not in entry,
        every_k_steps=every,
        detach_outputs=bool(entry.get("detach_outputs", False)),
        phases=None if phases is None else tuple(str(p) for p in plain(phases)),
    )


def parse_phase(entry: Mapping[str, Any], index: int) -> PhaseSpec:
    key = f"model.phases[{index}]"
    if not isinstance(entry, Mapping) or "name" not in entry or "epochs" not in entry:
        raise UserError(f"{key}: expected a mapping with `name` and `epochs: [first, end]`, got {entry!r}")
    _unknown_keys(entry, PHASE_KEYS, key)
    epochs = plain(entry["epochs"])
    if not isinstance(epochs, Sequence) or len(epochs) != 2 or epochs[0] is None:
        raise UserError(f"{key}.epochs: expected [first, end] (end null = until training stops), got {epochs!r}")
    first, end = int(epochs[0]), None if epochs[1] is None else int(epochs[1])
    if first < 0 or (end is not None and end <= first):
        raise UserError(f"{key}.epochs: need 0 <= first < end, got {epochs}")
    cycle = plain(entry.get("batch_cycle"))
    if cycle is not None:
        if not isinstance(cycle, Sequence) or len(cycle) != 2 or not 0 <= int(cycle[1]) < int(cycle[0]):
            raise UserError(f"{key}.batch_cycle: expected [period, remainder] with 0 <= remainder < period")
        cycle = (int(cycle[0]), int(cycle[1]))
    overrides = plain(entry.get("loss_weights") or {})
    updates = entry.get("updates")
    return PhaseSpec(
        name=str(entry["name"]),
        first_epoch=first,
        end_epoch=end,
        batch_cycle=cycle,
        updates=None if updates is None else tuple(str(u) for u in plain(updates)),
        loss_weights={str(u): weight_table(w, f"{key}.loss_weights.{u}") for u, w in overrides.items()},
    )


def parse_tables(tables: Mapping[str, Any] | None) -> list[DiscriminatorTable]:
    parsed = []
    for name, entry in (plain(tables) or {}).items():
        key = f"model.discriminators.{name}"
        if not isinstance(entry, Mapping) or "network" not in entry:
            raise UserError(f"{key}: expected a mapping with `network` (and loss_weights, generator_loss_weights)")
        _unknown_keys(entry, TABLE_KEYS, key)
        if not str(name).isidentifier():
            raise UserError(f"{key}: a discriminator name must be an identifier (letters, digits, _)")
        parsed.append(
            DiscriminatorTable(
                name=str(name),
                network=entry["network"],
                loss_weights=weight_table(entry.get("loss_weights", {"real": 0.5, "fake": 0.5}), f"{key}.loss_weights"),
                generator_loss_weights=weight_table(
                    entry.get("generator_loss_weights"), f"{key}.generator_loss_weights"
                ),
            )
        )
    return parsed


def check_plan(updates: Sequence[UpdateSpec], phases: Sequence[PhaseSpec]) -> None:
    """Names are unique, shared optimizers point backwards, phases and updates name each other correctly."""
    names = [u.name for u in updates]
    if len(set(names)) != len(names):
        raise UserError(f"model.updates: update names must be unique, got {names}")
    phase_names = [p.name for p in phases]
    if len(set(phase_names)) != len(phase_names):
        raise UserError(f"model.phases: phase names must be unique, got {phase_names}")
    owners = set()
    for update in updates:
        if update.shares_optimizer and update.optimizer not in owners:
            raise UserError(
                f"model.updates ({update.name}): optimizer {update.optimizer!r} must name an earlier update that "
                f"has its own optimizer (have {sorted(owners)})"
            )
        if not update.shares_optimizer:
            owners.add(update.name)
        unknown = sorted(set(update.phases or ()) - set(phase_names))
        if unknown:
            raise UserError(f"model.updates ({update.name}).phases: unknown phase(s) {unknown}; have {phase_names}")
    for phase in phases:
        unknown = sorted((set(phase.updates or ()) | set(phase.loss_weights)) - set(names))
        if unknown:
            raise UserError(f"model.phases ({phase.name}): unknown update(s) {unknown}; have {names}")
