import cv2
import numpy as np
import pytest
import torch

from src.io.rgbd_layout import DepthEncoding
from src.utils.visualize import (
    LEGEND_HEIGHT,
    SILHOUETTE_ERROR_RGB,
    depth_to_color,
    error_map,
    make_grid,
    rgbd_to_numpy,
    turbo,
    unit_to_uint8,
)


def test_turbo_polynomial_follows_opencv_turbo_table():
    ramp = np.arange(256, dtype=np.uint8)
    reference = cv2.applyColorMap(ramp[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1].astype(int)  # BGR -> RGB
    mine = turbo(ramp / 255.0).astype(int)
    diff = np.abs(reference - mine)
    # The published polynomial is a fit of the table: close everywhere, not identical.
    assert diff.mean() < 8 and diff.max() < 40
    # Dark low end turning blue, red high end, green in the middle.
    assert mine[0].sum() < 150 and mine[40, 2] > mine[40, 0] and mine[255, 0] > mine[255, 2] and mine[128, 1] > 200


def test_depth_map_is_black_on_background_and_near_is_red():
    depth = np.zeros((8, 8), np.float32)
    depth[2, 2], depth[5, 5] = 500.0, 700.0
    image = depth_to_color(depth, near_mm=400, far_mm=800)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [0, 0, 0]
    near, far = image[2, 2].astype(int), image[5, 5].astype(int)
    assert near[0] > near[2] and far[2] > far[0]
    farthest = depth_to_color(np.where(depth > 0, 800.0, 0.0), near_mm=400, far_mm=800)[2, 2].astype(int)
    assert farthest[2] > 120  # the far end of the range stays distinguishable from background black


def test_fixed_range_gives_same_colour_for_same_mm():
    a = np.full((4, 4), 600.0, np.float32)
    b = a.copy()
    b[0, 0] = 500.0  # changes b's automatic range, not the fixed one
    fixed_a = depth_to_color(a, near_mm=500, far_mm=1000)
    fixed_b = depth_to_color(b, near_mm=500, far_mm=1000)
    assert (fixed_a[1:, 1:] == fixed_b[1:, 1:]).all()
    assert not (depth_to_color(a)[1, 1] == depth_to_color(b)[1, 1]).all()
    legend = depth_to_color(a, 500, 1000, legend=True)
    assert legend.shape == (4 + LEGEND_HEIGHT, 4, 3)
    with pytest.raises(ValueError, match="empty range"):
        depth_to_color(a, near_mm=700, far_mm=600)


def test_error_map_scale_silhouette_and_legend():
    true = np.zeros((10, 10), np.float32)
    true[2:8, 2:8] = 600.0
    pred = true.copy()
    pred[2, 2] = 610.0  # 10 mm error
    pred[7, 7] = 0.0  # missing in prediction: silhouette error
    image, scale = error_map(pred, true, max_error_mm=10.0)
    assert scale == 10.0 and image.shape == (10 + LEGEND_HEIGHT, 10, 3)
    assert tuple(image[7, 7]) == SILHOUETTE_ERROR_RGB
    assert image[0, 0].tolist() == [0, 0, 0]
    assert image[2, 2, 0] > image[2, 2, 2]  # max error -> red end
    zero = image[3, 3].astype(int)
    assert zero[2] > zero[0] and zero[2] > 120  # zero error -> dark blue, clearly not background black
    assert image[2, 2].astype(int).sum() > 150
    _, auto = error_map(pred, true, legend=False)
    assert 0 < auto <= 10.0


def test_make_grid_places_cells_and_labels():
    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((10, 30), 128, np.uint8)
    grid = make_grid([[red, grey], [grey, red]], col_labels=["a", "b"], row_labels=["r0", "r1"], pad=2)
    assert grid.dtype == np.uint8 and grid.ndim == 3
    # Two rows of the tallest cell (20) + pads + the label band.
    assert grid.shape[0] == 20 + 2 * (20 + 2) + 2
    # Label band carries text pixels.
    assert grid[:20].max() > 0
    # The red cell sits somewhere in the first row.
    assert ((grid[..., 0] == 255) & (grid[..., 1] == 0)).sum() == 2 * 20 * 30
    with pytest.raises(ValueError, match="row labels"):
        make_grid([[red]], row_labels=["x", "y"])
    with pytest.raises(ValueError, match="no images"):
        make_grid([])


def test_rgbd_tensor_to_uint8_and_mm_through_depth_encoding():
    encoding = DepthEncoding(near_mm=480.0, far_mm=760.0, bits=8)
    levels = np.array([[0, 1], [128, 255]], dtype=np.uint8)
    depth_unit = encoding.levels_to_unit(levels)
    rgbd = torch.full((4, 2, 2), -1.0)
    rgbd[0] = 1.0
    rgbd[3] = torch.from_numpy(depth_unit)
    rgb, depth_mm = rgbd_to_numpy(rgbd, encoding)
    assert rgb.shape == (2, 2, 3) and rgb[..., 0].tolist() == [[255, 255], [255, 255]] and rgb[..., 1].max() == 0
    np.testing.assert_allclose(depth_mm, encoding.decode(levels))
    assert depth_mm[0, 0] == 0.0 and depth_mm[0, 1] == pytest.approx(480.0)
    feature = unit_to_uint8(torch.tensor([[[-1.0, 1.0]]]))
    assert feature.tolist() == [[0, 255]]
    with pytest.raises(ValueError, match="4xHxW"):
        rgbd_to_numpy(torch.zeros(3, 2, 2), encoding)
