"""rgbd_face's mirror augmentation and perceptual terms, checked on the module's own methods with stand-in networks
(no training run): which samples reach the base training step mirrored, and that each term is its criterion's value."""

from __future__ import annotations

import pytest
import torch

from src.models.base.training import TrainingMixin
from src.models.rgbd_face import RGBDFaceModule


def _bare_module(**attributes: object) -> RGBDFaceModule:
    """An RGBDFaceModule without __init__ (no networks): only the attributes the tested method reads."""
    module = RGBDFaceModule.__new__(RGBDFaceModule)
    torch.nn.Module.__init__(module)
    for name, value in attributes.items():
        object.__setattr__(module, name, value)
    return module


@pytest.mark.parametrize("probability", [1.0, 0.5, 0.0])
def test_training_step_mirrors_the_samples_drawn_below_the_probability(monkeypatch, probability: float) -> None:
    """Sample i is mirrored left-right iff torch.rand(N)[i] < mirror_probability (the same draw, replayed here);
    probability 1 mirrors every sample, 0 none."""
    seen = []
    monkeypatch.setattr(TrainingMixin, "training_step", lambda self, batch, batch_idx: seen.append(batch))
    module = _bare_module(mirror_probability=probability)
    feature = torch.arange(6 * 4, dtype=torch.float32).view(6, 1, 1, 4)
    batch = {"feature": feature, "rgbd": feature + 100, "face_mask": feature > 10, "frame_id": list("abcdef")}
    torch.manual_seed(3)
    module.training_step(batch, 0)
    torch.manual_seed(3)
    chosen = torch.rand(6) < probability if probability > 0 else torch.zeros(6, dtype=torch.bool)
    (passed,) = seen
    for i in range(6):
        for key in ("feature", "rgbd", "face_mask"):
            expected = batch[key][i].flip(-1) if chosen[i] else batch[key][i]
            assert torch.equal(passed[key][i], expected), (key, i)
    assert passed["frame_id"] == batch["frame_id"]
    if probability == 1.0:
        assert bool(chosen.all())


@pytest.mark.parametrize("term", ["lpips", "vgg"])
def test_a_perceptual_term_is_its_criterion_on_the_masked_output_and_target(term: str) -> None:
    calls = []

    def criterion(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append((fake, target))
        return (fake - target).abs().mean()

    module = _bare_module(criteria={term: criterion})
    fake, target = torch.rand(2, 4, 3, 3), torch.rand(2, 4, 3, 3)
    losses = module.generator_losses(
        {"feature": torch.rand(2, 1, 3, 3)}, {"rgbd": fake, "target": target}, frozenset({term})
    )
    assert list(losses) == [term]
    assert torch.equal(losses[term], (fake - target).abs().mean())
    assert calls[0][0] is fake and calls[0][1] is target
