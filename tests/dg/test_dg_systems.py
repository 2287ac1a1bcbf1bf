"""IDSG and RFG systems: loss terms against transcriptions of the original's loops, the update plan (D, then the
classifier, then G, each with its own networks), yaw buckets, baselines and the full pipeline's landmark source."""

from __future__ import annotations

import hydra
import numpy as np
import torch
import torch.nn.functional as F

from src.models.dg_idsg import BUCKET_METRICS, SHAPE_REGIONS, point_distance_sum
from tests.dg.conftest import compose_model


def naive_landmark_loss(fake: torch.Tensor, real: torch.Tensor, first: int = 0, last: int = 68) -> torch.Tensor:
    """The original's loop: sum over points of mean |sqrt(dx^2 + dy^2)| over the batch."""
    total = torch.zeros(())
    for i in range(first, last):
        dx = fake[:, 2 * i : 2 * i + 1] - real[:, 2 * i : 2 * i + 1]
        dy = fake[:, 2 * i + 1 : 2 * i + 2] - real[:, 2 * i + 1 : 2 * i + 2]
        total = total + torch.mean(torch.abs((dx**2 + dy**2) ** 0.5))
    return total


def batch(size: int = 32, n: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "reference_landmarks": torch.rand(n, 136, generator=g),
        "target_landmarks": torch.rand(n, 136, generator=g),
        "source_image": torch.rand(n, 3, size, size, generator=g),
        "same_image": torch.rand(n, 3, size, size, generator=g),
        "reference_image": torch.rand(n, 3, size, size, generator=g),
        "target_image": torch.rand(n, 3, size, size, generator=g),
        "source_label": torch.tensor([0, 1, 2, 3][:n]),
        "reference_label": torch.tensor([1, 2, 3, 0][:n]),
        "target_yaw_deg": torch.tensor([5.0, -25.0, 59.0, float("nan")][:n]),
    }


def idsg_model():
    torch.manual_seed(0)
    return hydra.utils.instantiate(compose_model("dg_idsg").model).train()


def test_idsg_update_plan_is_the_originals():
    model = idsg_model()
    assert model.execution_order == ["D", "C", "G"]
    trained = {u.name: u.parameters for u in model.update_specs}
    assert trained == {"D": ("discriminator",), "C": ("classifier",), "G": ("generator",)}
    assert {u.name: u.loss for u in model.update_specs}["C"] == "classifier_losses"
    assert model.ema_decays == {"generator": 0.999}
    d_spec = next(u for u in model.update_specs if u.name == "D")
    assert d_spec.loss_weights == {"real": 1.0, "fake": 1.0, "r1": 1.0} and d_spec.detach_outputs


def test_idsg_losses_equal_the_original_formulas():
    model = idsg_model()
    data = batch()
    outputs = model.generate(data, model.generator)
    terms = frozenset(model.loss_weights)
    losses = model.generator_losses(data, outputs, terms)
    cross, same, ref = outputs["landmarks"], outputs["same"], data["reference_landmarks"]
    torch.testing.assert_close(losses["cycle"], naive_landmark_loss(same, ref))
    torch.testing.assert_close(losses["cycle_target"], naive_landmark_loss(cross, data["target_landmarks"]))
    shape = sum(
        (
            margin + naive_landmark_loss(same, ref, r.start, r.stop) - naive_landmark_loss(cross, ref, r.start, r.stop)
        ).abs()
        for r, margin in SHAPE_REGIONS.values()
    )
    torch.testing.assert_close(losses["shape"], shape)
    assert [r.start for r, _ in SHAPE_REGIONS.values()] == [0, 17, 27, 36, 48]
    logits = model.classifier(cross)
    torch.testing.assert_close(losses["classification"], F.cross_entropy(logits, data["source_label"]))
    assert logits.min() >= 0 and logits.max() <= 1  # the original's sigmoid before the cross-entropy
    content = (model.generator.landmark_encoder(ref) - model.generator.landmark_encoder(same)).abs().mean()
    torch.testing.assert_close(losses["content"], content)
    gan = F.binary_cross_entropy_with_logits(model.discriminator(cross), torch.ones(4, 1))
    torch.testing.assert_close(losses["gan"], gan)
    # D side: R1 = 0.5 * mean over the batch of the squared gradient norm of D on the real landmarks
    d = model.discriminator_losses(data, {k: v.detach() for k, v in outputs.items()}, frozenset({"real", "fake", "r1"}))
    real = ref.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.discriminator(real).sum(), real)
    torch.testing.assert_close(d["r1"], 0.5 * grad.pow(2).sum(1).mean())
    c = model.classifier_losses(data, outputs, frozenset({"classification"}))
    torch.testing.assert_close(c["classification"], F.cross_entropy(model.classifier(ref), data["reference_label"]))


def test_point_distance_uses_x_and_y_of_3d_landmarks():
    a, b = torch.rand(3, 204), torch.rand(3, 204)
    flat_a = a.reshape(3, 68, 3)[..., :2].reshape(3, 136)
    flat_b = b.reshape(3, 68, 3)[..., :2].reshape(3, 136)
    torch.testing.assert_close(point_distance_sum(a, b), naive_landmark_loss(flat_a, flat_b))


def test_yaw_buckets_hold_their_samples_only():
    model = idsg_model().eval()
    data = batch()
    with torch.no_grad():
        outputs = model.generate(data, model.generator)
        metrics = model.sample_metrics(data, outputs)
    error = metrics["lm_error_px"].numpy()
    expected = (outputs["landmarks"] - data["target_landmarks"]).reshape(4, 68, 2).norm(dim=2).mean(1) * 256
    np.testing.assert_allclose(error, expected.numpy(), rtol=1e-5)
    buckets = {name: metrics[name].numpy() for name in BUCKET_METRICS}
    assert buckets["lm_error_px_yaw00_20"][0] == error[0] and np.isnan(buckets["lm_error_px_yaw00_20"][1:]).all()
    assert buckets["lm_error_px_yaw20_40"][1] == error[1]  # |-25| degrees
    assert buckets["lm_error_px_yaw40_60"][2] == error[2]
    assert all(np.isnan(b[3]) for b in buckets.values())  # unknown yaw: in no bucket
    copy = model.baselines(None)["copy_reference"]
    torch.testing.assert_close(copy(data["reference_landmarks"], data["source_image"]), data["reference_landmarks"])


def test_rfg_trains_on_the_true_target_and_scores_the_chosen_landmarks(tiny_checkpoints):
    from src.landmarks.drawing import draw_dg_landmarks

    overrides = [f"model.idsg_checkpoint={tiny_checkpoints['idsg']}", "model.loss_weights.perceptual=0"]
    cfg = compose_model("dg_rfg", [*overrides, "data.drawing_supersample=1"])  # the original's drawing
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model)
    data = batch()
    data["target_drawing"] = torch.rand(4, 3, 32, 32)
    model.train()
    outputs = model.generate(data, model.generator)
    assert outputs["answer"] is data["target_image"] and outputs["drawing"] is data["target_drawing"]
    assert model.idsg is not None and not model.idsg.training  # the IDSG stays frozen in eval mode
    model.eval()
    with model.baseline_scope(model.baselines(None)["rfg_on_reference"]):
        reference = model.generate(data, model.generator)["drawing"]
    expected = draw_dg_landmarks(data["reference_landmarks"][0].reshape(68, 2).numpy() * 32, 32)
    np.testing.assert_array_equal(reference[0, 0].numpy() * 255, expected)
    pipeline = model.generate(data, model.generator)["drawing"]
    assert not torch.equal(pipeline, reference)  # IDSG's landmarks, not the reference's
    assert model.landmark_source == "idsg"
