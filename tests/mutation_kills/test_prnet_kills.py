"""PRNet's face crop against the rule in src/models/components/prnet_crop.py's docstring, worked out by hand: a square
of side 1.58 x mean(box width, height) around the box centre, raised by 0.1 x side; crop pixel u of an S-pixel crop
sees frame x = x0 + (u + 0.5) side / S - 0.5, and the position map goes back by the same rule (z times side / S)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from src.models.components.prnet_crop import crop_to_frame, frame_to_crop, landmark_box, prnet_crop_box


def test_crop_box_of_a_landmark_box_by_hand() -> None:
    # box 40 wide, 60 high: mean extent 50, side 79, centre (30, 50) raised by 7.9
    assert prnet_crop_box(np.array([10.0, 20.0, 50.0, 80.0])) == pytest.approx((-9.5, 2.6, 79.0))
    # jitter: centre + (0.1, -0.2) x 50, side x 1.1 = 86.9, raised by 8.69
    jittered = prnet_crop_box(np.array([10.0, 20.0, 50.0, 80.0]), (0.1, -0.2, 1.1))
    assert jittered == pytest.approx((35 - 43.45, 50 - 10 - 8.69 - 43.45, 86.9))
    points = np.array([[3.0, 9.0], [7.0, 1.0]] + [[5.0, 5.0]] * 66 + [[100.0, 100.0]])  # the 69th is ignored
    assert landmark_box(points).tolist() == [3.0, 1.0, 7.0, 9.0]


def test_frame_to_crop_and_back_follow_the_pixel_centre_rule() -> None:
    x0, y0, side, size = -9.5, 2.6, 79.0, 32
    matrix = frame_to_crop(x0, y0, side, size)
    for u, v in [(0, 0), (31, 5), (12.25, 30)]:
        x, y = x0 + (u + 0.5) * side / size - 0.5, y0 + (v + 0.5) * side / size - 0.5  # the docstring's rule
        assert matrix @ np.array([x, y, 1.0]) == pytest.approx([u, v])
    crop = np.zeros((size, size, 3), np.float32)
    crop[..., 0], crop[..., 1] = np.meshgrid(np.arange(size), np.arange(size))
    crop[..., 2] = 4.0
    frame = crop_to_frame(crop, x0, y0, side)
    assert frame[3, 7, 0] == pytest.approx(x0 + 7.5 * side / size - 0.5, abs=1e-4)
    assert frame[3, 7, 1] == pytest.approx(y0 + 3.5 * side / size - 0.5, abs=1e-4)
    assert frame[3, 7, 2] == pytest.approx(4.0 * side / size)


def test_a_stride_one_block_that_changes_width_has_a_projection_shortcut() -> None:
    """The original resBlock projects the shortcut when the stride is not 1 OR the width changes (an identity cannot
    add 4 channels to 8)."""
    import torch

    from src.models.components.prnet_resfcn import ResBlock

    block = ResBlock(4, 8, 3, 1, 0.5).eval()
    assert isinstance(block.shortcut, torch.nn.Conv2d)
    assert block(torch.rand(1, 4, 6, 6)).shape == (1, 8, 6, 6)


def test_uv_files_are_the_original_uv_data_names_and_the_ones_written(tmp_path) -> None:
    """../shared/reference/faces2one.md (Data/uv-data): the original's five file names."""
    from src.models.components.prnet_uv import UV_FILES, build_uv_data, write_uv_data

    original = {"uv_face_mask.png", "uv_weight_mask.png", "uv_kpt_ind.txt", "face_ind.txt", "triangles.txt"}
    assert set(UV_FILES) == original
    mask = np.zeros((64, 64), bool)
    mask[4:60, 4:60] = True
    write_uv_data(tmp_path, build_uv_data(mask, _region_keypoints()))
    assert {path.name for path in tmp_path.iterdir()} == set(UV_FILES)


def _circle(count: int, centre_row: float, centre_col: float, radius: float) -> list[list[float]]:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return [[centre_row + radius * np.sin(a), centre_col + radius * np.cos(a)] for a in angles]


def _region_keypoints() -> np.ndarray:
    """68 (row, col) texels: jaw and brows apart, eyes, nose and mouth as separate small rings."""
    points = [[56.0, 8.0 + 3 * i] for i in range(17)]  # jaw 0-16
    points += [[10.0, 14.0 + 2 * i] for i in range(5)] + [[10.0, 38.0 + 2 * i] for i in range(5)]  # brows 17-26
    points += [[24.0, 32.0]] * 4  # 27-30: bridge (27 is the polygon's top)
    points += _circle(5, 32.0, 32.0, 4.0)  # nostrils 31-35
    points += _circle(6, 18.0, 18.0, 3.0) + _circle(6, 18.0, 46.0, 3.0)  # eyes 36-47
    points += _circle(12, 46.0, 32.0, 7.0) + _circle(8, 46.0, 32.0, 3.0)  # mouth 48-67
    return np.round(np.array(points)).astype(np.int64)


def test_weight_mask_marks_eyes_nose_and_mouth_as_features() -> None:
    """The module docstring's weights: 64 on the eye, nose and mouth polygons, 48 on the rest of the face, 255 on the
    keypoints' X marks. The texels at each region's centre (not keypoints) must all be 64; a cheek texel 48."""
    from src.models.components.prnet_uv import WEIGHT_FACE, WEIGHT_FEATURES, weight_mask

    mask = np.zeros((64, 64), bool)
    mask[2:62, 2:62] = True
    weights = weight_mask(mask, _region_keypoints())
    for row, col in [(18, 18), (18, 46), (30, 32), (46, 32)]:  # eyes, nose (inside the bridge-nostril polygon), mouth
        assert weights[row, col] == WEIGHT_FEATURES == 64, (row, col)
    assert weights[36, 10] == WEIGHT_FACE == 48
    assert weights[0, 0] == 0


def test_a_tensor_of_an_unsupported_dtype_is_refused(tmp_path) -> None:
    """A bundle entry of DT_HALF (19, not in DTYPES) without slices must be refused, not read as float32."""
    from src.models.components.prnet_tf_bundle import read_tf_checkpoint
    from src.utils.errors import CheckpointError
    from tests.prnet.test_prnet_network import _block, _proto, _varint

    raw = np.zeros(4, "<f2").tobytes()
    dims = _proto([(2, 2, _proto([(1, 0, 4)]))])
    entries = [(b"", _proto([(1, 0, 1)])), (b"w", _proto([(1, 0, 19), (2, 2, dims), (4, 0, 0), (5, 0, len(raw))]))]
    prefix = tmp_path / "model"
    Path(f"{prefix}.data-00000-of-00001").write_bytes(raw)
    block = _block(entries)
    table = bytearray(block + b"\x00" * 5)
    meta = _block([])
    meta_offset = len(table)
    table += meta + b"\x00" * 5
    index = _block([(b"w\xff", _varint(0) + _varint(len(block)))])
    index_offset = len(table)
    table += index + b"\x00" * 5
    handles = _varint(meta_offset) + _varint(len(meta)) + _varint(index_offset) + _varint(len(index))
    table += handles + b"\x00" * (40 - len(handles)) + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(table))
    with pytest.raises(CheckpointError, match="tensor w: unsupported dtype"):
        read_tf_checkpoint(prefix)


def test_the_error_picture_is_red_at_5_percent() -> None:
    """The |error| column ("red = 5%"): (e, 1 - e, 1 - e) with e = |error| / 5 % of the position range, clipped: cyan
    at no error, grey at 2.5 %, full red at 5 % or more, cyan outside the UV face mask (a model stand-in with only the
    attributes `_row` reads)."""
    from types import SimpleNamespace

    import torch

    from src.models.prnet import PRNetModule

    max_pos, size = 2.0, 4
    face = torch.ones(size, size)
    face[3, 3] = 0.0
    stand_in = SimpleNamespace(max_pos=max_pos, uv_face_mask=face, uv_keypoints=torch.tensor([0]), map_size=size)
    truth = torch.zeros(3, size, size)
    truth[0, 0, 1], truth[1, 0, 2], truth[2, 0, 3] = 0.025 * max_pos, 0.05 * max_pos, 0.2 * max_pos
    batch = {"image": torch.zeros(1, 3, size, size), "posmap": truth[None]}
    outputs = {"posmap": torch.zeros(1, 3, size, size)}
    views = dict(PRNetModule._row(stand_in, batch, outputs, 0))  # type: ignore[arg-type]
    error = views["|error| (red = 5%)"]
    assert error[0, :4].tolist() == [[0, 255, 255], [128, 128, 128], [255, 0, 0], [255, 0, 0]]
    assert error[3, 3].tolist() == [0, 255, 255]  # outside the mask: no error shown
