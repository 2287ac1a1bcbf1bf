"""The shared network components checked against the published architectures, not against themselves.

- torchvision's feature stacks: the named ReLU taps are derived here by a naive walk over VGG's published block
  sizes (two, two, three / four, ...) and AlexNet's five convolutions; every tap must be a ReLU at that index.
- feature-map sizes at the taps follow the convolution / pooling size formula, computed by hand below.
- ImageNet's normalisation constants and torchvision's weight file names are the published ones.
- a weights file with the right keys but one wrong shape is refused; the error names the backbone.
- channel widths must be true integers >= 1 (2.5 and True are refused); pix2pixHD's global generator has 9 blocks.
- rgbd_face's mean-face baseline and depth-as-mask rule equal per-pixel loops.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from src.losses.depth import BACKGROUND_THRESHOLD
from src.models.components import backbones
from src.models.components.backbones import FeatureBackbone, build_features, default_weights_path, weights_dir
from src.models.components.generators import GlobalGenerator, check_widths
from src.models.components.rgbd_masking import GENERATED_BACKGROUND_THRESHOLD, MaskedGenerator, MeanFaceGenerator
from src.utils.errors import UserError

pytestmark = [pytest.mark.filterwarnings("ignore:.*RANDOM weights:UserWarning"), pytest.mark.usefixtures("one_thread")]

VGG_BLOCKS = {"vgg16": [2, 2, 3, 3, 3], "vgg19": [2, 2, 4, 4, 4]}  # convolutions per block (Simonyan & Zisserman)


def _naive_vgg_relu_indices(blocks: list[int]) -> dict[str, int]:
    """relu<block>_<conv> -> index in torchvision's `features` (conv, relu per conv; a max-pool ends each block)."""
    out, index = {}, 0
    for block, convs in enumerate(blocks, start=1):
        for conv in range(1, convs + 1):
            out[f"relu{block}_{conv}"] = index + 1  # the ReLU right after the conv
            index += 2
        index += 1  # the block's max-pool
    return out


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_vgg_taps_are_the_relus_of_the_published_blocks(arch: str) -> None:
    naive = _naive_vgg_relu_indices(VGG_BLOCKS[arch])
    last = VGG_BLOCKS[arch][2]  # relu3_3 (vgg16) / relu3_4 (vgg19): the last ReLU of blocks 3 to 5
    names = ["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", f"relu3_{last}"]
    names += ["relu4_1", f"relu4_{last}", "relu5_1", f"relu5_{last}"]
    assert backbones.TAPS[arch] == {name: naive[name] for name in names}
    with torch.device("meta"):
        features = build_features(arch)
    assert all(isinstance(features[i], nn.ReLU) for i in backbones.TAPS[arch].values())


def test_alexnet_and_squeezenet_taps_follow_their_layers() -> None:
    with torch.device("meta"):
        alexnet, squeezenet = build_features("alexnet"), build_features("squeezenet1_1")
    conv_then_relu = [i + 1 for i, layer in enumerate(alexnet) if isinstance(layer, nn.Conv2d)]
    assert backbones.TAPS["alexnet"] == {f"relu{k}": index for k, index in enumerate(conv_then_relu, start=1)}
    fires = [i for i, layer in enumerate(squeezenet) if isinstance(layer, backbones.Fire)]
    fire_taps = {name: index for name, index in backbones.TAPS["squeezenet1_1"].items() if name != "relu1"}
    # torchvision's squeezenet1_1 fire modules are fire2 .. fire9; LPIPS taps fire3, fire5 .. fire9
    assert fire_taps == {f"fire{n}": fires[n - 2] for n in (3, 5, 6, 7, 8, 9)}
    assert backbones.TAPS["squeezenet1_1"]["relu1"] == 1 and isinstance(squeezenet[1], nn.ReLU)


def _conv(size: int, kernel: int, stride: int = 1, padding: int = 0, ceil: bool = False) -> int:
    """Output side of a convolution / pooling: floor((n + 2p - k) / s) + 1 (ceil for ceil_mode pools)."""
    rounding = math.ceil if ceil else math.floor
    return rounding((size + 2 * padding - kernel) / stride) + 1


def test_tap_shapes_follow_the_size_formula() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    side = _conv(_conv(64, 11, 4, 2), 3, 2)  # conv1, pool1
    side2 = _conv(side, 3, 2)  # conv2 keeps the side (5x5, padding 2), pool2
    alexnet = FeatureBackbone("alexnet", ["relu1", "relu2", "relu5"], weights="random")
    shapes = [tuple(o.shape) for o in alexnet(x)]
    assert shapes == [(1, 64, _conv(64, 11, 4, 2), _conv(64, 11, 4, 2)), (1, 192, side, side), (1, 256, side2, side2)]
    squeezenet = FeatureBackbone("squeezenet1_1", ["relu1", "fire3", "fire5", "fire9"], weights="random")
    s1 = _conv(64, 3, 2)
    s2 = _conv(s1, 3, 2, ceil=True)
    s3 = _conv(s2, 3, 2, ceil=True)
    s4 = _conv(s3, 3, 2, ceil=True)
    shapes = [tuple(o.shape) for o in squeezenet(x)]
    assert shapes == [(1, 64, s1, s1), (1, 128, s2, s2), (1, 256, s3, s3), (1, 512, s4, s4)]
    vgg = FeatureBackbone("vgg16", ["relu1_2", "relu2_1", "relu5_3"], weights="random")
    shapes = [tuple(o.shape) for o in vgg(torch.rand(1, 3, 32, 32))]
    assert shapes == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 512, 2, 2)]


def test_imagenet_normalisation_and_weight_file_names_are_the_published_ones() -> None:
    net = FeatureBackbone("alexnet", ["relu1"], weights="random")
    assert torch.equal(net.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))  # float32, like the buffers
    assert torch.equal(net.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    files = {
        "vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth", "alexnet": "alexnet-owt-7be5be79.pth",
        "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth",
    }  # fmt: skip
    assert {arch: default_weights_path(arch) for arch in files} == {a: weights_dir() / f for a, f in files.items()}
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg11'"):
        default_weights_path("vgg11")


def test_a_weights_file_with_one_wrong_shape_is_refused_naming_the_backbone(tmp_path: Path) -> None:
    net = FeatureBackbone("alexnet", ["relu1"], weights="random")
    good = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    path = tmp_path / "alexnet.pth"
    torch.save({**good, "features.0.bias": torch.zeros(65)}, path)  # every key there, one shape wrong
    with pytest.raises(RuntimeError, match=r"^alexnet weights file .* does not fit: missing \[\], shape mismatches "):
        backbones.load_backbone_weights(net, path)  # no arch given: the label is the model's own arch
    with pytest.raises(FileNotFoundError, match=r"^alexnet weights not found: .* \(put torchvision's alexnet-owt-"):
        backbones.load_backbone_weights(net, tmp_path / "absent.pth")


def test_widths_must_be_true_integers_and_the_global_generator_has_nine_blocks() -> None:
    check_widths(ngf=1, ndf=64)
    for bad in (2.5, True, 0, "8"):
        with pytest.raises(ValueError, match=r"^ngf must be an integer >= 1, got "):
            check_widths(ngf=bad)
    with torch.device("meta"):
        default, nine = GlobalGenerator(3, 3, ngf=8), GlobalGenerator(3, 3, ngf=8, n_blocks=9)
    blocks = [m for m in default.modules() if type(m).__name__ == "ResnetBlock"]
    assert len(blocks) == 9 and sum(p.numel() for p in default.parameters()) == sum(
        p.numel() for p in nine.parameters()
    )


def _naive_mask(rgbd: np.ndarray, threshold: float) -> np.ndarray:
    out = rgbd.copy()
    for n, y, x in np.ndindex(rgbd.shape[0], rgbd.shape[2], rgbd.shape[3]):
        if rgbd[n, 3, y, x] <= threshold:
            out[n, :, y, x] = -1.0
    return out


def test_mean_face_baseline_equals_a_per_pixel_loop() -> None:
    """Colour: mean of all masked frames; depth: mean over the frames with depth where at least half have it."""
    rng = np.random.default_rng(0)
    frames = rng.uniform(-0.5, 1.0, (3, 4, 2, 3))
    frames[0, 3, 0, 0] = frames[1, 3, 0, 0] = -1.0  # depth in 1 of 3 frames: background in the mean
    frames[2, 3, 1, 2] = -1.0  # depth in 2 of 3 frames: the mean of those two
    frames[:, 3, 0, 1] = -0.95  # faint depth everywhere (inside the band the generated-depth cut removes)
    batches = [{"rgbd": torch.from_numpy(frames[:2])}, {"rgbd": torch.from_numpy(frames[2:])}]
    baseline = MeanFaceGenerator.from_batches(batches)
    targets = _naive_mask(frames, BACKGROUND_THRESHOLD)
    expected = np.empty((1, 4, 2, 3))
    for y, x in np.ndindex(2, 3):
        expected[0, :3, y, x] = targets[:, :3, y, x].mean(0)
        depths = [targets[n, 3, y, x] for n in range(3) if targets[n, 3, y, x] > BACKGROUND_THRESHOLD]
        expected[0, 3, y, x] = np.mean(depths) if len(depths) >= 1.5 else -1.0
    expected = _naive_mask(expected, GENERATED_BACKGROUND_THRESHOLD)
    assert expected[0, 3, 0, 0] == -1.0 and expected[0, 3, 1, 2] > -0.5  # both rules are exercised
    out = baseline(torch.zeros(2, 1, 2, 3, dtype=torch.float64))
    assert out.shape == (2, 4, 2, 3) and out.dtype == torch.float64
    np.testing.assert_allclose(out[1].numpy(), expected[0], atol=1e-6)
    with pytest.raises(UserError, match=r"^mean-face baseline: the training split is empty$"):
        MeanFaceGenerator.from_batches([])


def test_masked_generator_cuts_its_own_depth_at_the_threshold() -> None:
    values = [0.2, 0.3, 0.4, -0.95, 0.5, 0.6, 0.7, -0.9, 0.1, 0.1, 0.1, -0.85]  # below, at, above the cut
    rgbd = torch.tensor(values, dtype=torch.float64).reshape(3, 4, 1, 1)
    generator = MaskedGenerator(nn.Identity())
    expected = _naive_mask(rgbd.numpy(), GENERATED_BACKGROUND_THRESHOLD)
    np.testing.assert_array_equal(generator(rgbd).numpy(), expected)
    assert generator(rgbd)[2].flatten().tolist() == pytest.approx([0.1, 0.1, 0.1, -0.85])
