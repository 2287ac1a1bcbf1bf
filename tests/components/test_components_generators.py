"""Generators: exact parameter counts, tiny forward/backward, explicit inference-mode norm semantics."""

from __future__ import annotations

import pytest
import torch

from src.models.components.generators import (
    GlobalGenerator,
    LocalEnhancer,
    UnetGenerator,
    build_generator,
)
from src.models.components.norms import (
    SwitchableBatchNorm2d,
    count_parameters,
    init_weights,
    set_norm_inference_mode,
)

torch.set_num_threads(1)


def _meta_count(name: str, **kwargs) -> int:
    with torch.device("meta"):  # counting needs shapes only: no memory, no init cost
        return count_parameters(build_generator(name, 1, 4, **kwargs))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unet_512", 66_998_916),
        ("unet_256", 54_413_956),
        ("unet_128", 41_828_996),
        # CycleGAN's resnet_9blocks 3->3 with InstanceNorm has the well-known 11,378,179; BatchNorm adds one
        # parameter per normalised channel (5,248), 1->4 channels changes the end convs by -6,272 + 3,137.
        ("resnet_9blocks", 11_380_292),
        ("resnet_6blocks", 7_838_276),
    ],
)
def test_full_size_parameter_counts(name: str, expected: int) -> None:
    assert _meta_count(name) == expected


def test_instance_norm_unet_has_biases_and_no_norm_parameters() -> None:
    # InstanceNorm (affine=False) convs keep a bias: count = batch count - 2*C(norm) + C(bias) per norm layer.
    assert _meta_count("unet_256", norm="instance") != _meta_count("unet_256", norm="batch")
    with torch.device("meta"):
        net = build_generator("unet_256", 1, 4, norm="instance")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


@pytest.mark.parametrize(
    ("factory", "size"),
    [
        (lambda: UnetGenerator(1, 4, num_downs=6, ngf=8), 64),
        (lambda: build_generator("unet_128", 1, 4, ngf=8), 128),
        (lambda: build_generator("resnet_6blocks", 1, 4, ngf=8), 64),
        (lambda: build_generator("global", 3, 3, ngf=8, norm="instance", n_blocks_global=2), 64),
        (lambda: build_generator("local", 3, 3, ngf=4, norm="instance", n_blocks_global=2, n_blocks_local=1), 64),
    ],
)
def test_tiny_forward_backward(factory, size: int) -> None:
    torch.manual_seed(0)
    net = factory()
    x = torch.rand(2, net_input_channels(net), size, size) * 2 - 1
    y = net(x)
    assert y.shape[-2:] == (size, size)
    assert y.min() >= -1 and y.max() <= 1
    y.mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def net_input_channels(net: torch.nn.Module) -> int:
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    return first_conv.in_channels


def test_unet_rejects_indivisible_size() -> None:
    net = UnetGenerator(1, 4, num_downs=6, ngf=4)
    with pytest.raises(ValueError, match="divisible by 64"):
        net(torch.zeros(1, 1, 96, 96))


def test_unknown_generator_name() -> None:
    with pytest.raises(ValueError, match="unknown generator 'unet_1024'"):
        build_generator("unet_1024", 1, 4)


def test_init_is_normal_002() -> None:
    torch.manual_seed(0)
    net = build_generator("unet_128", 1, 4, ngf=16)
    conv_w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    bn_w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, SwitchableBatchNorm2d)])
    assert abs(conv_w.std().item() - 0.02) < 0.001 and abs(conv_w.mean().item()) < 0.001
    assert abs(bn_w.mean().item() - 1.0) < 0.005


def test_inference_norm_batch_matches_train_mode_and_keeps_running_stats() -> None:
    torch.manual_seed(0)
    net = UnetGenerator(1, 4, num_downs=6, ngf=8, use_dropout=False)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    for m in net.modules():  # make running stats clearly different from batch stats
        if isinstance(m, SwitchableBatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    buffers = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net.eval()
    with torch.no_grad():
        running = net(x)
        set_norm_inference_mode(net, "batch")
        batch = net(x)
        net.train()
        train = net(x.clone())
    assert torch.allclose(batch, train, atol=1e-6)
    assert not torch.allclose(running, batch, atol=1e-3)
    # Eval-mode batch statistics must not have touched the running buffers (the train() call above did).
    net2 = UnetGenerator(1, 4, num_downs=6, ngf=8, use_dropout=False, inference_norm="batch").eval()
    net2.load_state_dict({**net2.state_dict(), **buffers})
    with torch.no_grad():
        net2(x)
    assert all(torch.equal(net2.state_dict()[k], v) for k, v in buffers.items())


def test_inference_dropout_switch() -> None:
    torch.manual_seed(0)
    net = UnetGenerator(1, 4, num_downs=6, ngf=8, use_dropout=True).eval()
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        set_norm_inference_mode(net, "batch", dropout=True)
        assert not torch.equal(net(x), net(x))
    with pytest.raises(ValueError, match="inference_norm"):
        set_norm_inference_mode(net, "train")


def test_local_enhancer_loads_trained_global_part() -> None:
    torch.manual_seed(0)
    global_net = GlobalGenerator(3, 3, ngf=8, n_blocks=2, norm="instance")
    local = LocalEnhancer(3, 3, ngf=4, n_blocks_global=2, n_blocks_local=1, norm="instance")
    init_weights(global_net, 0.5)  # distinct from the enhancer's own init
    local.load_global_generator(global_net)
    for key, value in local.model.state_dict().items():
        assert torch.equal(value, global_net.state_dict()[f"model.{key}"])
    with pytest.raises(ValueError, match="ngf 8"):
        local.load_global_generator(GlobalGenerator(3, 3, ngf=16, n_blocks=2, norm="instance"))
