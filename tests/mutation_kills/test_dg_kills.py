"""DG's yaw buckets at their edges: [0, 20), [20, 40), [40, 60] by |yaw| (the last one closed), so a sample exactly on
an edge is scored in one bucket only. The existing test used yaws inside the buckets; a `<=` for `<` passed it."""

from __future__ import annotations

import math

import torch
from torch import nn

from tests.dg.conftest import compose_model

EDGES = {"lm_error_px_yaw00_20": (0.0, 20.0, False), "lm_error_px_yaw20_40": (20.0, 40.0, False)}
EDGES["lm_error_px_yaw40_60"] = (40.0, 60.0, True)


def test_a_yaw_on_a_bucket_edge_is_scored_in_the_upper_bucket_only() -> None:
    import hydra

    torch.manual_seed(0)
    model = hydra.utils.instantiate(compose_model("dg_idsg").model).eval()
    g = torch.Generator().manual_seed(0)
    n = 5
    yaws = [20.0, -40.0, 60.0, 0.0, 60.5]
    data = {
        "reference_landmarks": torch.rand(n, 136, generator=g),
        "target_landmarks": torch.rand(n, 136, generator=g),
        "source_image": torch.rand(n, 3, 32, 32, generator=g),
        "reference_image": torch.rand(n, 3, 32, 32, generator=g),
        "same_image": torch.rand(n, 3, 32, 32, generator=g),
        "target_image": torch.rand(n, 3, 32, 32, generator=g),
        "source_label": torch.tensor([0, 1, 2, 3, 0]),
        "reference_label": torch.tensor([1, 2, 3, 0, 1]),
        "target_yaw_deg": torch.tensor(yaws),
    }
    with torch.no_grad():
        metrics = model.sample_metrics(data, model.generate(data, model.generator))
    error = metrics["lm_error_px"].tolist()
    for name, (low, high, closed) in EDGES.items():
        for i, yaw in enumerate(yaws):  # the naive rule, sample by sample
            inside = low <= abs(yaw) and (abs(yaw) <= high if closed else abs(yaw) < high)
            value = float(metrics[name][i])
            assert (value == error[i]) if inside else math.isnan(value), (name, yaw)


def _vgg_face_layer_names() -> list[str]:
    """vgg_face_dag's convolution names, by hand: VGG-16's blocks of 2, 2, 3, 3, 3 convolutions."""
    return [f"conv{block}_{i}" for block, count in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, count + 1)]


def test_vgg_face_encoder_has_the_vgg_face_dag_layout_and_perceptual_taps() -> None:
    """Built on the meta device (no 500 MB of weights): the state-dict names and shapes of vgg_face_dag (fc6 takes
    the 7 x 7 x 512 pool5 map), and the perceptual taps VGG_FACE_LAYERS are relu1_1 ... relu5_1
    (dg_face_features' docstring)."""
    from src.models.components.dg_face_features import VGG_FACE_LAYERS
    from src.models.components.dg_idsg import VGGFaceEncoder

    with torch.device("meta"):
        encoder = VGGFaceEncoder()
    names = [name for name, _ in encoder.features.named_children()]
    convs = [name for name in names if name.startswith("conv")]
    assert convs == _vgg_face_layer_names()
    assert encoder.fc6.weight.shape == (4096, 512 * 7 * 7)
    assert [names[index] for index in VGG_FACE_LAYERS] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def test_vgg_face_weights_load_when_complete_and_name_what_is_missing(tmp_path, monkeypatch) -> None:
    """A state dict with every vgg_face_dag key loads; one without fc7.bias is refused naming it."""
    import pytest

    from src.models.components import dg_idsg
    from src.utils.errors import CheckpointError

    with torch.device("meta"):
        encoder = dg_idsg.VGGFaceEncoder()
    complete = {
        f"{name}.{kind}": None for name in [*_vgg_face_layer_names(), "fc6", "fc7"] for kind in ("weight", "bias")
    }
    ours = {key.removeprefix("features."): value for key, value in encoder.state_dict().items() if key != "mean"}
    assert ours.keys() == complete.keys()
    weights = tmp_path / "vgg_face_dag.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr(dg_idsg, "safe_torch_load", lambda path, what: dict(ours))
    encoder.load_vgg_face(weights)
    monkeypatch.setattr(
        dg_idsg, "safe_torch_load", lambda path, what: {k: v for k, v in ours.items() if k != "fc7.bias"}
    )
    with pytest.raises(CheckpointError, match=r"missing \['fc7.bias'\]"):
        encoder.load_vgg_face(weights)


def test_rfg_residual_block_is_stargan_v2s_resblk() -> None:
    """StarGAN v2's ResBlk by hand (LeakyReLU 0.2, conv, pool, LeakyReLU 0.2, conv; 1x1 shortcut; / sqrt 2), and the
    style encoder's LeakyReLUs all 0.2 as in the original."""
    import torch.nn.functional as F

    from src.models.components.dg_rfg import ResBlock, StyleEncoder

    torch.manual_seed(0)
    block = ResBlock(2, 3, normalize=False, downsample=True)
    x = torch.randn(1, 2, 4, 4)
    out = block.conv1(F.leaky_relu(x, 0.2))
    out = block.conv2(F.leaky_relu(F.avg_pool2d(out, 2), 0.2))
    expected = (F.avg_pool2d(block.shortcut(x), 2) + out) / math.sqrt(2.0)
    assert torch.allclose(block(x), expected, atol=1e-6)
    slopes = [
        m.negative_slope for m in StyleEncoder(image_size=16, base_channels=2).modules() if isinstance(m, nn.LeakyReLU)
    ]
    assert slopes and all(slope == 0.2 for slope in slopes)


class _TwoScaleStandIn(nn.Module):
    """A discriminator stand-in with known outputs: per-pixel channel mean, then channel sum (the last is the logit)."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x.mean(1, keepdim=True), x.sum(1, keepdim=True)]


def test_rfg_feature_matching_and_fake_terms_see_the_right_images() -> None:
    """RFG's fm term compares D's features of (generated, drawing) with those of (answer, drawing); its D fake term
    scores D's last output on (generated, drawing) as fake. Checked against the stand-in's outputs by hand."""
    from src.models.dg_rfg import DGRFGModule

    module = DGRFGModule.__new__(DGRFGModule)
    nn.Module.__init__(module)
    module.discriminator = _TwoScaleStandIn()
    calls: dict[str, tuple] = {}

    def feature_matching(fake: list, real: list) -> torch.Tensor:
        calls["fm"] = (fake, real)
        return sum((f - r).abs().mean() for f, r in zip(fake[0], real[0], strict=True))

    def gan(logits: torch.Tensor, is_real: bool) -> torch.Tensor:
        calls.setdefault("gan", []).append((logits, is_real))
        return logits.mean()

    object.__setattr__(module, "criteria", {"fm": feature_matching, "gan": gan})
    g = torch.Generator().manual_seed(0)
    image, drawing, answer = (torch.rand(2, 3, 4, 4, generator=g) for _ in range(3))
    outputs = {"image": image, "drawing": drawing, "answer": answer}
    losses = module.generator_losses({}, outputs, frozenset({"fm"}))
    fake_in, real_in = torch.cat([image, drawing], 1), torch.cat([answer, drawing], 1)
    expected = (fake_in.mean(1) - real_in.mean(1)).abs().mean() + (fake_in.sum(1) - real_in.sum(1)).abs().mean()
    assert torch.allclose(losses["fm"], expected)
    losses = module.discriminator_losses({}, outputs, frozenset({"real", "fake"}))
    (real_logits, real_flag), (fake_logits, fake_flag) = calls["gan"]
    assert real_flag is True and torch.allclose(real_logits, real_in.sum(1, keepdim=True))
    assert fake_flag is False and torch.allclose(fake_logits, fake_in.sum(1, keepdim=True))
    assert torch.allclose(losses["fake"], fake_in.sum(1).mean())


def test_rfg_default_export_is_the_inference_generator() -> None:
    """`export_modules(size)` without `deployable` is what `export` ships: the inference (EMA) RFG, not the raw one."""
    from src.models.dg_rfg import DGRFGModule

    module = DGRFGModule.__new__(DGRFGModule)
    nn.Module.__init__(module)
    module.generator, average = nn.Conv2d(6, 3, 1), nn.Conv2d(6, 3, 1)
    object.__setattr__(module, "_generator_override", average)  # what inference_generator returns first
    # the manifest also says how to draw the input (export_modules reads these)
    module.half_face, module.drawing_supersample, module.drawing_line_width = "symmetric", 1, None
    (spec,) = module.export_modules(16).values()
    assert spec.module is average and spec.source == "EMA RFG"
    (raw,) = module.export_modules(16, deployable=False).values()
    assert raw.module is module.generator and raw.source == "RFG"


def test_rfg_detected_landmarks_come_back_in_the_images_pixels() -> None:
    """A 32 px image is enlarged to 128 px for the detector, so its landmarks come back x 32 / 128; the first (largest)
    face is used, and an image without a face gives None (a stand-in detector with known answers)."""
    from types import SimpleNamespace

    import numpy as np

    from src.models.dg_rfg import DGRFGModule

    landmarks = np.arange(70 * 2, dtype=np.float64).reshape(70, 2)
    answers = [[SimpleNamespace(landmarks=landmarks)], []]
    sizes = []

    def detect(rgb: np.ndarray) -> list:
        sizes.append(rgb.shape)
        return answers[len(sizes) - 1]

    module = DGRFGModule.__new__(DGRFGModule)
    nn.Module.__init__(module)
    object.__setattr__(module, "_detector", SimpleNamespace(detect=detect))
    one, none = module._detect(torch.rand(2, 3, 32, 32))
    assert sizes == [(128, 128, 3), (128, 128, 3)]
    np.testing.assert_allclose(one, landmarks[:68] * 0.25)
    assert none is None


def test_rfg_picture_row_is_source_drawing_output_truth_in_8_bit() -> None:
    """sample_grid's columns are labelled source | drawing | output | truth: each tile is that tensor x 255, rounded,
    clipped to [0, 255] (a tensor of known values per column)."""
    import numpy as np

    from src.models.dg_rfg import DGRFGModule

    values = {"source_image": 0.1, "drawing": 0.5, "image": 0.9, "answer": 1.7}  # 1.7: clipped to 255
    tensors = {key: torch.full((2, 3, 4, 4), value) for key, value in values.items()}
    batch = {"source_image": tensors["source_image"]}
    outputs = {key: tensors[key] for key in ("drawing", "image", "answer")}
    row = DGRFGModule._row(None, batch, outputs, 1)  # type: ignore[arg-type]  # uses no model state
    assert [int(tile[0, 0, 0]) for tile in row] == [26, 128, 230, 255]
    assert all(tile.dtype == np.uint8 and tile.shape == (4, 4, 3) for tile in row)


def test_idsg_report_samples_and_grid_show_the_target_image_and_the_reference() -> None:
    """Each report sample is drawn over the target image in 8 bit (x 255, rounded), with predicted and true landmarks
    in its pixels (x size); the picture grid has one source | reference drawing | plot row per sample."""
    import numpy as np

    from src.models.dg_idsg import DGIDSGModule

    module = DGIDSGModule.__new__(DGIDSGModule)
    nn.Module.__init__(module)
    g = torch.Generator().manual_seed(1)
    size = 16
    batch = {
        "source_image": torch.rand(2, 3, size, size, generator=g),
        "target_image": torch.rand(2, 3, size, size, generator=g),
        "reference_landmarks": 0.2 + 0.6 * torch.rand(2, 136, generator=g),
        "target_landmarks": 0.2 + 0.6 * torch.rand(2, 136, generator=g),
    }
    outputs = {"landmarks": 0.2 + 0.6 * torch.rand(2, 136, generator=g)}
    samples = module.report_samples_from(batch, outputs)
    for index, sample in enumerate(samples):
        expected = np.round(batch["target_image"][index].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        np.testing.assert_array_equal(sample.image, expected)
        np.testing.assert_allclose(sample.pred_points, outputs["landmarks"][index].view(68, 2).numpy() * size)
        np.testing.assert_allclose(sample.true_points, batch["target_landmarks"][index].view(68, 2).numpy() * size)
    grid = module.sample_grid(batch, outputs)
    assert grid.ndim == 3 and grid.shape[0] >= 2 * size and grid.shape[1] >= 3 * size


class _LandmarkModel(nn.Module):
    """An IDSG stand-in: (landmarks, image) -> landmarks + the image mean; has a `decoder` like IDSGenerator."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = nn.Identity()

    def forward(self, landmarks: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return landmarks + image.mean(dim=(1, 2, 3)).unsqueeze(1)


def test_idsg_evaluation_also_reconstructs_from_the_same_persons_image() -> None:
    """In evaluation an IDSG (a model with a decoder) also maps the reference landmarks with the same person's other
    image (`same`: the same_identity_error_px metric); a baseline without a decoder gives only `landmarks`."""
    from src.models.dg_idsg import DGIDSGModule

    module = DGIDSGModule.__new__(DGIDSGModule)
    nn.Module.__init__(module)
    module.eval()
    reference = torch.rand(2, 136)
    batch = {"reference_landmarks": reference, "source_image": torch.zeros(2, 3, 4, 4)}
    batch["same_image"] = torch.full((2, 3, 4, 4), 0.5)
    outputs = module.generate(batch, _LandmarkModel())
    assert torch.allclose(outputs["landmarks"], reference)
    assert torch.allclose(outputs["same"], reference + 0.5)
    bare = module.generate(batch, lambda landmarks, image: landmarks)
    assert list(bare) == ["landmarks"]
