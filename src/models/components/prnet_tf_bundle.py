"""Read a TensorFlow (V2) checkpoint without TensorFlow: PRNet's released weights are one
(`256_256_resfcn256_weight.index` + `.data-00000-of-00001`).

Format (TensorFlow's tensor bundle, written by tf.train.Saver since TF 1.0):
- `<prefix>.index` is a LevelDB-format table (uncompressed blocks): a 48-byte footer (metaindex and index block
  handles as varints, padding, then the magic 0xdb4775248b80fb57), an index block whose values are the handles of
  the data blocks, data blocks of prefix-compressed entries (shared key bytes, unshared bytes, value length, each a
  varint32) closed by a restart array, each block followed by a 5-byte trailer (compression type, crc32).
- Each key is a tensor name (the empty key holds the BundleHeaderProto); its value a BundleEntryProto: dtype (field
  1), shape (2: TensorShapeProto with repeated dim {size}), shard_id (3), offset (4), size (5), crc32c (6).
- `<prefix>.data-<shard>-of-<count>` holds each tensor's raw little-endian bytes at (offset, size).
Only what checkpoints of float networks need is supported: dtypes float32 / float64 / int32 / int64, whole
(unsliced) tensors, uncompressed index blocks; anything else is one CheckpointError naming the tensor.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from src.utils.errors import CheckpointError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _block(data: bytes, offset: int, size: int, path: Path) -> list[tuple[bytes, bytes]]:
    """(key, value) entries of one table block."""
    if offset + size + 5 > len(data):
        raise CheckpointError(f"{path}: truncated index (a block runs past the end)")
    if data[offset + size] != 0:
        raise CheckpointError(f"{path}: compressed index blocks are not supported (type {data[offset + size]})")
    block = data[offset : offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    entries, position, key = [], 0, b""
    while position < end:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        length, position = _varint(block, position)
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        entries.append((key, block[position : position + length]))
        position += length
    return entries


def _fields(message: bytes) -> dict[int, list]:
    """Protobuf wire format -> {field number: [values]} (varints as ints, length-delimited as bytes)."""
    out: dict[int, list] = {}
    position = 0
    while position < len(message):
        tag, position = _varint(message, position)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, position = _varint(message, position)
        elif wire == 2:
            length, position = _varint(message, position)
            value, position = message[position : position + length], position + length
        elif wire == 5:
            value, position = struct.unpack_from("<I", message, position)[0], position + 4
        elif wire == 1:
            value, position = struct.unpack_from("<Q", message, position)[0], position + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def read_tf_checkpoint(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """{tensor name: array} of every tensor of a TF V2 checkpoint `prefix` (the path without .index)."""
    prefix = Path(prefix)
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise CheckpointError(f"{index}: not found (give the checkpoint prefix, without .index)")
    data = index.read_bytes()
    if len(data) < FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise CheckpointError(f"{index}: not a TensorFlow checkpoint index (no table magic)")
    footer = data[len(data) - FOOTER_SIZE :]
    _, position = _varint(footer, 0)
    _, position = _varint(footer, position)  # metaindex handle (unused)
    index_offset, position = _varint(footer, position)
    index_size, _ = _varint(footer, position)
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block(data, index_offset, index_size, index):
        offset, position = _varint(handle, 0)
        size, _ = _varint(handle, position)
        entries += _block(data, offset, size, index)
    header = dict(entries).get(b"")
    shards = 1
    if header is not None:
        shards = int(_fields(header).get(1, [1])[0])
    files: dict[int, bytes] = {}
    tensors = {}
    for key, value in entries:
        if not key:
            continue
        name = key.decode("utf-8")
        entry = _fields(value)
        dtype = DTYPES.get(int(entry.get(1, [0])[0]))
        if dtype is None or 7 in entry:
            raise CheckpointError(f"{index}: tensor {name}: unsupported dtype or sliced tensor")
        shape = []
        for shape_bytes in entry.get(2, []):
            for dim in _fields(shape_bytes).get(2, []):
                shape.append(int(_fields(dim).get(1, [0])[0]))
        shard = int(entry.get(3, [0])[0])
        if shard not in files:
            data_file = Path(f"{prefix}.data-{shard:05d}-of-{shards:05d}")
            if not data_file.is_file():
                raise CheckpointError(f"{data_file}: not found (the checkpoint's data shard)")
            files[shard] = data_file.read_bytes()
        offset, size = int(entry.get(4, [0])[0]), int(entry.get(5, [0])[0])
        raw = files[shard][offset : offset + size]
        if len(raw) != size or size != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
            raise CheckpointError(f"{index}: tensor {name}: {size} bytes do not fit shape {shape} of {dtype.__name__}")
        tensors[name] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()
    return tensors
