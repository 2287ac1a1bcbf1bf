"""PRNet's face crop against the rule in src/models/components/prnet_crop.py's docstring, worked out by hand: a square
of side 1.58 x mean(box width, height) around the box centre, raised by 0.1 x side; crop pixel u of an S-pixel crop
sees frame x = x0 + (u + 0.5) side / S - 0.5, and the position map goes back by the same rule (z times side / S)."""

from __future__ import annotations

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
