"""rgbd_face's training-time mirroring (model.mirror_probability): which samples are mirrored, that drawing,
RGBD and face mask move together, that mirroring off leaves training as it was, and that a bad probability is
one clear error."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_rgbd_face_pinned import pinned_kwargs

from src.models.rgbd_face import RGBDFaceModule
from src.utils.errors import UserError

SIZE = 16


def tiny_module(mirror_probability: float) -> RGBDFaceModule:
    """The pinned test's tiny rgbd_face system (explicit networks and criteria, no conf/ defaults)."""
    return RGBDFaceModule(**{**pinned_kwargs("prediction", None, None), "mirror_probability": mirror_probability})


def asymmetric_batch(n: int = 4) -> dict[str, Any]:
    """Per-sample images that differ from their own mirror image (a ramp plus the sample index)."""
    ramp = torch.arange(SIZE, dtype=torch.float32).expand(SIZE, SIZE) / SIZE
    base = torch.stack([ramp + i for i in range(n)])[:, None]
    return {
        "feature": base.clone(),
        "rgbd": base.expand(-1, 4, -1, -1) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1),
        "face_mask": (base > base.mean(dim=(2, 3), keepdim=True)).float(),
        "depth_near_mm": torch.full((n,), 480.0),
        "frame_id": [f"f{i}" for i in range(n)],
    }


def test_only_the_chosen_samples_are_mirrored_and_all_their_images_together() -> None:
    batch = asymmetric_batch()
    chosen = torch.tensor([True, False, False, True])
    mirrored = tiny_module(0.5).mirror_samples(batch, chosen)
    for key in ("feature", "rgbd", "face_mask"):  # the input, the target and the mask of the depth terms
        for i, flip in enumerate(chosen.tolist()):
            # independent reference: reverse the column order by indexing
            expected = batch[key][i][..., torch.arange(SIZE - 1, -1, -1)] if flip else batch[key][i]
            assert torch.equal(mirrored[key][i], expected), (key, i)
    assert torch.equal(mirrored["depth_near_mm"], batch["depth_near_mm"])  # per-sample scalars untouched
    assert mirrored["frame_id"] == batch["frame_id"]
    assert torch.equal(batch["feature"], asymmetric_batch()["feature"])  # the loader's batch is not changed


def test_training_mirrors_about_the_given_share() -> None:
    module = tiny_module(0.5)
    seen: list[torch.Tensor] = []
    module.run_chunks = lambda batch, generator, step: seen.append(batch["feature"])  # capture, do not train
    torch.manual_seed(0)
    batch = asymmetric_batch(64)
    module.training_step(batch, 0)
    flipped = [not torch.equal(seen[0][i], batch["feature"][i]) for i in range(64)]
    assert 20 <= sum(flipped) <= 44  # Binomial(64, 0.5): outside this range has probability < 0.2 %
    for i in range(64):
        assert torch.equal(seen[0][i], batch["feature"][i].flip(-1) if flipped[i] else batch["feature"][i])


def test_mirroring_off_consumes_no_random_numbers() -> None:
    module = tiny_module(0.0)
    module.run_chunks = lambda batch, generator, step: None
    torch.manual_seed(3)
    module.training_step(asymmetric_batch(), 0)
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(1), after)  # pinned runs (mirror off) see the same random stream as before


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_a_bad_probability_is_one_clear_error(probability: float) -> None:
    with pytest.raises(UserError, match=r"model\.mirror_probability"):
        tiny_module(probability)
