"""Depth hole filling for Kinect-like depth maps of faces: a cascadic (coarse-to-fine) membrane / thin-plate fill.

The original conversion filled holes with exemplar inpainting in Python loops (seconds to minutes per frame).
A face is a smooth surface, so the holes a time-of-flight sensor leaves on it (dark brows and pupils, grazing
cheeks, nostrils, flying-pixel gaps) are best filled by a smooth surface that meets the valid depth around them:

- ``harmonic``: the membrane, Laplace(u) = 0 in the holes: never overshoots the data, exact on planes;
- ``biharmonic`` (default): the thin plate, Laplace^2(u) = 0, which also continues the surface's slope into a
  hole, so curved patches (the cheek, the side of the nose) are bent rather than flattened.

Both are solved coarse-to-fine: a push-pull pyramid of (depth, weight) pulls the valid depth down to a level
where every hole is covered, then each finer level starts from the upsampled coarser solution and runs a few
sweeps on its holes only: red-black SOR for the membrane, conjugate gradients on the thin-plate energy. The
solver is cascadic, not a full multigrid: the few sweeps per level leave a small bias where a coarse pixel averages
partly-valid blocks (a few tenths of a mm on steep slopes), traded for a frame in tens of milliseconds.
bench/depth_fill.py measures both against OpenCV's TELEA and NS on FaceWorld with the Kinect sensor model.

Holes are filled only where the caller asks (`fill_mask`): the face region. The solve itself spans every pixel
without usable depth around them (as OpenCV's inpainting does), so a hole that runs out of the face region still
takes the depth on its far side into account; holes are never read as 0 mm.

Two rules keep the default robust where a hole is not enclosed by the face (bench/depth_fill.py's silhouette, wall
and occluder scenes), with or without a `far_mm` from the caller:
- only the surface being filled anchors the fill: valid depth more than `near_extent_mm` in front of the median
  depth inside the fill mask (a hand, a lock of hair) or `far_extent_mm` behind it (a wall) is another surface.
  It is never changed; the wall is left out of the solve, the occluder is solved across, so a hole beside it
  reaches the face on its far side;
- a hole open to pixels without usable depth (background, an occluder) is held within the range of the valid depth
  within `ring_px` of it: on such a hole the thin plate's continued slope has nothing to stop it and, at a face's
  silhouette, runs off by centimetres; enclosed holes keep the thin plate's curvature (a nose tip may lie beyond
  the depth around it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

METHODS = ("biharmonic", "harmonic", "telea", "ns", "none")
# The finest level relaxes only within this many pixels of the requested holes.
FOCUS_PX = 4
# The pyramid stops where fewer pixels than this are known; the coarsest level gets this many times the sweeps.
_MIN_COARSE_KNOWN = 16
_COARSEST_FACTOR = 10


@dataclass(frozen=True)
class FillSettings:
    """Solver knobs; the defaults were chosen on FaceWorld frames (bench/depth_fill.py)."""

    method: str = "biharmonic"
    fine_iterations: int = 3  # sweeps on the finest level (the pyramid has already placed the low frequencies)
    coarse_iterations: int = 6  # sweeps on every coarser level (cheap: each level has 4x fewer pixels)
    sor_omega: float = 1.6  # over-relaxation of the membrane's red-black Gauss-Seidel
    opencv_radius: int = 3  # inpaintRadius for the OpenCV baselines (telea / ns)
    # Valid depth more than this far in front of / behind the median valid depth of the fill region is another
    # surface (a hand or hair in front of the face, the wall behind it): it neither anchors the fill nor changes.
    # null: no limit on that side. An explicit far_mm argument of fill_depth replaces the far one.
    near_extent_mm: float | None = 55.0
    far_extent_mm: float | None = 150.0
    # Holes that run out to pixels without usable depth (background, an excluded occluder) have data on one side
    # only; their fill is held within the range of the valid depth around them (no slope runs away into the open).
    bound_open_holes: bool = True
    ring_px: int = 3  # "around them": valid pixels within this distance of the hole

    def __post_init__(self) -> None:
        for key in ("fine_iterations", "coarse_iterations", "opencv_radius", "ring_px"):
            object.__setattr__(self, key, int(getattr(self, key)))
        object.__setattr__(self, "sor_omega", float(self.sor_omega))
        object.__setattr__(self, "bound_open_holes", bool(self.bound_open_holes))
        for key in ("near_extent_mm", "far_extent_mm"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, float(value))
                if not value > 0:
                    raise ValueError(f"depth fill {key} must be positive or null, got {value}")
        if self.ring_px < 1:
            raise ValueError(f"depth fill ring_px must be >= 1, got {self.ring_px}")
        if self.method not in METHODS:
            raise ValueError(f"depth fill method must be one of {METHODS}, got {self.method!r}")
        if self.fine_iterations < 0 or self.coarse_iterations < 0:
            raise ValueError("depth fill iterations must be >= 0")
        if not 0 < self.sor_omega < 2:
            raise ValueError(f"depth fill sor_omega must be in (0, 2), got {self.sor_omega}")


def fill_depth(
    depth_mm: np.ndarray,
    fill_mask: np.ndarray | None = None,
    settings: FillSettings | None = None,
    far_mm: float | None = None,
) -> np.ndarray:
    """Fill holes (depth 0 or NaN) of a float depth map in mm where `fill_mask` is true (default: every hole).

    Valid depth beyond `far_mm` (or, without it, beyond the settings' far extent from the face's median depth) is
    background behind the face, and depth beyond the near extent in front of it an occluder: neither anchors the
    fill nor gets changed, so a hole at the silhouette is continued from the face side instead of being bridged to
    the wall, and one beside a hand from the face, not the hand.
    Returns a float32 copy; valid depth is never changed and holes outside `fill_mask` stay 0.
    """
    settings = settings or FillSettings()
    depth = np.asarray(depth_mm, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array, got shape {depth.shape}")
    if fill_mask is not None and np.shape(fill_mask) != depth.shape:
        raise ValueError(f"fill mask shape {np.shape(fill_mask)} does not match depth shape {depth.shape}")
    valid = (depth > 0) & (depth < np.inf)  # NaN compares false
    out = np.where(valid, depth, np.float32(0))
    holes = ~valid if fill_mask is None else (~valid & np.asarray(fill_mask, dtype=bool))
    if settings.method == "none" or not holes.any():
        return out
    nearest, farthest = _surface_limits(out, valid, fill_mask, settings, far_mm)
    known = valid
    if nearest > 0:
        known = known & (out >= nearest)
    if farthest < np.inf:
        known = known & (out <= farthest)
    if not known.any():
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
    window_values = np.where(window_known, out[y0:y1, x0:x1], np.float32(0))
    focus = cv2.dilate(window_holes.astype(np.uint8), np.ones((2 * FOCUS_PX + 1,) * 2, np.uint8)) > 0
    # Depth behind the face (a wall) is left out of the solve: a natural boundary there, not a surface to extend
    # over it. An occluder in front is solved across, so a hole beside it still reaches the face on its far side.
    window_unknown = ~window_known if farthest == np.inf else ~window_known & ~(out[y0:y1, x0:x1] > farthest)
    solved = _solve_pyramid(window_values, window_known, window_unknown, settings, level=0, focus=focus)
    if settings.bound_open_holes:
        _bound_open_holes(solved, window_values, window_known, window_holes, settings.ring_px)
    np.copyto(out[y0:y1, x0:x1], solved, where=window_holes)
    return out


def _surface_limits(
    depth: np.ndarray, valid: np.ndarray, fill_mask: np.ndarray | None, settings: FillSettings, far_mm: float | None
) -> tuple[float, float]:
    """(nearest, farthest) depth of the surface being filled; valid depth outside is another surface (a hand in
    front, a wall behind). From the settings' extents around the median valid depth inside the fill mask (the face)
    and an explicit `far_mm`; (0, inf) when nothing limits it."""
    farthest = float(far_mm) if far_mm is not None else np.inf
    if settings.near_extent_mm is None and settings.far_extent_mm is None:
        return 0.0, farthest
    # The median over every 4th row and column is within a fraction of a mm of the full one, at 1/16 of the cost.
    step = 4 if min(depth.shape) >= 64 else 1
    inside = valid[::step, ::step] & (depth[::step, ::step] <= farthest)
    if fill_mask is not None:
        inside &= np.asarray(fill_mask, dtype=bool)[::step, ::step]
    if not inside.any():
        return 0.0, farthest
    median = float(np.median(depth[::step, ::step][inside]))
    nearest = median - settings.near_extent_mm if settings.near_extent_mm is not None else 0.0
    if settings.far_extent_mm is not None and far_mm is None:
        farthest = median + settings.far_extent_mm
    return nearest, farthest


def _bound_open_holes(
    solved: np.ndarray, values: np.ndarray, known: np.ndarray, holes: np.ndarray, ring_px: int
) -> None:
    """Clip the fill of every hole that touches pixels without usable depth to the range of the known depth within
    `ring_px` of it (in place). A thin plate continues the surface's slope into a hole; where the hole is open on one
    side nothing holds that slope back, and at a face's silhouette it runs away by centimetres.

    Vectorised over all holes at once: each known pixel near an open hole takes that hole's label (the larger one
    where two open holes come that close), and the per-label minimum and maximum come from one pass over them.
    """
    holes_u8 = np.ascontiguousarray(holes).view(np.uint8)
    absent = np.ascontiguousarray(~(known | holes)).view(np.uint8)
    touching = holes & (cv2.dilate(absent, _CROSS, borderValue=0) > 0)
    if not touching.any():
        return  # every hole is enclosed by known depth
    # Only the bounding box of the holes takes part (the window also holds the margin of known depth around it).
    x, y, w, h = cv2.boundingRect(holes_u8)
    y0, y1 = max(0, y - ring_px), min(holes.shape[0], y + h + ring_px)
    x0, x1 = max(0, x - ring_px), min(holes.shape[1], x + w + ring_px)
    known, touching = known[y0:y1, x0:x1], touching[y0:y1, x0:x1]
    values, solved = values[y0:y1, x0:x1], solved[y0:y1, x0:x1]
    # 16-bit labels are the fastest to gather and dilate; past 65535 holes, float32 (exact to 2**24) takes over.
    small = int(np.count_nonzero(holes_u8)) < 65535
    count, labels = cv2.connectedComponents(
        holes_u8[y0:y1, x0:x1], connectivity=8, ltype=cv2.CV_16U if small else cv2.CV_32S
    )
    is_open = np.zeros(count, bool)
    is_open[labels[touching]] = True
    is_open[0] = False
    # Relabel in one lookup: open holes keep their label, enclosed ones become 0.
    relabel = np.where(is_open, np.arange(count), 0).astype(np.uint16 if small else np.float32)
    open_labels = relabel[labels]
    near_label = cv2.dilate(open_labels, np.ones((2 * ring_px + 1,) * 2, np.uint8))
    ring = known & (near_label > 0)
    ring_labels = near_label[ring].astype(np.intp)
    ring_values = values[ring]
    low = np.full(count, np.inf, np.float32)
    high = np.full(count, -np.inf, np.float32)
    np.minimum.at(low, ring_labels, ring_values)
    np.maximum.at(high, ring_labels, ring_values)
    target = open_labels > 0
    target_labels = open_labels[target].astype(np.intp)
    solved[target] = np.clip(solved[target], low[target_labels], high[target_labels])  # no ring: inf, unchanged


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
    """2x2 block average of each channel (odd sizes padded by edge replication)."""
    h, w = array.shape[:2]
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

    `values` must be 0 wherever `known` is false (the pull step sums it as it is).

    `focus` (finest level only) limits the last relaxation to the pixels whose values are wanted: elsewhere the
    coarser levels' solution is already as good as it needs to be to serve as their boundary.
    """
    u = np.array(values, dtype=np.float32)  # a copy; callers pass 0 wherever the depth is not known
    if not unknown.any():
        return u
    active = known | unknown
    coarse = None
    if min(u.shape) > 4 and level <= 12:
        # Pull: average the known depth into the coarser level; a coarse pixel is known if any fine one is
        # (classic push-pull: every level keeps all the data it can).
        coarse_weight = _downsample(known.astype(np.float32))
        coarse_sum = _downsample(u)  # u is 0 wherever it is not known
        coarse_known = coarse_weight > 0
        if coarse_known.sum() >= _MIN_COARSE_KNOWN:
            coarse_values = np.where(coarse_known, coarse_sum / np.maximum(coarse_weight, 1e-12), 0)
            coarse_active = _downsample(active.astype(np.float32)) > 0
            coarse = _solve_pyramid(
                coarse_values.astype(np.float32), coarse_known, coarse_active & ~coarse_known, settings, level + 1
            )
    if coarse is None:
        # Coarsest level: every unknown pixel starts at the mean of the known ones; many cheap sweeps shape it.
        u[unknown] = float(values[known].mean()) if known.any() else 0.0
        iterations = settings.coarse_iterations * _COARSEST_FACTOR
    else:
        # Push: the coarser solution initialises this level's holes.
        np.copyto(u, _upsample(coarse, u.shape), where=unknown)
        iterations = settings.fine_iterations if level == 0 else settings.coarse_iterations
    relaxed = unknown if focus is None else unknown & focus
    if coarse is None and focus is None and _solve_membrane_directly(u, unknown, active):
        return u
    if settings.method == "harmonic" or coarse is None:
        # The coarsest level always takes the membrane: with few known pixels a thin plate is barely constrained
        # and may swing far outside the data, a membrane stays within it (maximum principle).
        _relax_membrane(u, relaxed, active, iterations, settings.sor_omega)
    else:
        _relax_thin_plate(u, relaxed, active, iterations)
    return u


# The coarsest level is solved exactly (one small dense system) up to this many unknown pixels; it used to take
# tens of SOR sweeps there, each costing more in Python overhead than the whole solve.
_DIRECT_MAX_UNKNOWN = 400


def _solve_membrane_directly(u: np.ndarray, unknown: np.ndarray, active: np.ndarray) -> bool:
    """Solve Laplace(u) = 0 on the unknown pixels exactly (in place), with the same neighbourhood rules as the SOR
    sweeps (4 neighbours, inactive ones absent); False (and nothing done) when there are too many unknowns.

    A tiny pull towards the starting value keeps unknown patches without any known neighbour well posed (they take
    that value) without measurably moving the others.
    """
    index = np.flatnonzero(unknown)
    count = index.size
    if count == 0 or count > _DIRECT_MAX_UNKNOWN:
        return False
    height, width = u.shape
    flat = u.ravel()
    rows, cols = np.divmod(index, width)
    position = np.full(height * width, -1, np.intp)
    position[index] = np.arange(count)
    system = np.zeros((count, count))
    rhs = np.zeros(count)
    active_flat = active.ravel()
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = rows + dy, cols + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        neighbour = np.where(inside, ny * width + nx, 0)
        counts = inside & active_flat[neighbour]
        system[np.arange(count), np.arange(count)] += counts
        other = position[neighbour]
        free = counts & (other >= 0)
        system[np.flatnonzero(free), other[free]] -= 1.0
        fixed = counts & (other < 0)
        rhs[fixed] += flat[neighbour[fixed]]
    pull = 1e-6
    system[np.arange(count), np.arange(count)] += pull
    rhs += pull * flat[index]
    flat[index] = np.linalg.solve(system, rhs).astype(np.float32)
    u[...] = flat.reshape(height, width)
    return True


class _Stencil:
    """Flat gather indices of the unknown pixels and their 4 neighbours in a 1-pixel padded copy of a level.

    A membrane sweep then costs a few gathers per hole pixel instead of a convolution of the whole window.
    Inactive pixels (and the padding) hold 0 and do not count as neighbours.
    """

    PAD = 1

    def __init__(self, unknown: np.ndarray, active: np.ndarray) -> None:
        h, w = unknown.shape
        self.shape = (h + 2 * self.PAD, w + 2 * self.PAD)
        stride = self.shape[1]
        self.index = np.flatnonzero(np.pad(unknown, self.PAD))
        self.odd = ((self.index // stride + self.index % stride) % 2).astype(bool)
        padded_active = np.pad(active, self.PAD).ravel()
        self.axial = np.array([-1, 1, -stride, stride], np.intp)
        self.axial_count = _gather_sum(padded_active.astype(np.float32), self.index, self.axial)

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
    stencil = _Stencil(unknown, active)
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


_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)


def _relax_thin_plate(u: np.ndarray, unknown: np.ndarray, active: np.ndarray, iterations: int) -> None:
    """Conjugate gradients on the thin-plate energy sum (Laplacian u)^2 over the unknown pixels (in place).

    The energy counts every pixel whose 5-point Laplacian lies inside the active set, so the window border and
    absent pixels are natural boundaries. Its minimiser solves Laplace^2(u) = 0 in the holes with the valid depth
    (two rings of it: value and slope) as boundary data; CG converges in far fewer sweeps than Jacobi would
    for this fourth-order operator, and the coarser levels have already placed the low frequencies.
    """
    if iterations <= 0 or not unknown.any():
        return
    # Only the bounding box of the unknowns (plus the stencil's reach) takes part.
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(unknown).view(np.uint8))
    y0, y1 = max(0, y - 2), min(u.shape[0], y + h + 2)
    x0, x1 = max(0, x - 2), min(u.shape[1], x + w + 2)
    view = u[y0:y1, x0:x1]
    free = unknown[y0:y1, x0:x1].astype(np.float32)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    counted = cv2.erode(active[y0:y1, x0:x1].astype(np.uint8), cross, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    counted = counted.astype(np.float32)

    # Preallocated buffers and OpenCV's fused scale-add keep the iteration free of temporaries (each would cost an
    # allocation and a pass over the box).
    inner, outer = np.empty_like(free), np.empty_like(free)

    def operator(a: np.ndarray, out: np.ndarray) -> np.ndarray:  # the energy's Hessian (up to 2) on the free pixels
        cv2.filter2D(a, -1, _LAPLACIAN, dst=inner, borderType=cv2.BORDER_CONSTANT)
        np.multiply(inner, counted, out=inner)
        cv2.filter2D(inner, -1, _LAPLACIAN, dst=outer, borderType=cv2.BORDER_CONSTANT)
        return np.multiply(outer, free, out=out)

    x_full = np.ascontiguousarray(view, dtype=np.float32)
    residual = np.negative(operator(x_full, np.empty_like(free)))
    direction = residual.copy()
    a_dir = np.empty_like(free)
    rr = float(np.vdot(residual, residual))
    for _ in range(iterations):
        if rr <= 1e-12:
            break
        operator(direction, a_dir)
        denominator = float(np.vdot(direction, a_dir))
        if denominator <= 0:
            break
        alpha = rr / denominator
        cv2.scaleAdd(direction, alpha, x_full, dst=x_full)
        cv2.scaleAdd(a_dir, -alpha, residual, dst=residual)
        rr_new = float(np.vdot(residual, residual))
        cv2.scaleAdd(direction, rr_new / rr, residual, dst=direction)
        rr = rr_new
    view[...] = x_full


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
