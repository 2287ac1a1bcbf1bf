"""The networks of a system: G, an optional single D (the original key layout), named D tables, extra networks,
and exponential moving averages of any of them.

State-dict names are part of the checkpoint format: `generator.*`, `discriminator.*` and `generator_ema.*` are
those of every checkpoint written before the base learned several networks, so old checkpoints load unchanged;
named Ds live under `discriminators.<name>.*`, extra networks under their own name, EMA copies under
`<network>_ema.*`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from src.models.base.specs import DiscriminatorTable, build, plain
from src.models.components.norms import set_norm_inference_mode
from src.utils.errors import UserError


def _channels_last_tree(value: Any) -> Any:
    """Every 4-D tensor of a batch in channels-last layout (same values, other strides)."""
    if isinstance(value, torch.Tensor):
        return value.contiguous(memory_format=torch.channels_last) if value.dim() == 4 else value
    if isinstance(value, dict):
        return {k: _channels_last_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_channels_last_tree(v) for v in value)
    return value


def _has_running_statistics(network: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in network.modules())


def _frozen_prefixes(module: Any, prefix: str) -> tuple[str, ...]:
    """State-dict key prefixes of the frozen helpers kept out of checkpoints."""
    return tuple(f"{prefix}{name}." for name in module.__dict__.get("_unsaved_frozen_names", ()))


def _drop_frozen_state(module: Any, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict post-hook: frozen helper networks are rebuilt from their own config, never checkpointed."""
    prefixes = _frozen_prefixes(module, prefix)
    for key in [k for k in state_dict if k.startswith(prefixes)]:
        del state_dict[key]
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for key in [k for k in metadata if f"{k}.".startswith(prefixes)]:
            del metadata[key]


def _forgive_missing_frozen_state(module: Any, incompatible_keys: Any) -> None:
    """Load post-hook: a state dict without the frozen helpers' weights (every checkpoint) loads strictly."""
    prefixes = _frozen_prefixes(module, "")
    missing = incompatible_keys.missing_keys
    missing[:] = [key for key in missing if not key.startswith(prefixes)]


class NetworksMixin:
    """Builds and owns the networks; `inference_network(name)` is what val / test / predict / export use."""

    def _build_networks(
        self,
        generator: Any,
        discriminator: Any,
        tables: list[DiscriminatorTable],
        networks: Mapping[str, Any] | None,
        ema: Mapping[str, float],
    ) -> None:
        self.generator = build(generator, "model.generator")
        if not isinstance(self.generator, nn.Module):
            raise UserError("model.generator: a generator network is required")
        self.discriminator = build(discriminator, "model.discriminator")
        self.discriminators = nn.ModuleDict(
            {t.name: build(t.network, f"model.discriminators.{t.name}.network") for t in tables}
        )
        for name, spec in (plain(networks) or {}).items():
            if not str(name).isidentifier() or hasattr(self, name):
                raise UserError(f"model.networks.{name}: not a usable network name (taken, or not an identifier)")
            setattr(self, name, build(spec, f"model.networks.{name}"))
        self.generator_ema: AveragedModel | None = None
        self.ema_decays = {str(k): float(v) for k, v in ema.items()}
        for name, decay in self.ema_decays.items():
            key = "model.ema_decay" if name == "generator" and len(ema) == 1 else f"model.ema.{name}"
            if not 0.0 < decay < 1.0:
                raise UserError(f"{key} must be in (0, 1), got {decay}")
            network = getattr(self, name, None) if str(name).isidentifier() else None
            if not isinstance(network, nn.Module):
                raise UserError(f"{key}: {name!r} is not a network of this model")
            # The container keeps the checkpoint keys (<name>_ema.module.*, <name>_ema.n_averaged); the update is
            # ours (update_ema): AveragedModel would average the BatchNorm statistics too (see update_ema).
            average = AveragedModel(network, use_buffers=True)
            setattr(self, f"{name}_ema", average.requires_grad_(False))
        object.__setattr__(self, "_generator_override", None)
        for net in self.all_networks():
            set_norm_inference_mode(net, self.inference_norm, self.inference_dropout)

    def all_networks(self) -> list[nn.Module]:
        """Every trainable network and EMA copy (criteria, metric backbones and frozen helpers excluded)."""
        excluded = {"criteria", "lpips_metric", *self.frozen_module_names}
        return [m for name, m in self.named_children() if name not in excluded]

    def network(self, name: str) -> nn.Module:
        """A network by the name updates use: `generator`, `discriminator`, `discriminators`, `discriminators.x`."""
        try:
            module = self.get_submodule(name)
        except AttributeError:
            module = None
        not_trained = name.endswith("_ema") or name == "criteria" or name.split(".")[0] in self.frozen_module_names
        if not isinstance(module, nn.Module) or not_trained:
            raise UserError(f"model.updates: {name!r} is not a network of {type(self).__name__}")
        return module

    # ------------------------------------------------------------------ frozen helper networks
    @property
    def frozen_module_names(self) -> tuple[str, ...]:
        """Names given to add_frozen_module, in order."""
        return tuple(self.__dict__.get("_frozen_module_names", ()))

    def add_frozen_module(self, name: str, module: nn.Module | None, in_checkpoint: bool = False) -> None:
        """Attach a helper network the system uses but never trains (a reference-flow estimator, an identity or
        perceptual backbone) as `self.<name>`.

        It is a registered submodule, so it follows the model's device and dtype, but it has no gradient, stays in
        eval mode whatever train() says, and is kept out of every optimizer, update, EMA and layout switch and out of
        the state dict: the system rebuilds it from its own config (its weights file) whenever the model is built,
        so checkpoints stay small and load without it. `in_checkpoint=True` keeps its weights in the state dict
        (`<name>.*`, loaded strictly like any other) for a helper whose weights the config alone cannot rebuild.
        None sets the attribute to None (unused in this config).
        """
        if not name.isidentifier() or name in self.__dict__ or hasattr(self, name):
            raise ValueError(f"{type(self).__name__}.add_frozen_module: {name!r} is taken or not an identifier")
        if module is None:
            object.__setattr__(self, name, None)
            return
        unsaved = self.__dict__.get("_unsaved_frozen_names", ())
        if not in_checkpoint:
            if not unsaved:
                self.register_state_dict_post_hook(_drop_frozen_state)
                self.register_load_state_dict_post_hook(_forgive_missing_frozen_state)
            object.__setattr__(self, "_unsaved_frozen_names", (*unsaved, name))
        self.add_module(name, module.requires_grad_(False).eval())
        object.__setattr__(self, "_frozen_module_names", (*self.frozen_module_names, name))

    def expect_frozen_modules_in_eval_mode(self) -> None:
        """Lightning warns about modules in eval mode when training starts; the frozen helpers are meant to be.
        Only a count of eval-mode modules equal to theirs is silenced, so any other module left in eval mode is still
        reported."""
        count = sum(1 for name in self.frozen_module_names for _ in getattr(self, name).modules())
        if count:
            message = rf"Found {count} module\(s\) in eval mode at the start of training"
            warnings.filterwarnings("ignore", message=message, module="lightning")

    def train(self, mode: bool = True) -> Any:
        """nn.Module.train, except that frozen helper networks stay in eval mode."""
        result = super().train(mode)
        for name in self.frozen_module_names:
            getattr(self, name).eval()
        return result

    def inference_network(self, name: str) -> nn.Module:
        """The copy val / test / predict / export use: the EMA copy when `name` has one, else the network."""
        average = getattr(self, f"{name}_ema", None)
        return average.module if isinstance(average, AveragedModel) else self.network(name)

    @property
    def inference_generator(self) -> nn.Module:
        """The G used for val / test / predict / export: the EMA copy when enabled, else G itself."""
        if self._generator_override is not None:
            return self._generator_override
        return self.inference_network("generator")

    @torch.no_grad()
    def update_ema(self, batch: Any = None) -> None:
        """After every training step: EMA parameters move towards the network's, ema += (1 - decay) * (w - ema).

        BatchNorm statistics are NOT averaged. The raw network's running statistics describe the raw weights'
        activations; their average over the run is dominated by the early, much larger variances and describes no
        weights at all: with `model.ema_decay=0.995` the quick start's EMA-G normalised with it and scored a depth
        MAE of 35 mm against the raw G's 6 mm (tests/base/test_ema.py reproduces it on a small U-Net: depth error
        12x the raw G's with averaged statistics, about 2x with its own). So the EMA generator keeps its *own*
        statistics: it runs on the step's batch in train mode (no gradient, the random streams forked so training is
        unchanged), as the raw G did to gather its statistics. Other EMA networks (whose inputs the base does not
        know) take the raw network's current statistics. The first update copies everything.
        """
        for name, decay in self.ema_decays.items():
            average, source = getattr(self, f"{name}_ema"), getattr(self, name)
            own_statistics = name == "generator" and batch is not None and _has_running_statistics(average.module)
            if int(average.n_averaged) == 0:
                average.module.load_state_dict(source.state_dict())
            else:
                for mine, theirs in zip(average.module.parameters(), source.parameters()):
                    mine.lerp_(theirs.detach(), 1.0 - decay)
                if own_statistics:
                    self._gather_ema_statistics(batch)
                else:
                    for mine, theirs in zip(average.module.buffers(), source.buffers()):
                        mine.copy_(theirs)
            average.n_averaged += 1

    def _gather_ema_statistics(self, batch: Any) -> None:
        ema = self.generator_ema.module
        was_training = ema.training
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            ema.train()
            self.generate(batch, ema)
        ema.train(was_training)

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

    # ------------------------------------------------------------------ memory format (GPU speed option)
    def use_channels_last(self, enabled: bool = True) -> None:
        """Store every network's 4-D weights channels-last (NHWC; faster convolutions on tensor-core GPUs) and, from
        then on, hand every batch to generate() in the same layout (`in_memory_format`)."""
        object.__setattr__(self, "_channels_last", bool(enabled))
        layout = torch.channels_last if enabled else torch.contiguous_format
        for net in self.all_networks():
            net.to(memory_format=layout)

    def in_memory_format(self, batch: Any) -> Any:
        """The batch in the networks' layout (run_chunks calls this for training, evaluation and predict)."""
        return _channels_last_tree(batch) if getattr(self, "_channels_last", False) else batch

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.inference_generator(*inputs)
