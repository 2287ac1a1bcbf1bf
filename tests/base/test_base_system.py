"""The base serves a third system (tests/base/base_toy_system.py): update order, per-optimizer parameters, phases,
lazy R1, chunked sequences with detached carried state, fitted statistics across checkpoints, per-network EMA,
evaluation of whole sequences with non-tensor outputs, and evenly spread kept samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from base_toy_system import FRAMES, ToySequences, ToySequenceSystem, toy_config
from torch.utils.data import DataLoader

from src.utils.errors import UserError


class RecordingToy(ToySequenceSystem):
    """The toy system, recording every update it runs: order, terms, and which parameters it changed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record: list[dict[str, Any]] = []
        self.carries: list[Any] = []
        self.fit_calls = 0

    def fit_statistics(self, train_batches: Any) -> dict[str, torch.Tensor]:
        self.fit_calls += 1
        return super().fit_statistics(train_batches)

    def generate(self, batch: dict[str, Any], generator: torch.nn.Module) -> dict[str, Any]:
        if self.training:
            self.carries.append(batch.get("carry"))
        return super().generate(batch, generator)

    def run_update(self, update: Any, batch: dict[str, Any], outputs: dict[str, Any], weights: dict) -> None:
        before = {name: p.detach().clone() for name, p in self.named_parameters()}
        super().run_update(update, batch, outputs, weights)
        changed = {name for name, p in self.named_parameters() if not torch.equal(p, before[name])}
        self.record.append(
            {
                "update": update.name,
                "epoch": self.current_epoch,
                "iteration": self.iterations,
                "terms": frozenset(weights),
                "changed": changed,
                "before": before,
                "batch": batch,
            }
        )


def trainer(tmp_path: Path, epochs: int, **extra: Any) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **extra,
    )


def loaders() -> tuple[DataLoader, DataLoader]:
    return DataLoader(ToySequences(4), batch_size=2), DataLoader(ToySequences(13, seed=1), batch_size=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordingToy, Path]:
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    tmp_path = tmp_path_factory.mktemp("toy")
    module = RecordingToy(**toy_config())
    fit = trainer(tmp_path, 2, num_sanity_val_steps=0)
    train, val = loaders()
    fit.fit(module, train_dataloaders=train, val_dataloaders=val)
    ckpt = tmp_path / "toy.ckpt"
    fit.save_checkpoint(ckpt)
    return module, ckpt


def params_of(module: RecordingToy, prefix: str) -> set[str]:
    return {name for name, _ in module.named_parameters() if name.startswith(prefix + ".")}


def test_updates_run_in_the_configured_order_per_phase(trained: tuple[RecordingToy, Path]) -> None:
    module, _ = trained
    order = [(r["epoch"], r["iteration"], r["update"]) for r in module.record]
    # 2 batches x 2 chunks per epoch; epoch 0 (warmup) runs G only; D_r1 every 2nd iteration (4 and 6).
    expected = [(0, i, "G") for i in range(4)]
    for iteration in range(4, 8):
        expected += [(1, iteration, "D")]
        expected += [(1, iteration, "D_r1")] if iteration % 2 == 0 else []
        expected += [(1, iteration, "aux"), (1, iteration, "G")]
    assert order == expected
    assert module.iterations == 8


def test_each_optimizer_changes_exactly_its_parameters(trained: tuple[RecordingToy, Path]) -> None:
    module, _ = trained
    owned = {
        "D": params_of(module, "discriminators"),
        "D_r1": {"discriminators.image.weight"},  # R1 sees the image D only, and its input gradient has no bias
        "aux": params_of(module, "classifier"),
        "G": params_of(module, "generator"),
    }
    for record in module.record:
        assert record["changed"] == owned[record["update"]], (record["update"], record["iteration"])


def test_phase_switch_changes_active_terms(trained: tuple[RecordingToy, Path]) -> None:
    module, _ = trained
    g_terms = {(r["epoch"], r["iteration"]): r["terms"] for r in module.record if r["update"] == "G"}
    assert all(g_terms[(0, i)] == {"l1"} for i in range(4))  # warmup: geometry only, no D at all
    assert g_terms[(1, 4)] == g_terms[(1, 5)] == {"l1", "image/gan", "temporal/gan"}  # batch 0: supervised
    assert g_terms[(1, 6)] == g_terms[(1, 7)] == {"image/gan", "temporal/gan"}  # batch 1: unsupervised
    d_terms = {r["terms"] for r in module.record if r["update"] == "D"}
    assert d_terms == {frozenset({"image/real", "image/fake", "temporal/real", "temporal/fake"})}


def test_lazy_r1_steps_with_k_times_the_weight(trained: tuple[RecordingToy, Path]) -> None:
    """SGD step of D_r1 == -lr * grad(k * w * R1) with k = 2, w = 0.5, lr = 0.01; R1 computed sample by sample."""
    module, _ = trained
    records = [r for r in module.record if r["update"] == "D_r1"]
    assert len(records) == 2
    net = torch.nn.Conv2d(1, 1, 3)
    for record in records:
        net.weight.data.copy_(record["before"]["discriminators.image.weight"])
        net.bias.data.copy_(record["before"]["discriminators.image.bias"])
        reals = record["batch"]["target"].flatten(0, 1)
        penalty = 0.0
        for real in reals:
            real = real[None].clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(net(real).sum(), real, create_graph=True)
            penalty = penalty + 0.5 * grad.pow(2).sum()
        total = 2 * 0.5 * penalty / len(reals)
        (grad,) = torch.autograd.grad(total, [net.weight])
        after = module.record[module.record.index(record) + 1]["before"]  # aux follows; it leaves D alone
        expected = record["before"]["discriminators.image.weight"] - 0.01 * grad
        torch.testing.assert_close(after["discriminators.image.weight"], expected, rtol=1e-5, atol=1e-7)


def test_chunk_state_is_carried_detached(trained: tuple[RecordingToy, Path]) -> None:
    module, _ = trained
    carries = module.carries
    assert len(carries) == 8 and carries[0::2] == [None] * 4  # each batch starts fresh
    for carry in carries[1::2]:
        assert carry.shape == (2, 1, 8, 8) and carry.grad_fn is None and not carry.requires_grad


def test_fitted_statistic_once_and_restored_from_checkpoint(trained: tuple[RecordingToy, Path], tmp_path: Path) -> None:
    module, ckpt = trained
    targets = torch.stack([item["target"] for item in ToySequences(4)]).double()
    assert module.fit_calls == 1
    torch.testing.assert_close(module.target_mean, targets.mean().float().reshape(1))
    resumed = RecordingToy(**toy_config())
    train, val = loaders()
    trainer(tmp_path, 3, num_sanity_val_steps=0).fit(resumed, train, val, ckpt_path=str(ckpt))
    assert resumed.fit_calls == 0 and resumed.target_mean.item() == module.target_mean.item()
    assert [r["iteration"] for r in resumed.record if r["update"] == "D_r1"] == [8, 10]  # rhythm kept on resume
    evaluated = RecordingToy(**toy_config())
    evaluated.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    trainer(tmp_path, 1).validate(evaluated, val, verbose=False)
    assert evaluated.fit_calls == 0
    untrained = RecordingToy(**toy_config())
    with pytest.raises(UserError, match="never fitted"):
        trainer(tmp_path, 1).validate(untrained, val, verbose=False)
    untrained.copy_fitted_statistics(module)  # the "untrained" comparison row: same statistics, fresh weights
    trainer(tmp_path, 1).validate(untrained, val, verbose=False)
    assert untrained.fit_calls == 0 and untrained.target_mean.item() == module.target_mean.item()


def test_ema_of_every_asked_network(trained: tuple[RecordingToy, Path]) -> None:
    """EMA copies of G and of the classifier == a naive running average of their values after each iteration."""
    module, ckpt = trained
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    for name in ("generator", "classifier"):
        assert f"{name}_ema.module.weight" in state and int(getattr(module, f"{name}_ema").n_averaged) == 8
        values = []
        for iteration in range(8):
            following = [r for r in module.record if r["iteration"] == iteration + 1]
            current = dict(module.named_parameters())[f"{name}.weight"].detach()
            values.append(following[0]["before"][f"{name}.weight"] if following else current)
        average = values[0]  # the first update copies the network
        for value in values[1:]:
            average = 0.5 * average + 0.5 * value
        torch.testing.assert_close(getattr(module, f"{name}_ema").module.weight, average)
    assert module.inference_generator is module.generator_ema.module
    assert module.inference_network("classifier") is module.classifier_ema.module


def test_evaluation_runs_whole_sequences_and_keeps_evenly_spread_items(trained: tuple[RecordingToy, Path]) -> None:
    module, _ = trained
    results = module.eval_results["val"]
    assert len(results["frame_ids"]) == 13 and results["per_sample"]["l1"].shape == (13,)
    kept = [frame for batch, _ in results["samples"] for frame in batch["frame_id"]]
    assert kept == [f"seq_{i:03d}" for i in (0, 3, 6, 9, 12)]
    batch, outputs = results["samples"][0]
    assert outputs["frames"].shape[1] == FRAMES and outputs["tag"] == "g" and "carry" not in outputs
    assert not outputs["frames"].requires_grad and not outputs["pyramid"][0].requires_grad
    # Whole-sequence evaluation == chunk by chunk by hand, the previous frame carried along.
    module.eval()
    sequence = {k: v[:1] for k, v in batch.items() if isinstance(v, torch.Tensor)}
    with torch.no_grad():
        first = module.generate({**sequence, "source": sequence["source"][:, :2], "carry": None}, module.generator)
        second = module.generate(
            {**sequence, "source": sequence["source"][:, 2:], "carry": first["carry"]}, module.generator
        )
        whole = module.generate_whole(sequence, module.generator)["frames"]
    torch.testing.assert_close(whole, torch.cat([first["frames"], second["frames"]], 1))


def test_kept_samples_capped_by_limited_batches(tmp_path: Path) -> None:
    module = RecordingToy(**toy_config())
    module.target_mean.fill_(0.3)
    module.statistics_fitted.fill_(True)
    _, val = loaders()
    validator = trainer(tmp_path, 1, limit_val_batches=2)
    validator.validate(module, val, verbose=False)
    kept = [frame for batch, _ in module.eval_results["val"]["samples"] for frame in batch["frame_id"]]
    assert kept == [f"seq_{i:03d}" for i in (0, 2, 4, 5, 7)]  # 8 items seen: round(linspace(0, 7, 5))
    assert set(validator.progress_bar_metrics) == {"val/l1"}  # the declared PROGRESS_BAR_METRIC, nothing else
