"""resfcn256: the original's parameter count, TF 'SAME' padding against a naive loop, the TF-name importer and loss."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from src.models.components.prnet_resfcn import (
    ORIGINAL_RUNNING_STATS,
    ORIGINAL_TRAINABLE,
    ResFCN256,
    SameConv2d,
    SameConvTranspose2d,
    WeightedPositionMapLoss,
    count_parameters,
    export_tf_arrays,
    import_tf_weights,
    load_tf_arrays,
    tf_variable_names,
)
from src.utils.errors import CheckpointError


def _hand_count(base: int) -> tuple[int, int]:
    """predictor.py layer by layer: conv kernels k*k*in*out (no biases), BN gamma + beta (+ 2 running stats)."""
    trainable, running = 4 * 4 * 3 * base + 2 * base, 2 * base
    channels = base
    for factor, stride in ((2, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (16, 2), (16, 1), (32, 2), (32, 1)):
        out, half = base * factor, base * factor // 2
        if stride != 1 or channels != out:
            trainable += channels * out  # 1x1 shortcut
        trainable += channels * half + 2 * half + 16 * half * half + 2 * half + half * out + 2 * out
        running += 2 * half + 2 * half + 2 * out
        channels = out
    for factor in (32, 16, 16, 16, 8, 8, 8, 4, 4, 4, 2, 2, 1, 1):
        trainable += 16 * channels * base * factor + 2 * base * factor
        running += 2 * base * factor
        channels = base * factor
    for _ in range(3):
        trainable += 16 * channels * 3 + 6
        running += 6
        channels = 3
    return trainable, running


def test_original_shapes_have_the_original_parameter_count():
    assert _hand_count(16) == (ORIGINAL_TRAINABLE, ORIGINAL_RUNNING_STATS) == (13_353_618, 11_890)
    assert count_parameters(ResFCN256(base_channels=16)) == (13_353_618, 11_890)
    assert count_parameters(ResFCN256(base_channels=4)) == _hand_count(4)


def _tf_same_conv(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """TF conv2d 'SAME' by loops: output ceil(n / s); pad total max((out - 1) s + k - n, 0), the smaller half first.
    x (H, W, Cin), w (k, k, Cin, Cout) -> (out, out, Cout)."""
    n, k = x.shape[0], w.shape[0]
    out = -(-n // stride)
    total = max((out - 1) * stride + k - n, 0)
    padded = np.zeros((n + total, n + total, x.shape[2]))
    padded[total // 2 : total // 2 + n, total // 2 : total // 2 + n] = x
    y = np.zeros((out, out, w.shape[3]))
    for i in range(out):
        for j in range(out):
            patch = padded[i * stride : i * stride + k, j * stride : j * stride + k]
            y[i, j] = np.einsum("abc,abcd->d", patch, w)
    return y


def _tf_same_conv_transpose(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """TF conv2d_transpose 'SAME' by loops: scatter every input pixel's kernel into the full output, then drop the
    forward conv's 'SAME' padding (smaller half before). w (k, k, Cout, Cin)."""
    n, k = x.shape[0], w.shape[0]
    full = np.zeros(((n - 1) * stride + k, (n - 1) * stride + k, w.shape[2]))
    for i in range(n):
        for j in range(n):
            full[i * stride : i * stride + k, j * stride : j * stride + k] += np.einsum("abdc,c->abd", w, x[i, j])
    before = (k - stride) // 2
    return full[before : before + n * stride, before : before + n * stride]


@pytest.mark.parametrize("stride", [1, 2])
def test_convolutions_pad_like_tensorflow(stride: int):
    rng = np.random.default_rng(stride)
    x = rng.standard_normal((6, 6, 2))
    conv = SameConv2d(2, 3, 4, stride)
    w = rng.standard_normal((4, 4, 2, 3))
    conv.weight.data = torch.from_numpy(w.transpose(3, 2, 0, 1)).float()
    got = conv(torch.from_numpy(x.transpose(2, 0, 1)[None]).float())[0].detach().numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(got, _tf_same_conv(x, w, stride), atol=1e-4)
    deconv = SameConvTranspose2d(2, 3, 4, stride)
    wt = rng.standard_normal((4, 4, 3, 2))
    deconv.weight.data = torch.from_numpy(wt.transpose(3, 2, 0, 1)).float()
    got = deconv(torch.from_numpy(x.transpose(2, 0, 1)[None]).float())[0].detach().numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(got, _tf_same_conv_transpose(x, wt, stride), atol=1e-4)


def test_tf_names_follow_tf_slim_and_import_round_trips():
    network = ResFCN256(base_channels=4).eval()
    names = tf_variable_names(network)
    assert (
        len(set(names.values()))
        == len(names)
        == len(network.state_dict()) - sum(key.endswith("num_batches_tracked") for key in network.state_dict())
    )
    assert "resfcn256/Conv/BatchNorm/moving_variance" in names
    assert "resfcn256/resBlock/shortcut/weights" in names and "resfcn256/resBlock_1/shortcut/weights" not in names
    assert "resfcn256/resBlock_9/Conv_2/weights" in names and "resfcn256/resBlock_9/Conv_2/BatchNorm/beta" not in names
    assert "resfcn256/Conv2d_transpose_16/BatchNorm/gamma" in names
    assert "resfcn256/Conv2d_transpose_17/weights" not in names
    source = ResFCN256(base_channels=4)
    for buffer in source.buffers():
        buffer.data = torch.rand_like(buffer.data) + 0.5 if buffer.is_floating_point() else buffer.data
    arrays = export_tf_arrays(source)
    assert arrays["resfcn256/Conv/weights"].shape == (4, 4, 3, 4)  # HWIO
    assert arrays["resfcn256/Conv2d_transpose_16/weights"].shape == (4, 4, 3, 3)
    import_tf_weights(network, {**arrays, "global_step": np.array(3)})
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(network(x), source.eval()(x))
    del arrays["resfcn256/resBlock_3/Conv_1/weights"]
    with pytest.raises(CheckpointError, match="resBlock_3/Conv_1/weights"):
        import_tf_weights(network, arrays)


def test_weighted_loss_is_tf_mean_squared_error_with_weights():
    rng = np.random.default_rng(0)
    pred, target = rng.random((2, 3, 4, 4)), rng.random((2, 3, 4, 4))
    weights = rng.choice([0.0, 3.0, 4.0, 16.0], size=(4, 4))
    expected = sum(
        weights[i, j] * (pred[b, c, i, j] - target[b, c, i, j]) ** 2
        for b in range(2)
        for c in range(3)
        for i in range(4)
        for j in range(4)
    ) / (2 * 3 * np.count_nonzero(weights))
    got = WeightedPositionMapLoss()(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(weights))
    assert got.item() == pytest.approx(expected, rel=1e-9)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _block(entries: list[tuple[bytes, bytes]], restart_every: int = 4) -> bytes:
    body, restarts, previous = bytearray(), [], b""
    for number, (key, value) in enumerate(entries):
        shared = 0
        if number % restart_every:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(body))
        body += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    body += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(body)


def _proto(fields: list[tuple[int, int, object]]) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _varint(number << 3 | wire)
        out += _varint(value) if wire == 0 else _varint(len(value)) + value if wire == 2 else struct.pack("<I", value)
    return bytes(out)


def _write_tf_checkpoint(prefix: Path, arrays: dict[str, np.ndarray]) -> None:
    """A TF V2 checkpoint written from the format's description (LevelDB table of BundleEntryProto + raw data)."""
    data, entries = bytearray(), [(b"", _proto([(1, 0, 1)]))]
    for name in sorted(arrays):
        raw = np.ascontiguousarray(arrays[name], "<f4").tobytes()
        dims = b"".join(_proto([(2, 2, _proto([(1, 0, d)]))]) for d in arrays[name].shape)
        entry = [(1, 0, 1), (2, 2, dims), (4, 0, len(data)), (5, 0, len(raw)), (6, 5, 0)]
        entries.append((name.encode(), _proto(entry)))
        data += raw
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))
    table = bytearray()
    block = _block(entries)
    table += block + b"\x00\x00\x00\x00\x00"
    meta = _block([])
    meta_offset = len(table)
    table += meta + b"\x00\x00\x00\x00\x00"
    index = _block([(entries[-1][0] + b"\xff", _varint(0) + _varint(len(block)))])
    index_offset = len(table)
    table += index + b"\x00\x00\x00\x00\x00"
    handles = _varint(meta_offset) + _varint(len(meta)) + _varint(index_offset) + _varint(len(index))
    table += handles + b"\x00" * (40 - len(handles)) + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(table))


def test_tf_checkpoint_is_read_without_tensorflow(tmp_path):
    """Not the released file (it is not on this machine): a checkpoint written from the format's description."""
    source = ResFCN256(base_channels=2)
    arrays = {**export_tf_arrays(source), "global_step": np.array(7.0)}
    _write_tf_checkpoint(tmp_path / "256_256_resfcn256_weight", arrays)
    read = load_tf_arrays(tmp_path / "256_256_resfcn256_weight")
    assert read.keys() == arrays.keys()
    assert all(np.array_equal(read[k], arrays[k]) for k in arrays)
    network = ResFCN256(base_channels=2).eval()
    import_tf_weights(network, read)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(network(x), source.eval()(x))
    (tmp_path / "bad.index").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint index"):
        load_tf_arrays(tmp_path / "bad")
