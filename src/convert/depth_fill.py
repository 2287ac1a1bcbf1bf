"""Depth hole filling for Kinect-like depth maps of faces: a cascadic multigrid membrane / thin-plate fill.

The original conversion filled holes with exemplar inpainting in Python loops (seconds to minutes per frame).
A face is a smooth surface, so the holes a time-of-flight sensor leaves on it (dark brows and pupils, grazing
cheeks, nostrils, flying-pixel gaps) are best filled by the smoothest surface that meets the valid depth
around them. We solve that variational problem directly:

- ``harmonic``: the membrane, Laplace(u) = 0 in the holes (flat fills, never overshoots);
- ``biharmonic`` (default): the thin plate, Laplace^2(u) = 0, which also continues the slope at the hole
  border and reproduces every quadratic patch exactly (a cheek or the side of a nose is locally quadratic).

Both are solved coarse-to-fine: a push-pull pyramid of (depth, weight) pulls the valid depth down to a level
where every hole is covered, then each finer level starts from the upsampled coarser solution and runs a few
relaxation sweeps on its hole pixels only (red-black SOR for the membrane, damped Jacobi for the thin plate).
Each level costs a few OpenCV convolutions of the window around the holes, so a frame takes milliseconds.

Holes are filled only where the caller asks (`fill_mask`): the face region. The solve itself spans every pixel
without usable depth around them (as OpenCV's inpainting does), so a hole that runs out of the face region still
takes the depth on its far side into account; holes are never read as 0 mm, and depth far behind the face
(`far_mm`) is background that neither anchors the fill nor gets changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

METHODS = ("biharmonic", "harmonic", "telea", "ns", "none")
# The finest level relaxes only within this many pixels of the requested holes.
FOCUS_PX = 4


@dataclass(frozen=True)
class FillSettings:
    """Solver knobs; the defaults were chosen on FaceWorld frames (bench/depth_fill.py)."""

    method: str = "biharmonic"
    fine_iterations: int = 4  # sweeps on the finest level (the pyramid has already placed the low frequencies)
    coarse_iterations: int = 10  # sweeps on every coarser level (cheap: each level has 4x fewer pixels)
    sor_omega: float = 1.6  # over-relaxation of the membrane's red-black Gauss-Seidel
    jacobi_omega: float = 0.6  # damping of the thin plate's Jacobi (convergent below 0.625 for this stencil)
    opencv_radius: int = 3  # inpaintRadius for the OpenCV baselines (telea / ns)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"depth fill method must be one of {METHODS}, got {self.method!r}")
        if self.fine_iterations < 0 or self.coarse_iterations < 0:
            raise ValueError("depth fill iterations must be >= 0")
        if not 0 < self.jacobi_omega <= 0.625:
            raise ValueError(f"depth fill jacobi_omega must be in (0, 0.625] to converge, got {self.jacobi_omega}")
        if not 0 < self.sor_omega < 2:
            raise ValueError(f"depth fill sor_omega must be in (0, 2), got {self.sor_omega}")


def fill_depth(
    depth_mm: np.ndarray,
    fill_mask: np.ndarray | None = None,
    settings: FillSettings | None = None,
    far_mm: float | None = None,
) -> np.ndarray:
    """Fill holes (depth 0 or NaN) of a float depth map in mm where `fill_mask` is true (default: every hole).

    Valid depth beyond `far_mm` is background behind the face: it neither anchors the fill nor gets changed, so a
    hole at the silhouette is continued from the face side instead of being bridged to the wall.
    Returns a float32 copy; valid depth is never changed and holes outside `fill_mask` stay 0.
    """
    settings = settings or FillSettings()
    depth = np.asarray(depth_mm, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array, got shape {depth.shape}")
    if fill_mask is not None and np.shape(fill_mask) != depth.shape:
        raise ValueError(f"fill mask shape {np.shape(fill_mask)} does not match depth shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    out = np.where(valid, depth, 0).astype(np.float32)
    holes = ~valid if fill_mask is None else (~valid & np.asarray(fill_mask, dtype=bool))
    known = valid if far_mm is None else valid & (depth <= far_mm)
    if settings.method == "none" or not holes.any() or not known.any():
        return out
    if settings.method in ("telea", "ns"):
        filled = inpaint_opencv(np.where(known, out, 0), holes, settings.method, settings.opencv_radius)
        out[holes] = filled[holes]
        return out

    # Work in the window around the requested holes. Every pixel of it without usable depth is solved for (a
    # hole that runs out of the fill mask still carries the depth on its far side), but only the requested
    # holes are copied back.
    y0, y1, x0, x1 = _window(holes, margin=max(16, int(0.1 * max(holes.shape))))
    window_known = known[y0:y1, x0:x1]
    window_holes = holes[y0:y1, x0:x1]
    window_values = np.where(window_known, out[y0:y1, x0:x1], 0).astype(np.float32)
    focus = cv2.dilate(window_holes.astype(np.uint8), np.ones((2 * FOCUS_PX + 1,) * 2, np.uint8)) > 0
    solved = _solve_pyramid(window_values, window_known, ~window_known, settings, level=0, focus=focus)
    out[y0:y1, x0:x1][window_holes] = solved[window_holes]
    return out


def _window(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """Row and column bounds of the mask's bounding box grown by `margin`, clipped to the image."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return (
        max(0, y - margin),
        min(mask.shape[0], y + h + margin),
        max(0, x - margin),
        min(mask.shape[1], x + w + margin),
    )


def _downsample(array: np.ndarray) -> np.ndarray:
    """2x2 block average (odd sizes padded by edge replication)."""
    h, w = array.shape
    if h % 2 or w % 2:
        array = cv2.copyMakeBorder(array, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return cv2.resize(array, (array.shape[1] // 2, array.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _upsample(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    up = cv2.resize(array, (array.shape[1] * 2, array.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    return up[:h, :w]


def _solve_pyramid(
    values: np.ndarray,
    known: np.ndarray,
    unknown: np.ndarray,
    settings: FillSettings,
    level: int,
    focus: np.ndarray | None = None,
) -> np.ndarray:
    """Return `values` with the unknown pixels solved; known pixels are Dirichlet data, others are absent.

    `focus` (finest level only) limits the last relaxation to the pixels whose values are wanted: elsewhere the
    coarser levels' solution is already as good as it needs to be to serve as their boundary.
    """
    u = np.where(known, values, 0).astype(np.float32)
    if not unknown.any():
        return u
    active = known | unknown
    if min(u.shape) <= 4 or level > 12:
        # Coarsest level: every unknown pixel takes the mean of the known ones, then relaxation shapes it.
        u[unknown] = float(values[known].mean()) if known.any() else 0.0
    else:
        # Pull: average the known depth into the coarser level; a coarse pixel is known if any fine one is.
        weight = known.astype(np.float32)
        coarse_weight = _downsample(weight)
        coarse_sum = _downsample(u * weight)
        coarse_known = coarse_weight > 0
        coarse_values = np.where(coarse_known, coarse_sum / np.maximum(coarse_weight, 1e-12), 0).astype(np.float32)
        coarse_active = _downsample(active.astype(np.float32)) > 0
        coarse_unknown = coarse_active & ~coarse_known
        coarse = _solve_pyramid(coarse_values, coarse_known, coarse_unknown, settings, level + 1)
        # Push: the coarser solution initialises this level's holes.
        u[unknown] = _upsample(coarse, u.shape)[unknown]
    iterations = settings.fine_iterations if level == 0 else settings.coarse_iterations
    relaxed = unknown if focus is None else unknown & focus
    if settings.method == "harmonic":
        _relax_membrane(u, relaxed, active, iterations, settings.sor_omega)
    else:
        _relax_thin_plate(u, relaxed, active, iterations, settings.jacobi_omega)
    return u


class _Stencil:
    """Flat gather indices of the unknown pixels and their neighbours in a 2-pixel padded copy of a level.

    Relaxation then costs a few gathers per hole pixel instead of a convolution of the whole window.
    Inactive pixels (and the padding) hold 0 and count as absent neighbours.
    """

    PAD = 2

    def __init__(self, unknown: np.ndarray, active: np.ndarray, thin_plate: bool) -> None:
        h, w = unknown.shape
        self.shape = (h + 2 * self.PAD, w + 2 * self.PAD)
        stride = self.shape[1]
        self.index = np.flatnonzero(np.pad(unknown, self.PAD))
        self.odd = ((self.index // stride + self.index % stride) % 2).astype(bool)
        padded_active = np.pad(active, self.PAD).ravel()
        self.axial = np.array([-1, 1, -stride, stride], np.intp)
        self.diagonal = np.array([-stride - 1, -stride + 1, stride - 1, stride + 1], np.intp)
        self.far = np.array([-2, 2, -2 * stride, 2 * stride], np.intp)
        self.axial_count = _gather_sum(padded_active.astype(np.float32), self.index, self.axial)
        if thin_plate:
            ring = np.concatenate([self.diagonal, self.far])
            complete = self.axial_count == 4
            for offset in ring:
                complete &= padded_active[self.index + offset]
            self.complete = complete

    def pad(self, u: np.ndarray) -> np.ndarray:
        return np.pad(u, self.PAD).ravel()

    def unpad(self, flat: np.ndarray) -> np.ndarray:
        p = self.PAD
        return flat.reshape(self.shape)[p:-p, p:-p]


def _gather_sum(flat: np.ndarray, index: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    total = flat[index + offsets[0]]
    for offset in offsets[1:]:
        total = total + flat[index + offset]
    return total


def _relax_membrane(u: np.ndarray, unknown: np.ndarray, active: np.ndarray, iterations: int, omega: float) -> None:
    """Red-black SOR for Laplace(u) = 0 with natural boundaries at inactive pixels (in place)."""
    stencil = _Stencil(unknown, active, thin_plate=False)
    flat = stencil.pad(np.where(active, u, 0).astype(np.float32))
    has_neighbours = stencil.axial_count > 0
    colours = []
    for odd in (False, True):
        sel = has_neighbours & (stencil.odd == odd)
        colours.append((stencil.index[sel], 1.0 / stencil.axial_count[sel]))
    for _ in range(iterations):
        for index, inverse_count in colours:
            average = _gather_sum(flat, index, stencil.axial) * inverse_count
            flat[index] += omega * (average - flat[index])
    u[...] = stencil.unpad(flat)


def _relax_thin_plate(u: np.ndarray, unknown: np.ndarray, active: np.ndarray, iterations: int, omega: float) -> None:
    """Damped Jacobi for Laplace^2(u) = 0; pixels whose 13-point stencil leaves the active set use the membrane."""
    stencil = _Stencil(unknown, active, thin_plate=True)
    flat = stencil.pad(np.where(active, u, 0).astype(np.float32))
    plate = stencil.index[stencil.complete]
    edge_sel = ~stencil.complete & (stencil.axial_count > 0)
    edge = stencil.index[edge_sel]
    edge_inverse_count = 1.0 / stencil.axial_count[edge_sel]
    for _ in range(iterations):
        target = (
            8 * _gather_sum(flat, plate, stencil.axial)
            - 2 * _gather_sum(flat, plate, stencil.diagonal)
            - _gather_sum(flat, plate, stencil.far)
        ) / 20.0
        if edge.size:
            flat[edge] = _gather_sum(flat, edge, stencil.axial) * edge_inverse_count
        flat[plate] += omega * (target - flat[plate])
    u[...] = stencil.unpad(flat)


def inpaint_opencv(depth_mm: np.ndarray, holes: np.ndarray, method: str = "telea", radius: int = 3) -> np.ndarray:
    """OpenCV's inpainting on float32 mm (its most precise input type), restricted to the hole window.

    This is the baseline the benchmark compares against; it also serves as a selectable method.
    """
    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}.get(method)
    if flag is None:
        raise ValueError(f"OpenCV inpainting method must be 'telea' or 'ns', got {method!r}")
    out = np.asarray(depth_mm, dtype=np.float32).copy()
    holes = np.asarray(holes, dtype=bool)
    if not holes.any():
        return out
    y0, y1, x0, x1 = _window(holes, margin=radius + 2)
    window = out[y0:y1, x0:x1]
    # Every invalid pixel of the window is inpainted (so absent depth never acts as 0 mm data); only the
    # requested holes are copied back.
    invalid = ~(np.isfinite(window) & (window > 0))
    window[invalid] = 0
    filled = cv2.inpaint(window, invalid.astype(np.uint8) * 255, radius, flag)
    wanted = holes[y0:y1, x0:x1]
    window[wanted] = filled[wanted]
    return out
