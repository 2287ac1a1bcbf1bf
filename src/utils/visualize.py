"""Images for people: depth colour maps, error heat maps, labelled grids, network tensors -> uint8 / mm.

Used by the training sample-grid callback and by the evaluation report, so a depth map or an error map looks
the same (same colours, same fixed mm range when one is given) wherever it is shown.

Colours: the Turbo colormap (Mikhailov, Google AI 2019) evaluated from its published degree-5 polynomial fit,
so no lookup table or plotting package is needed. Background (no depth) is black everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from src.io.rgbd_layout import DepthEncoding

# Published polynomial fit of Turbo: channel(t) = sum_k c_k t^k, k = 0..5, t in [0, 1].
_TURBO_COEFFS = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],  # red
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],  # green
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],  # blue
    ],
    dtype=np.float64,
)

# Marks pixels where exactly one of prediction / truth has depth (a silhouette error, no mm value exists).
SILHOUETTE_ERROR_RGB = (255, 0, 255)
LEGEND_HEIGHT = 16
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def turbo(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (clipped) to RGB uint8 with the Turbo polynomial; output shape (..., 3)."""
    t = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    powers = np.stack([t**k for k in range(6)], axis=-1)  # (..., 6)
    rgb = np.clip(powers @ _TURBO_COEFFS.T, 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


# Maps skip the bottom 5 % of Turbo: the fit's low end (35, 23, 27) is close to the black of background pixels,
# so the farthest face pixels (or zero error) would read as "no data". From 5 % on it is a clear dark blue.
MAP_LOW_END = 0.05
# (256, 3) uint8; per-pixel lookups go through this table (fast on big images).
_TURBO_LUT = turbo(np.linspace(MAP_LOW_END, 1.0, 256))


def _colorize_unit(unit: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """unit in [0, 1] -> RGB via the 256-entry table (Turbo from MAP_LOW_END to 1); invalid pixels black."""
    index = np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.intp)
    out = _TURBO_LUT[index]
    out[~valid] = 0
    return out


def depth_range_mm(depth_mm: np.ndarray) -> tuple[float, float]:
    """(near, far) of the foreground (depth > 0): the automatic range when no fixed range is given."""
    d = np.asarray(depth_mm, dtype=np.float32)
    fg = d[(d > 0) & np.isfinite(d)]
    if fg.size == 0:
        return 0.0, 1.0
    near, far = float(fg.min()), float(fg.max())
    return (near, far) if far > near else (near, near + 1.0)


def depth_to_color(
    depth_mm: np.ndarray,
    near_mm: float | None = None,
    far_mm: float | None = None,
    legend: bool = False,
) -> np.ndarray:
    """HxW depth in mm (0 = background) -> HxWx3 uint8 RGB; near = red end of Turbo, far = blue end.

    Pass a fixed (near_mm, far_mm) (e.g. the dataset's DepthEncoding range) so maps of different frames and of
    prediction vs truth use the same colours; otherwise the frame's own foreground range is used.
    `legend` appends a colour bar strip (LEGEND_HEIGHT px) labelled with the range in mm.
    """
    d = np.asarray(depth_mm, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth_to_color: expected an HxW depth map, got shape {d.shape}")
    auto_near, auto_far = depth_range_mm(d)
    near = auto_near if near_mm is None else float(near_mm)
    far = auto_far if far_mm is None else float(far_mm)
    if not far > near:
        raise ValueError(f"depth_to_color: empty range near {near} mm >= far {far} mm")
    valid = (d > 0) & np.isfinite(d)
    unit = 1.0 - (d - near) / (far - near)  # near -> 1 (red), far -> 0 (blue)
    image = _colorize_unit(np.nan_to_num(unit), valid)
    if legend:
        image = add_colorbar(image, f"{near:.0f}", f"{far:.0f} mm", reverse=True)
    return image


def error_map(
    pred_depth_mm: np.ndarray,
    true_depth_mm: np.ndarray,
    max_error_mm: float | None = None,
    legend: bool = True,
) -> tuple[np.ndarray, float]:
    """|pred - true| in mm as a Turbo heat map (0 = blue, max_error_mm = red); returns (image, scale max).

    Pixels where both are background are black; where only one side has depth (wrong silhouette) they are
    SILHOUETTE_ERROR_RGB (magenta), because no mm error exists there. Without `max_error_mm` the scale is the
    99th percentile of the error so one outlier does not wash out the map.
    """
    pred = np.asarray(pred_depth_mm, dtype=np.float32)
    true = np.asarray(true_depth_mm, dtype=np.float32)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"error_map: depth maps must be equal HxW, got {pred.shape} and {true.shape}")
    pred_fg, true_fg = pred > 0, true > 0
    both = pred_fg & true_fg
    err = np.abs(pred - true)
    if max_error_mm is None:
        max_error_mm = float(np.percentile(err[both], 99)) if both.any() else 1.0
    scale = max(float(max_error_mm), 1e-6)
    image = _colorize_unit(err / scale, both)
    image[pred_fg ^ true_fg] = SILHOUETTE_ERROR_RGB
    if legend:
        image = add_colorbar(image, "0", f"{scale:.1f} mm")
    return image, scale


def rgb_error_map(pred_rgb: np.ndarray, true_rgb: np.ndarray, legend: bool = True) -> np.ndarray:
    """Mean absolute colour error per pixel (0..255 levels) as a heat map scaled to 0..64 levels."""
    diff = np.abs(np.asarray(pred_rgb, np.float32) - np.asarray(true_rgb, np.float32)).mean(axis=-1)
    scale = 64.0
    image = _colorize_unit(diff / scale, np.ones(diff.shape, dtype=bool))
    return add_colorbar(image, "0", f"{scale:.0f} lv") if legend else image


def add_colorbar(image: np.ndarray, low_label: str, high_label: str, reverse: bool = False) -> np.ndarray:
    """Append a Turbo colour bar with end labels below `image` (the legend of a heat / depth map)."""
    width = image.shape[1]
    ramp = np.linspace(1.0, 0.0, width) if reverse else np.linspace(0.0, 1.0, width)
    bar = np.repeat(_colorize_unit(ramp, np.ones(width, dtype=bool))[None], LEGEND_HEIGHT, axis=0)
    scale = _font_scale(LEGEND_HEIGHT)
    _put_outlined_text(bar, low_label, (2, LEGEND_HEIGHT - 4), scale)
    text_w = cv2.getTextSize(high_label, _FONT, scale, 1)[0][0]
    _put_outlined_text(bar, high_label, (max(2, width - text_w - 2), LEGEND_HEIGHT - 4), scale)
    return np.concatenate([to_rgb(image), bar], axis=0)


def _font_scale(band_height: int) -> float:
    return max(0.3, band_height / 40.0)


def _put_outlined_text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White text with a black outline: readable on any colour of the bar or the image."""
    cv2.putText(image, text, origin, _FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """HxW or HxWx1 or HxWx3 uint8 -> HxWx3 uint8 (grey replicated)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise ValueError(f"expected an HxW, HxWx1 or HxWx3 image, got shape {img.shape}")


def make_grid(
    rows: Sequence[Sequence[np.ndarray]],
    col_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    pad: int = 2,
    label_height: int = 20,
) -> np.ndarray:
    """Tile images (uint8 HxW or HxWx3, any sizes) into one RGB grid with text labels.

    Cells smaller than the largest are centred on black, so a depth map with a legend strip lines up with a
    plain image of the same width. Column labels go in a band on top, row labels in a band on the left.
    """
    if not rows or not any(len(r) for r in rows):
        raise ValueError("make_grid: no images given")
    cells = [[to_rgb(img) for img in row] for row in rows]
    cell_h = max(img.shape[0] for row in cells for img in row)
    cell_w = max(img.shape[1] for row in cells for img in row)
    n_cols = max(len(row) for row in cells)
    if col_labels is not None and len(col_labels) > n_cols:
        raise ValueError(f"make_grid: {len(col_labels)} column labels for {n_cols} columns")
    if row_labels is not None and len(row_labels) != len(cells):
        raise ValueError(f"make_grid: {len(row_labels)} row labels for {len(cells)} rows")
    scale = _font_scale(label_height)
    top = label_height if col_labels else 0
    left = 0
    if row_labels:
        left = max(cv2.getTextSize(str(t), _FONT, scale, 1)[0][0] for t in row_labels) + 2 * pad + 4
    height = top + len(cells) * (cell_h + pad) + pad
    width = left + n_cols * (cell_w + pad) + pad
    grid = np.zeros((height, width, 3), dtype=np.uint8)
    for r, row in enumerate(cells):
        y0 = top + pad + r * (cell_h + pad)
        for c, img in enumerate(row):
            x0 = left + pad + c * (cell_w + pad)
            oy, ox = (cell_h - img.shape[0]) // 2, (cell_w - img.shape[1]) // 2
            grid[y0 + oy : y0 + oy + img.shape[0], x0 + ox : x0 + ox + img.shape[1]] = img
        if row_labels:
            text_h = cv2.getTextSize(str(row_labels[r]), _FONT, scale, 1)[0][1]
            origin = (pad + 2, y0 + cell_h // 2 + text_h // 2)
            cv2.putText(grid, str(row_labels[r]), origin, _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    for c, text in enumerate(col_labels or []):
        x0 = left + pad + c * (cell_w + pad)
        text = _fit_text(str(text), cell_w, scale)
        text_w, text_h = cv2.getTextSize(text, _FONT, scale, 1)[0]
        origin = (x0 + max(0, (cell_w - text_w) // 2), (label_height + text_h) // 2)
        cv2.putText(grid, text, origin, _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return grid


def _fit_text(text: str, max_width: int, scale: float) -> str:
    """Shorten a label with an ellipsis so it stays inside its cell."""
    while len(text) > 1 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > max_width:
        text = text[:-2] + "~"
    return text


def unit_to_uint8(tensor: torch.Tensor | np.ndarray) -> np.ndarray:
    """[-1, 1] image (CxHxW tensor or array, C = 1 or 3) -> HxW or HxWx3 uint8 (values clipped)."""
    arr = tensor.detach().float().cpu().numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"expected a 1xHxW or 3xHxW image, got shape {arr.shape}")
    levels = np.round((np.clip(arr, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return levels[0] if levels.shape[0] == 1 else np.ascontiguousarray(levels.transpose(1, 2, 0))


def rgbd_to_numpy(rgbd: torch.Tensor | np.ndarray, encoding: DepthEncoding) -> tuple[np.ndarray, np.ndarray]:
    """One 4xHxW RGBD network tensor in [-1, 1] -> (HxWx3 uint8 RGB, HxW float32 depth mm, 0 = background).

    Depth goes through the dataset's DepthEncoding (unit -> levels -> mm), so background (-1) is exactly 0 mm
    and foreground depth is quantised like the files it was trained on.
    """
    arr = rgbd.detach().float().cpu().numpy() if isinstance(rgbd, torch.Tensor) else np.asarray(rgbd, np.float32)
    if arr.ndim != 3 or arr.shape[0] != 4:
        raise ValueError(f"expected a 4xHxW RGBD tensor (R, G, B, depth), got shape {arr.shape}")
    return unit_to_uint8(arr[:3]), encoding.unit_to_mm(arr[3])
