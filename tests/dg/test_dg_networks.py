"""DG networks: the RFG layout reproduces the original's parameter counts, shapes and value ranges; IDSG's MLP
layout; the eye fix against a transcription of the original demo's loop; the VGG-Face loader."""

from __future__ import annotations

import pytest
import torch

from src.models.components.dg_idsg import (
    IDSGLandmarkHead,
    LandmarkMLP,
    VGGFaceEncoder,
    build_idsg,
    eye_fix,
    landmark_mlp,
)
from src.models.components.dg_rfg import RFGDiscriminator, RFGGenerator, StyleEncoder, build_rfg, count_parameters
from src.utils.errors import CheckpointError


def test_rfg_parameter_counts_match_the_original():
    """The original's StarGAN-v2 networks at 256 px, style 128 (its demo's settings): 35.0 M / 20.9 M / 20.9 M."""
    assert count_parameters(RFGGenerator(256, 128)) == 34_982_531
    assert count_parameters(RFGGenerator(256, 128, unused_lm_head=True)) == 34_982_919  # + its unused 4-ch head
    assert count_parameters(StyleEncoder(256, 128)) == 20_916_928
    assert count_parameters(RFGDiscriminator(256)) == 20_853_505


def test_rfg_shapes_and_ranges_at_a_small_size():
    torch.manual_seed(0)
    rfg = build_rfg(image_size=32, style_dim=8, base_channels=4, max_channels=16, downsamplings=2, bottlenecks=1)
    drawing, source = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    face = rfg(drawing, source)
    assert face.shape == (2, 3, 32, 32) and face.min() >= 0 and face.max() <= 1
    assert rfg.style_encoder(source).shape == (2, 8)
    # the style changes the output (AdaIN), the drawing too
    assert not torch.allclose(face, rfg(drawing, source.flip(0)))
    outputs = RFGDiscriminator(32, base_channels=4, max_channels=16)(torch.cat([face, drawing], 1))
    assert outputs[-1].shape == (2, 1) and len(outputs) == 1 + 3  # log2(32) - 2 blocks, then the logit


def test_idsg_layout_is_the_originals():
    mlp = landmark_mlp(2, out_features=1)
    linears = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(136, 136)] * 5 + [(136, 1)]
    assert sum(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.2 for m in mlp.modules()) == 5
    generator = build_idsg(landmark_dims=3, code_dim=16, channels=4, blocks=2, num_identities=5)
    decoder = [m for m in generator.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert decoder[0].in_features == 204 + 16 and decoder[0].out_features == 512 and decoder[-1].out_features == 204
    out = generator(torch.rand(3, 204), torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 204) and out.min() > 0 and out.max() < 1  # sigmoid
    head = IDSGLandmarkHead(generator)
    code = generator.encode_identity(torch.rand(3, 3, 32, 32))
    torch.testing.assert_close(head(torch.full((3, 204), 0.5), code), generator.decode(torch.full((3, 204), 0.5), code))
    assert isinstance(landmark_mlp(2, 7, sigmoid=True), LandmarkMLP)


def naive_turn_eye(fake: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The original demo's turn_eye, index by index."""
    fake = fake.clone()
    n = fake.shape[0]
    real_w = ((ref[:, 72] - ref[:, 78]) ** 2 + (ref[:, 73] - ref[:, 79]) ** 2) ** 0.5
    fake_w = ((fake[:, 72] - fake[:, 78]) ** 2 + (fake[:, 73] - fake[:, 79]) ** 2) ** 0.5
    ratio = fake_w / real_w
    pairs = ((37, 41), (38, 40), (43, 47), (44, 46))
    deltas = {(a, c): ref[:, 2 * a + c] - ref[:, 2 * b + c] for a, b in pairs for c in (0, 1)}
    for i in range(n):
        for a, b in pairs:
            for c in (0, 1):
                fake[i, 2 * a + c] = fake[i, 2 * b + c] + deltas[(a, c)][i] * ratio[i]
    return fake


def test_eye_fix_is_the_original_turn_eye():
    torch.manual_seed(1)
    fake, ref = torch.rand(4, 136), torch.rand(4, 136)
    fixed = eye_fix(fake, ref)
    torch.testing.assert_close(fixed, naive_turn_eye(fake, ref))
    untouched = [i for i in range(136) if i // 2 not in (37, 38, 43, 44)]
    torch.testing.assert_close(fixed[:, untouched], fake[:, untouched])


@pytest.mark.slow
def test_vgg_face_loader_round_trip_and_wrong_files(tmp_path):
    """VGG-Face weights in the vgg_face_dag layout load (fc8 ignored); anything else is one CheckpointError."""
    torch.manual_seed(0)
    source = VGGFaceEncoder()
    state = {k.split(".", 1)[1] if k.startswith("features.") else k: v for k, v in source.state_dict().items()}
    state.pop("mean")
    state["fc8.weight"] = torch.zeros(2622, 4096)
    torch.save(state, tmp_path / "vgg_face_dag.pth")
    loaded = VGGFaceEncoder(tmp_path / "vgg_face_dag.pth")
    image = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded(image), source(image))
    assert loaded(image).shape == (1, 4096)
    torch.save({"conv1_1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="vgg_face_dag layout"):
        VGGFaceEncoder(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not found"):
        VGGFaceEncoder(tmp_path / "missing.pth")


def test_residual_idsg_starts_as_copy_reference_and_original_does_not():
    torch.manual_seed(0)
    landmarks, image = torch.rand(2, 136), torch.rand(2, 3, 32, 32)
    residual = build_idsg(code_dim=8, channels=4, blocks=2, residual=True)
    torch.testing.assert_close(residual(landmarks, image), landmarks)
    original = build_idsg(code_dim=8, channels=4, blocks=2)
    assert (original(landmarks, image) - landmarks).abs().max() > 0.01


def test_networks_use_the_originals_he_initialisation():
    torch.manual_seed(0)
    mlp = landmark_mlp(2, out_features=1)
    first = mlp.main[0]
    assert abs(float(first.weight.std()) - (2.0 / 136) ** 0.5) < 0.1 * (2.0 / 136) ** 0.5
    assert float(first.bias.abs().max()) == 0.0
    conv = build_rfg(image_size=32, base_channels=8, max_channels=16, downsamplings=2).generator.from_rgb
    assert abs(float(conv.weight.std()) - (2.0 / 27) ** 0.5) < 0.15 * (2.0 / 27) ** 0.5
