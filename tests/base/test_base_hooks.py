"""Hooks of the base that a system uses instead of a private copy of its loops (head2head uses all three):

- evaluation windows that continue a stream start from the previous window's carry (`continues_stream`);
- a D table with nothing to judge in a chunk (`discriminator_inputs` -> None) scores 0 and is not run;
- frozen helper networks (`add_frozen_module`): no gradient, eval mode, in no optimizer, EMA or state dict.

Each is checked on the toy system of docs/adding_a_system.md against an independent reference (a naive per-frame
loop, the GAN criterion called by hand, weight snapshots), so a wrong hook fails here.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import pytest
import torch
from base_toy_system import SIDE, ToySequences, ToySequenceSystem, toy_config
from test_base_system import trainer
from torch import nn
from torch.utils.data import DataLoader

from src.utils.errors import UserError

LENGTH = 7  # odd, so a window boundary (3) falls inside a chunk of 2 of the whole sequence


class StreamingToy(ToySequenceSystem):
    """The toy system whose windows carry a frame position; a window continues the one that ended just before."""

    SEQUENCE_KEYS: ClassVar[tuple[str, ...]] = ("source", "target", "position")

    def continues_stream(self, previous: dict[str, Any], batch: dict[str, Any]) -> bool:
        return bool((batch["position"][:, 0] == previous["position"][:, -1] + 1).all())


def sequence(length: int = LENGTH) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(7)
    source = torch.rand(2, length, 2, SIDE, SIDE, generator=generator) * 2 - 1
    return {"source": source, "target": source[:, :, :1] * 0.5, "position": torch.arange(length).repeat(2, 1)}


def window(batch: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    return {key: value[:, start:end] for key, value in batch.items()}


def naive_frames(module: ToySequenceSystem, source: torch.Tensor) -> torch.Tensor:
    """The toy generator's recurrence frame by frame, from no previous output (the independent reference)."""
    previous = torch.zeros_like(source[:, 0, :1])
    frames = []
    for t in range(source.shape[1]):
        previous = torch.tanh(module.generator(torch.cat([source[:, t], previous], 1))) + module.target_mean
        frames.append(previous)
    return torch.stack(frames, 1)


def streamed(module: ToySequenceSystem, batch: dict[str, Any], generators: tuple[nn.Module, nn.Module]) -> Any:
    with torch.no_grad():
        first = module.generate_whole(window(batch, 0, 3), generators[0])["frames"]
        second = module.generate_whole(window(batch, 3, LENGTH), generators[1])["frames"]
    return torch.cat([first, second], 1)


def test_windows_continuing_a_stream_are_generated_as_one_sequence() -> None:
    torch.manual_seed(0)
    module = StreamingToy(**toy_config()).eval()
    batch = sequence()
    with torch.no_grad():
        whole = module.generate_whole(batch, module.generator)["frames"]
        reference = naive_frames(module, batch["source"])
        fresh_tail = naive_frames(module, batch["source"][:, 3:])
    torch.testing.assert_close(whole, reference)
    torch.testing.assert_close(streamed(module, batch, (module.generator, module.generator)), reference)
    assert not torch.allclose(fresh_tail, reference[:, 3:], atol=1e-3)  # the carry matters in this sequence
    # The same window again does not continue itself: it starts fresh.
    with torch.no_grad():
        again = module.generate_whole(window(batch, 3, LENGTH), module.generator)["frames"]
    torch.testing.assert_close(again, fresh_tail)


def test_a_stream_restarts_for_another_generator_in_training_and_by_default() -> None:
    torch.manual_seed(0)
    module = StreamingToy(**toy_config()).eval()
    batch = sequence()
    with torch.no_grad():
        reference = naive_frames(module, batch["source"])
        fresh_tail = naive_frames(module, batch["source"][:, 3:])
    other = copy.deepcopy(module.generator)  # the same weights, another network (an EMA copy, a baseline)
    torch.testing.assert_close(streamed(module, batch, (module.generator, other))[:, 3:], fresh_tail)
    module.train()  # training chunks never continue an evaluation stream
    torch.testing.assert_close(streamed(module, batch, (module.generator, module.generator))[:, 3:], fresh_tail)
    plain = ToySequenceSystem(**toy_config()).eval()  # no continues_stream: every window is a sequence start
    plain.load_state_dict(module.state_dict())
    keys = {"source": batch["source"], "target": batch["target"]}
    torch.testing.assert_close(
        streamed(plain, keys, (plain.generator,) * 2), torch.cat([reference[:, :3], fresh_tail], 1)
    )


# ---------------------------------------------------------------------------------------------- absent D inputs
class AbsentTemporalToy(ToySequenceSystem):
    """The toy system whose temporal D has nothing to judge (as head2head's temporal_9 in its first 18 frames)."""

    def discriminator_inputs(self, batch: dict[str, Any], outputs: dict[str, Any], name: str) -> Any:
        return None if name == "temporal" else super().discriminator_inputs(batch, outputs, name)


def without_phases() -> dict[str, Any]:
    config = toy_config()
    config.pop("phases")
    return config


def test_a_d_without_inputs_scores_zero_and_is_not_run() -> None:
    torch.manual_seed(0)
    module = AbsentTemporalToy(**without_phases())
    calls: list[str] = []
    for name, net in module.discriminators.items():
        net.register_forward_hook(lambda *_, name=name: calls.append(name))
    batch = window(sequence(), 0, 2)
    outputs = module.generate({**batch, "carry": None}, module.generator)
    d_terms = frozenset({"image/real", "image/fake", "temporal/real", "temporal/fake"})
    losses = module.discriminator_losses(batch, outputs, d_terms)
    assert set(losses) == d_terms and calls == ["image", "image"]
    assert float(losses["temporal/real"]) == 0.0 and float(losses["temporal/fake"]) == 0.0
    image = module.discriminators["image"]
    real, fake = batch["target"].flatten(0, 1), outputs["frames"].flatten(0, 1)
    torch.testing.assert_close(losses["image/real"], ((image(real) - 1) ** 2).mean())  # LSGAN by hand
    torch.testing.assert_close(losses["image/fake"], (image(fake) ** 2).mean())
    g_losses = module.adversarial_losses(batch, outputs, frozenset({"image/gan", "temporal/gan"}))
    assert set(g_losses) == {"image/gan", "temporal/gan"} and float(g_losses["temporal/gan"]) == 0.0
    torch.testing.assert_close(g_losses["image/gan"], ((image(fake) - 1) ** 2).mean())


def test_training_with_an_absent_d_logs_zero_and_leaves_it_untouched(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = AbsentTemporalToy(**without_phases())
    temporal_before = [p.detach().clone() for p in module.discriminators["temporal"].parameters()]
    image_before = [p.detach().clone() for p in module.discriminators["image"].parameters()]
    trainer = fit(module, tmp_path)
    logged = trainer.callback_metrics
    assert float(logged["train/D/temporal/real_epoch"]) == 0.0 and float(logged["train/G/temporal/gan_epoch"]) == 0.0
    assert float(logged["train/D/image/real_epoch"]) > 0.0
    assert all(torch.equal(a, b) for a, b in zip(temporal_before, module.discriminators["temporal"].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(image_before, module.discriminators["image"].parameters()))


# ---------------------------------------------------------------------------------------------- frozen helpers
class FrozenHelperToy(ToySequenceSystem):
    """The toy system with a frozen helper (BatchNorm and dropout, which train mode would change) in its G loss,
    as head2head's flow estimator or a perceptual backbone."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        helper = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Dropout(0.5))
        self.add_frozen_module("helper", helper)
        self.add_frozen_module("unused_helper", None)

    def generator_losses(self, batch: dict[str, Any], outputs: dict[str, Any], terms: frozenset[str]) -> dict:
        losses = super().generator_losses(batch, outputs, terms)
        if "l1" in terms:  # a perceptual-style term: the gradient reaches G through the frozen helper
            frames = outputs["frames"].flatten(0, 1)
            helped = self.helper(frames) - self.helper(batch["target"].flatten(0, 1))
            losses["l1"] = losses["l1"] + helped.abs().mean()
        return losses


def fit(module: ToySequenceSystem, tmp_path: Path, epochs: int = 1) -> L.Trainer:
    quiet = trainer(tmp_path, epochs, num_sanity_val_steps=0)
    quiet.fit(module, DataLoader(ToySequences(4), batch_size=2))
    return quiet


def test_a_frozen_helper_never_trains_and_stays_out_of_optimizers_ema_and_checkpoints(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = FrozenHelperToy(**without_phases())
    helper = module.helper
    snapshot = {k: v.clone() for k, v in helper.state_dict().items()}  # weights and BatchNorm statistics
    generator_before = [p.detach().clone() for p in module.generator.parameters()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = fit(module, tmp_path)
    assert not any("eval mode at the start of training" in str(w.message) for w in caught)
    assert not helper.training and all(not m.training for m in helper.modules())
    assert all(p.grad is None and not p.requires_grad for p in helper.parameters())
    assert all(torch.equal(v, snapshot[k]) for k, v in helper.state_dict().items())
    assert not all(torch.equal(a, b) for a, b in zip(generator_before, module.generator.parameters()))
    optimized = {id(p) for optimizer in trainer.optimizers for g in optimizer.param_groups for p in g["params"]}
    assert optimized.isdisjoint(id(p) for p in helper.parameters()) and optimized
    module.train()
    assert module.generator.training and not helper.training and not helper[1].training
    assert module.unused_helper is None and helper not in module.all_networks()
    # Not in the state dict, and a state dict without it loads strictly (every checkpoint written so far).
    state = module.state_dict()
    assert not any(key.startswith("helper.") for key in state) and "helper" not in state._metadata
    assert state.keys() == ToySequenceSystem(**without_phases()).state_dict().keys()
    fresh = FrozenHelperToy(**without_phases())
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.generator.weight, module.generator.weight)
    module.double()  # it follows the model's dtype / device
    assert helper[0].weight.dtype == torch.float64


def test_a_frozen_helper_in_the_checkpoint_is_saved_and_loaded_strictly() -> None:
    """in_checkpoint=True (a helper its config cannot rebuild, as dg_rfg's IDSG copy): `<name>.*` keys, strict load."""

    class SavedHelperToy(ToySequenceSystem):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.add_frozen_module("saved", nn.Linear(2, 2), in_checkpoint=True)
            self.add_frozen_module("unsaved", nn.Linear(2, 2))

    torch.manual_seed(0)
    module, other = SavedHelperToy(**without_phases()), SavedHelperToy(**without_phases())
    state = module.state_dict()
    assert {"saved.weight", "saved.bias"} <= set(state) and not any(k.startswith("unsaved.") for k in state)
    assert not torch.equal(other.saved.weight, module.saved.weight)
    other.load_state_dict(state)
    assert torch.equal(other.saved.weight, module.saved.weight) and not other.saved.weight.requires_grad
    with pytest.raises(RuntimeError, match=r"saved\.weight"):
        other.load_state_dict({k: v for k, v in state.items() if k != "saved.weight"})


def test_a_frozen_helper_passes_gradients_to_its_input() -> None:
    module = FrozenHelperToy(**without_phases())
    frames = torch.rand(3, 1, SIDE, SIDE, requires_grad=True)
    module.helper(frames).abs().mean().backward()
    assert frames.grad is not None and float(frames.grad.abs().sum()) > 0.0


def test_a_frozen_helper_cannot_be_trained_or_averaged(tmp_path: Path) -> None:
    module = FrozenHelperToy(**without_phases())
    with pytest.raises(UserError, match="'helper' is not a network"):
        module.network("helper")
    with pytest.raises(UserError, match="helper"):
        FrozenHelperToy(**{**without_phases(), "ema": {"helper": 0.5}})
    with pytest.raises(ValueError, match="taken"):
        module.add_frozen_module("generator", nn.Identity())
    module.generator.eval()  # another module in eval mode is still reported by Lightning
    with pytest.warns(UserWarning, match="module\\(s\\) in eval mode at the start of training"):
        fit(module, tmp_path)
