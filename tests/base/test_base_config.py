"""Configuration of the base: no-discriminator systems, skipped empty updates, and one clear error per mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from base_toy_system import ToySequenceSystem, toy_config
from test_rgbd_face_pinned import PinnedFaces, pinned_kwargs
from torch.utils.data import DataLoader

from src.models.rgbd_face import RGBDFaceModule
from src.utils.errors import UserError


def fit_steps(module: L.LightningModule, tmp_path: Path, steps: int = 2) -> dict[str, float]:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=DataLoader(PinnedFaces(), batch_size=2))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def rgbd(**changes: Any) -> dict[str, Any]:
    """The pinned rgbd_face settings with `changes` (mappings update the pinned mapping)."""
    kwargs = pinned_kwargs("prediction", None, None)
    for key, value in changes.items():
        kwargs[key] = {**kwargs[key], **value} if isinstance(value, dict) and kwargs.get(key) else value
    return kwargs


def test_no_discriminator_trains_generator_only(tmp_path: Path) -> None:
    weights = {"gan": 0.0, "fm": 0.0, "l1": 1.0, "depth_l1_mm": 0.0, "depth_grad": 0.0}
    module = RGBDFaceModule(**rgbd(discriminator=None, optimizer_d=None, loss_weights=weights))
    assert [u.name for u in module.update_specs] == ["G"] and not module.has_discriminator
    before = [p.detach().clone() for p in module.generator.parameters()]
    metrics = fit_steps(module, tmp_path)
    assert set(k for k in metrics if k.endswith("_step")) == {"train/G/l1_step", "train/G/total_step"}
    assert any(not torch.equal(a, b) for a, b in zip(before, module.generator.parameters()))


@pytest.mark.parametrize("term", ["gan", "fm"])
def test_adversarial_terms_without_discriminator_are_rejected(term: str) -> None:
    weights = {"gan": 0.0, "fm": 0.0, "l1": 1.0, term: 1.0}
    with pytest.raises(UserError, match=rf"model.loss_weights: the term\(s\) \['{term}'\] need a discriminator"):
        RGBDFaceModule(**rgbd(discriminator=None, optimizer_d=None, loss_weights=weights))


def test_side_without_active_terms_is_skipped(tmp_path: Path) -> None:
    module = RGBDFaceModule(**rgbd(discriminator_loss_weights={"real": 0.0, "fake": 0.0}))
    before = [p.detach().clone() for p in module.discriminator.parameters()]
    metrics = fit_steps(module, tmp_path)
    assert not any(k.startswith("train/D/") for k in metrics) and "train/G/total_step" in metrics
    assert all(torch.equal(a, b) for a, b in zip(before, module.discriminator.parameters()))


def test_legacy_update_order_and_optimizer_layout() -> None:
    """Old configs keep their meaning: optimizers [G, D] (checkpoint order), executed D first unless g_first."""
    module = RGBDFaceModule(**rgbd())
    assert [u.name for u in module.update_specs] == ["G", "D"] and module.execution_order == ["D", "G"]
    assert RGBDFaceModule(**rgbd(update_order="g_first")).execution_order == ["G", "D"]
    optimizers = module.configure_optimizers()[0]
    assert optimizers[0].param_groups[0]["params"][0] is next(module.generator.parameters())


def toy(**changes: Any) -> dict[str, Any]:
    return {**toy_config(), **changes}


def replace_update(index: int, **changes: Any) -> list[dict[str, Any]]:
    updates = toy_config()["updates"]
    updates[index] = {**updates[index], **changes}
    return updates


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"updates": replace_update(1, optimizer="aux")}, r"optimizer 'aux' must name an earlier update"),
        ({"updates": replace_update(2, parameters=["generator"])}, r"generator is trained by both aux and G"),
        (
            {"updates": replace_update(2, loss="style_losses")},
            r"'style_losses' is not a loss hook of ToySequenceSystem",
        ),
        ({"updates": replace_update(3, loss_weights={"l2": 1.0})}, r"model.updates \(G\).loss_weights: unknown .*l2"),
        ({"updates": replace_update(0, parameters=["mapper"])}, r"'mapper' is not a network of ToySequenceSystem"),
        ({"updates": replace_update(1, every_k_steps=0)}, r"every_k_steps must be >= 1"),
        ({"updates": replace_update(3, name="D")}, r"update names must be unique"),
        ({"optimizer_g": {"_target_": "torch.optim.SGD"}}, r"model.updates replaces model.optimizer_g"),
        ({"phases": [{"name": "p", "epochs": [0, None], "updates": ["E"]}]}, r"phases \(p\): unknown update"),
        ({"phases": [{"name": "p", "epochs": [2, 1]}]}, r"model.phases\[0\].epochs: need 0 <= first < end"),
        ({"chunk_frames": 0}, r"model.chunk_frames"),
        ({"ema": {"mapper": 0.9}}, r"model.ema.mapper: 'mapper' is not a network"),
        ({"discriminator": {"_target_": "torch.nn.Identity"}}, r"give one single D or named D tables"),
    ],
)
def test_plan_mistakes_are_one_clear_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        ToySequenceSystem(**toy(**changes))


def test_phase_gaps_are_reported_with_epoch_and_batch() -> None:
    module = ToySequenceSystem(**toy(phases=[{"name": "early", "epochs": [0, 2]}]))
    assert module.active_phase(1, 5).name == "early"
    with pytest.raises(UserError, match="no phase covers epoch 2, batch 0"):
        module.active_phase(2, 0)


def test_stored_hyperparameters_rebuild_the_toy_system() -> None:
    module = ToySequenceSystem(**toy_config())
    clone = ToySequenceSystem(**dict(module.hparams))
    clone.load_state_dict(module.state_dict())
    assert set(clone.state_dict()) == set(module.state_dict())
    assert {k.split(".")[0] for k in module.state_dict()} == {
        "generator",
        "discriminators",
        "classifier",
        "generator_ema",
        "classifier_ema",
        "statistics_fitted",
        "target_mean",
    }


def test_progress_bar_metric_defaults_to_the_first_headline_metric() -> None:
    module = RGBDFaceModule(**rgbd())
    assert RGBDFaceModule.PROGRESS_BAR_METRIC is None and RGBDFaceModule.HEADLINE_METRICS
    assert module.progress_bar_metric == RGBDFaceModule.HEADLINE_METRICS[0]
    assert ToySequenceSystem(**toy_config()).progress_bar_metric == "l1"


def test_update_phase_restriction_and_phase_update_list_both_apply() -> None:
    config = toy_config()
    config["updates"][2] = {**config["updates"][2], "phases": ["supervised"]}  # aux: supervised batches only
    module = ToySequenceSystem(**config)
    aux, g = module._updates_by_name["aux"], module._updates_by_name["G"]
    supervised, unsupervised = module.active_phase(1, 0), module.active_phase(1, 1)
    assert (supervised.name, unsupervised.name) == ("supervised", "unsupervised")
    assert module.update_is_active(aux, supervised, 1) and not module.update_is_active(aux, unsupervised, 1)
    assert not module.update_is_active(aux, module.active_phase(0, 0), 0)  # warmup lists G only
    assert module.update_is_active(g, module.active_phase(0, 0), 0)
    assert module.update_weights(g, unsupervised) == {"image/gan": 1.0, "temporal/gan": 0.5}


def test_plan_is_checked_before_any_network_is_built() -> None:
    """A plan mistake is reported even when building the networks would fail (or take minutes)."""
    config = toy(generator={"_target_": "no.such.Network"}, updates=replace_update(3, loss_weights={"l2": 1.0}))
    with pytest.raises(UserError, match=r"unknown loss term\(s\) \['l2'\]"):
        ToySequenceSystem(**config)
