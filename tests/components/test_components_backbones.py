"""Perceptual backbones: torchvision-compatible keys and sizes, local weight loading and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.models.components.backbones import (
    FeatureBackbone,
    build_features,
    load_backbone_weights,
    to_three_channels,
)
from src.models.components.norms import count_parameters

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*RANDOM weights:UserWarning")

# Parameter-holding layer indices of torchvision's `features` and the feature-stack sizes (known figures).
TORCHVISION_CONV_INDICES = {
    "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    "vgg19": [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34],
    "alexnet": [0, 3, 6, 8, 10],
}
FEATURE_PARAMS = {"vgg16": 14_714_688, "vgg19": 20_024_384, "alexnet": 2_469_696, "squeezenet1_1": 722_496}


@pytest.mark.parametrize("arch", sorted(FEATURE_PARAMS))
def test_feature_stacks_match_torchvision(arch: str) -> None:
    with torch.device("meta"):
        features = build_features(arch)
    assert count_parameters(features) == FEATURE_PARAMS[arch]
    if arch in TORCHVISION_CONV_INDICES:
        expected = {f"{i}.{p}" for i in TORCHVISION_CONV_INDICES[arch] for p in ("weight", "bias")}
        assert set(features.state_dict()) == expected
    else:
        assert "3.squeeze.weight" in features.state_dict() and "12.expand3x3.bias" in features.state_dict()


def _torchvision_like_file(tmp_path: Path, arch: str) -> tuple[Path, dict]:
    torch.manual_seed(0)
    state = {f"features.{k}": torch.randn_like(v) for k, v in build_features(arch).state_dict().items()}
    state["classifier.1.weight"] = torch.randn(10, 4)  # classifier entries of the real files are ignored
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    return path, state


def test_loads_local_torchvision_file(tmp_path: Path) -> None:
    path, state = _torchvision_like_file(tmp_path, "alexnet")
    net = FeatureBackbone("alexnet", ["relu1", "relu3"], weights=str(path))
    assert torch.equal(net.features[6].weight, state["features.6.weight"])
    assert "features.8.weight" not in net.state_dict()  # truncated after the last requested tap
    assert all(not p.requires_grad for p in net.parameters())
    outputs = net(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert [o.shape[1] for o in outputs] == [64, 384]


def test_missing_weights_error_names_file_and_place(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FACESYNTH_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        FeatureBackbone("vgg19")
    message = str(info.value)
    assert str(tmp_path / "vgg19-dcbb9e9d.pth") in message and "FACESYNTH_WEIGHTS_DIR" in message
    assert "\n" not in message


def test_wrong_file_is_reported(tmp_path: Path) -> None:
    path, _ = _torchvision_like_file(tmp_path, "alexnet")
    net = FeatureBackbone("vgg16", ["relu1_2"], weights="random")
    with pytest.raises(RuntimeError, match="does not fit"):
        load_backbone_weights(net, path, "vgg16")


def test_random_weights_warn_and_normalisation_is_inside() -> None:
    with pytest.warns(UserWarning, match="RANDOM"):
        a = FeatureBackbone("vgg16", ["relu2_2"], weights="random")
    b = FeatureBackbone("vgg16", ["relu2_2"], weights="random", input_range="zero_one")
    b.load_state_dict(a.state_dict())
    x01 = torch.rand(1, 3, 32, 32)
    assert torch.allclose(a(x01 * 2 - 1)[0], b(x01)[0], atol=1e-5)
    a.train()
    assert not a.training


def test_to_three_channels() -> None:
    rgbd = torch.rand(2, 4, 8, 8)
    assert torch.equal(to_three_channels(rgbd, [3])[:, 2], rgbd[:, 3])
    assert torch.equal(to_three_channels(rgbd, [0, 1, 2]), rgbd[:, :3])
    with pytest.raises(ValueError, match="channels"):
        to_three_channels(rgbd)
