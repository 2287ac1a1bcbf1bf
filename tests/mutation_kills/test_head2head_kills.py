"""head2head's mouth crop size and nearest-training-frame baseline against ../shared/reference/head2head.md."""

from __future__ import annotations

import torch

from src.models.components.head2head_parts import NearestTrainingFrame, crop_size


def test_the_mouth_crop_is_72_pixels_at_256() -> None:
    """The reference: the mouth discriminator and mouth-APD use 72x72 crops at 256 px; other sizes scale (min 8)."""
    assert crop_size(256) == 72
    assert crop_size(512) == 144
    assert crop_size(128) == 36
    assert crop_size(16) == 8


def test_the_baseline_returns_the_nearest_frame_saturated_to_8_bit_levels() -> None:
    """Frames are kept as 8-bit levels of [-1, 1]: a value outside saturates (-1.5 -> -1, 1.5 -> 1), values inside
    come back within half a level (1 / 127.5), and the nearest thumbnail picks the frame."""
    nmfc = torch.stack([torch.full((3, 8, 8), -0.5), torch.full((3, 8, 8), 0.5)])
    images = torch.stack([torch.full((3, 8, 8), -1.5), torch.full((3, 8, 8), 0.3)])
    images[1, 0, 0, 0] = 1.5
    baseline = NearestTrainingFrame(NearestTrainingFrame.thumbnail(nmfc), images, input_nc=3)
    query = torch.full((2, 3, 8, 8), -0.45)
    query[1] = 0.6
    out = baseline(query, torch.zeros(2, 3, 8, 8))
    assert torch.equal(out[0], torch.full((3, 8, 8), -1.0))
    assert float(out[1, 0, 0, 0]) == 1.0
    assert torch.allclose(out[1, 1], torch.full((8, 8), 0.3), atol=0.5 / 127.5)


def test_the_default_export_is_the_deployable_ema_generator() -> None:
    """`export_modules(size)` without `deployable` is what `export` ships: the EMA generator when training keeps one
    (system.py's contract), not the raw G (deployable=False, kept for comparisons)."""
    from src.models.head2head import Head2HeadModule
    from tests.head2head.synthetic import tiny_config

    module = Head2HeadModule(**tiny_config(eval_flicker=False, loss_weights={"l1": 1.0}, ema_decay=0.5))
    assert module.inference_generator is not module.generator
    default = module.export_modules(32)["generator"]
    assert default.source == "export_model() (EMA generator)"
    raw = module.export_modules(32, deployable=False)["generator"]
    assert raw.source == "generator" and raw.module is module.generator
