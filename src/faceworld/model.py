"""FaceWorld's procedural face model: an analytic head-front surface on a UV grid, exported as a MorphableModel.

Geometry (model space, mm: x to the subject's left = image right when frontal, y down, z away from the
viewer; origin near the head centre at eye height):
- The UV grid (u ear to ear over +-120 degrees, v from the crown to the neck) is lofted through elliptic
  cross-sections x = a(v) sin(theta), z = z0(v) - d(v) cos(theta) whose keyframes give forehead, cheeks,
  jaw, chin, under-chin and neck. Smooth bumps add the nose, brow ridge, eye sockets, cheekbones, lips
  and chin; the eyelids follow the eyeball sphere (1.2 mm in front of it) so the eyeball never pokes through.
- The mouth and both eyes are slits: the vertices on the slit row between the corners are duplicated, so
  the lower lip / lower eyelid can move apart from the upper one. The mean shape has the eyes open
  (upper lids re-parametrised upwards along the surface, lower lids downwards); blink closes them.
- Identity components are smooth localized displacement fields (RBF-like), expression components are
  displacement fields derived from rigid or analytic motions (jaw rotation about the TMJ, lid closing...).
  Around the eyes every field moves the eye region rigidly so the eyeball (placed from the eye corners)
  stays behind the lids.
Landmarks: the 68 iBUG points are barycentric points on the grid (eye and inner-lip points on the slit
vertices themselves); the pupils come from the eyeballs (see src/faceworld/world.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import PchipInterpolator

from src.geometry.morphable import MorphableModel

THETA_MAX = np.deg2rad(180.0)  # the grid wraps all the way round (u = 0 and 1 meet at the back)
# theta(u) = THETA_MAX * s * (FRONT_DENSITY + (1 - FRONT_DENSITY) * s^2) with s = 2u - 1: columns are dense over the
# face and sparse at the back of the head, which is only ever seen at grazing angles.
FRONT_DENSITY = 0.5
EYE_RADIUS_MM = 12.0
LID_THICKNESS_MM = 1.2

# Loft keyframes: v, y (mm), front half width a_front, side half width a_side, depth radius d, centre offset z0.
# x = sin(theta) * (a_front * c + a_side * (1 - c)) with c = max(cos(theta), 0)^2, z = z0 - d cos(theta): the
# lower rows are narrow at the front (chin) and wide at the sides (jaw and neck), a U seen from below.
_PROFILE = np.array(
    [
        (0.000, -129.0, 0.5, 0.5, 0.5, 20.0),
        (0.050, -121.0, 42.0, 42.0, 58.0, 20.0),
        (0.120, -103.0, 63.0, 63.0, 84.0, 9.0),
        (0.220, -72.0, 72.0, 72.0, 94.0, 4.0),
        (0.330, -38.0, 74.0, 74.0, 97.0, 3.0),
        (0.430, -6.0, 74.0, 74.0, 97.0, 3.0),
        (0.520, 22.0, 71.0, 71.0, 95.0, 3.0),
        (0.600, 48.0, 63.0, 64.0, 91.0, 0.0),
        (0.670, 72.0, 50.0, 58.0, 86.0, 0.0),
        (0.730, 90.0, 34.0, 53.0, 87.0, 2.0),
        (0.775, 101.0, 22.0, 51.0, 84.0, 2.0),
        (0.810, 108.0, 25.0, 50.0, 72.0, 6.0),
        (0.860, 116.0, 35.0, 50.0, 58.0, 9.0),
        (0.930, 140.0, 47.0, 50.0, 56.0, 10.0),
        (1.000, 180.0, 50.0, 51.0, 57.0, 12.0),
    ]
)
_PROFILE_FN = PchipInterpolator(_PROFILE[:, 0], _PROFILE[:, 1:], axis=0)

# Feature layout in front coordinates (mm).
EYE_CENTER_X = 32.0
EYE_CENTER_Y = -4.0
EYE_HALF_WIDTH = 14.0
EYE_OPEN_UP_MM = 5.4
EYE_OPEN_DOWN_MM = 2.8
MOUTH_Y = 55.0
MOUTH_HALF_WIDTH = 24.0
BROW_Y = -27.0
NOSE_TIP_Y = 27.0
SUBNASALE_Y = 38.0
CHIN_Y = 101.0
JAW_HINGE_YZ = (15.0, 10.0)
JAW_OPEN_DEG = 16.0

IDENTITY_NAMES = (
    "face_width",
    "face_length",
    "head_depth",
    "jaw_width",
    "chin",
    "nose_length",
    "nose_width",
    "nose_protrusion",
    "eye_spacing",
    "eye_height",
    "brow_ridge",
    "cheekbones",
    "lip_fullness",
    "mouth_width",
    "forehead_slope",
    "cheek_fullness",
)

EXPRESSION_NAMES = (
    "jaw_open",
    "smile",
    "lips_pucker",
    "brow_raise",
    "brow_frown",
    "blink_left",
    "blink_right",
    "cheek_puff",
    "mouth_frown",
)

# Jaw contour (iBUG 0..8, mirrored for 9..16): azimuth in degrees (negative = subject's right) and y.
_JAW_THETA = (-85.0, -84.0, -82.0, -78.0, -71.0, -60.0, -45.0, -25.0, 0.0)
_JAW_Y = (0.0, 16.0, 32.0, 47.0, 61.0, 74.0, 86.0, 96.0, CHIN_Y)


def profile(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cross-section (y, a_front, a_side, d, z0) at grid parameter v."""
    p = _PROFILE_FN(np.clip(v, 0.0, 1.0))
    return p[..., 0], p[..., 1], p[..., 2], p[..., 3], p[..., 4]


def section_x(theta: np.ndarray, a_front: np.ndarray, a_side: np.ndarray) -> np.ndarray:
    c = np.maximum(np.cos(theta), 0.0) ** 2
    return np.sin(theta) * (a_front * c + a_side * (1.0 - c))


_V_DENSE = np.linspace(0.0, 1.0, 4001)
_Y_DENSE = profile(_V_DENSE)[0]


def v_of_y(y: np.ndarray) -> np.ndarray:
    """Inverse of y(v) (monotonic)."""
    return np.interp(y, _Y_DENSE, _V_DENSE)


def theta_of_u(u: np.ndarray) -> np.ndarray:
    """Azimuth of grid parameter u (0 = subject's right ear side, 0.5 = front, 1 = left)."""
    s = 2.0 * np.asarray(u, dtype=np.float64) - 1.0
    return THETA_MAX * s * (FRONT_DENSITY + (1.0 - FRONT_DENSITY) * s * s)


_S_DENSE = np.linspace(-1.0, 1.0, 4001)
_THETA_DENSE = THETA_MAX * _S_DENSE * (FRONT_DENSITY + (1.0 - FRONT_DENSITY) * _S_DENSE**2)


def u_of_theta(theta: np.ndarray) -> np.ndarray:
    """Inverse of theta_of_u (monotonic)."""
    return (np.interp(theta, _THETA_DENSE, _S_DENSE) + 1.0) / 2.0


# Millimetres of surface per unit u at the front of the face (for tangent-space normal maps).
MM_PER_U_FRONT = 2.0 * THETA_MAX * FRONT_DENSITY * 72.0


def front_coordinates(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, theta) of the base surface: where features, albedo and wrinkles are laid out."""
    theta = theta_of_u(u)
    y, a_front, a_side, _, _ = profile(v)
    return section_x(theta, a_front, a_side), y, theta


def uv_of_front(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Front coordinates (x, y) of the face front -> grid (u, v)."""
    v = np.atleast_1d(v_of_y(np.asarray(y, dtype=np.float64)))
    xs = np.atleast_1d(np.asarray(x, dtype=np.float64))
    _, a_front, a_side, _, _ = profile(v)
    table = np.linspace(-np.pi / 2, np.pi / 2, 2001)
    theta = np.array([np.interp(xi, section_x(table, af, as_), table) for xi, af, as_ in zip(xs, a_front, a_side)])
    u = u_of_theta(theta)
    if np.ndim(x) == 0 and np.ndim(y) == 0:
        return u[0], v[0]
    return u, v


def _gauss(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * t * t)


def _smoothstep(lo: float, hi: float, t: np.ndarray) -> np.ndarray:
    s = np.clip((t - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def nose_height(y: np.ndarray) -> np.ndarray:
    """Nose protrusion along the midline (mm) as a function of y."""
    ys = np.array([-16.0, -8.0, 5.0, 18.0, 25.0, 29.0, 33.0, 37.0, 41.0])
    hs = np.array([0.0, 5.0, 10.0, 17.0, 22.0, 23.0, 15.0, 4.0, 0.0])
    return np.interp(y, ys, hs, left=0.0, right=0.0)


def nose_sigma(y: np.ndarray) -> np.ndarray:
    return np.interp(y, [-10.0, 10.0, 24.0, 34.0], [5.5, 6.5, 9.0, 10.0])


def _socket_surface(x: np.ndarray, y: np.ndarray, theta: np.ndarray, z_base: np.ndarray) -> np.ndarray:
    """Base surface plus every feature except the eyelid bulge (z, mm; negative = towards the viewer)."""
    ax = np.abs(x)
    front = _smoothstep(0.05, 0.45, np.cos(theta))
    dz = np.zeros_like(z_base)
    dz -= nose_height(y) * _gauss(x / nose_sigma(y))
    dz -= 3.5 * _gauss(np.hypot(x / 6.0, (y - NOSE_TIP_Y + 1.0) / 5.0))
    dz -= 6.0 * _gauss(np.hypot((ax - 12.5) / 4.0, (y - 32.5) / 4.0))
    dz += 9.0 * _gauss(np.hypot((ax - EYE_CENTER_X) / 15.0, (y - EYE_CENTER_Y) / 11.0))
    dz -= 4.0 * _gauss((y - BROW_Y - 1.0) / 7.0) * _gauss((x / 42.0) ** 2)
    dz -= 5.0 * _gauss(np.hypot((ax - 42.0) / 14.0, (y - 18.0) / 13.0))
    dz += 2.0 * _gauss(np.hypot((ax - 46.0) / 10.0, (y - 55.0) / 12.0))
    dz += 3.0 * _gauss(np.hypot((ax - 62.0) / 9.0, (y + 25.0) / 14.0))
    dz -= 3.0 * _gauss(np.hypot(x / 35.0, (y + 60.0) / 25.0))
    lips_w = _gauss((x / 23.0) ** 2)
    dz -= 4.0 * _gauss(np.hypot(x / 28.0, (y - MOUTH_Y) / 16.0))
    dz -= 4.5 * _gauss((y - MOUTH_Y + 6.0) / 4.0) * lips_w
    dz -= 5.0 * _gauss((y - MOUTH_Y - 6.5) / 4.5) * lips_w
    dz += 1.2 * _gauss(x / 2.5) * _gauss((y - 44.0) / 3.5)
    dz += 2.5 * _gauss((y - 72.0) / 4.0) * _gauss(x / 18.0)
    dz -= 6.0 * _gauss(np.hypot(x / 16.0, (y - 88.0) / 9.0))
    dz += 1.5 * _gauss(np.hypot((ax - MOUTH_HALF_WIDTH - 1.0) / 3.0, (y - MOUTH_Y) / 3.0))
    return z_base + dz * front


def ear_weight(theta: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Soft mask of the ears on the sides of the head (a rounded flap, taller than wide)."""
    t = (np.abs(np.rad2deg(theta)) - 97.0) / 7.0
    r = np.hypot(t, (y - 10.0) / 27.0)
    return _smoothstep(0.0, 0.35, 1.0 - r) * (1.0 - 0.35 * _gauss(np.hypot(t, (y - 14.0) / 12.0) / 0.6))


def face_region(theta: np.ndarray, y: np.ndarray) -> np.ndarray:
    """PRNet-style face mask in front coordinates: forehead top (y -88) down to the jaw contour, ear to ear."""
    jaw_theta = np.deg2rad(np.array([*_JAW_THETA, *[-t for t in _JAW_THETA[-2::-1]]]))
    jaw_y = np.array([*_JAW_Y, *_JAW_Y[-2::-1]])
    th = np.clip(theta, jaw_theta[0], jaw_theta[-1])
    bottom = np.interp(th, jaw_theta, jaw_y) + 4.0
    return (y >= -88.0) & (y <= bottom) & (np.abs(theta) <= np.deg2rad(2.0 - _JAW_THETA[0]))


def _eye_ball_center(side: float) -> np.ndarray:
    """Eyeball centre of the mean shape for side -1 (subject's right, image left) or +1."""
    x, y = side * EYE_CENTER_X, EYE_CENTER_Y
    u, v = uv_of_front(np.array([x]), np.array([y]))
    theta = theta_of_u(u)
    _, _, _, d, z0 = profile(v)
    z_socket = _socket_surface(np.array([x]), np.array([y]), theta, z0 - d * np.cos(theta))[0]
    return np.array([x, y, z_socket + EYE_RADIUS_MM - 2.6])


def surface(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The mean head surface S(u, v) -> (..., 3) model-space points (mm)."""
    theta = theta_of_u(u)
    y, a_front, a_side, d, z0 = profile(v)
    x = section_x(theta, a_front, a_side)
    z = _socket_surface(x, y, theta, z0 - d * np.cos(theta))
    ear = ear_weight(theta, y)
    x = x + np.sign(theta) * 11.0 * ear
    z = z + 5.0 * ear
    for side in (-1.0, 1.0):
        c = _eye_ball_center(side)
        r2 = (x - c[0]) ** 2 + (y - c[1]) ** 2
        inside = r2 < EYE_RADIUS_MM**2
        z_ball = np.where(inside, c[2] - np.sqrt(np.maximum(EYE_RADIUS_MM**2 - r2, 0.0)), 1e6)
        lid = z_ball - LID_THICKNESS_MM
        z = np.where(inside, _smooth_min(z, lid, 1.5), z)
    return np.stack([x, y, z], axis=-1)


@dataclass
class FaceWorldModel:
    """The procedural model: its MorphableModel plus what the renderer needs beyond a generic 3DMM."""

    morphable: MorphableModel
    grid_shape: tuple[int, int]  # (rows, cols) of the UV grid
    vertex_front_xy: np.ndarray  # (N,2) front coordinates of each vertex's UV (layout of albedo / labels)
    eye_corner_landmarks: tuple[tuple[int, int], tuple[int, int]]  # ((36, 39), (42, 45))
    eye_center_offsets: np.ndarray  # (2,3) eyeball centre minus mid-corner point in the mean shape
    eye_radius: float
    prnet_uv_box: tuple[float, float, float, float]  # (u0, u1, v0, v1) of the model UV shown in PRNet maps


def _grid_axes(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Grid u, v with rows exactly on the eye and mouth slits and columns on their corners."""
    v = np.linspace(0.0, 1.0, rows)
    eye_row = int(np.argmin(np.abs(v - v_of_y(np.array(EYE_CENTER_Y)))))
    mouth_row = int(np.argmin(np.abs(v - v_of_y(np.array(MOUTH_Y)))))
    v[eye_row] = float(v_of_y(np.array(EYE_CENTER_Y)))
    v[mouth_row] = float(v_of_y(np.array(MOUTH_Y)))
    u = np.linspace(0.0, 1.0, cols)
    return u, v, eye_row, mouth_row


def _build_topology(
    rows: int, cols: int, slits: list[tuple[int, int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid triangles with slits: for (row, c0, c1) the vertices of `row` strictly between columns c0 and c1
    are duplicated and the cells below the row use the duplicates.

    Returns (triangles, duplicate_source, below) where below[grid vertex] is the id the cells below it use."""
    index = np.arange(rows * cols).reshape(rows, cols)
    below = index.copy()  # vertex ids as seen from the cells below each row
    sources = []
    next_id = rows * cols
    for row, c0, c1 in slits:
        for c in range(c0 + 1, c1):
            below[row, c] = next_id
            sources.append(index[row, c])
            next_id += 1
    # A cell sees its top row through `below` (the duplicates on a slit row) and its bottom row as is.
    top_left, top_right = below[:-1, :-1], below[:-1, 1:]
    bottom_left, bottom_right = index[1:, :-1], index[1:, 1:]
    tris = np.concatenate(
        [
            np.stack([top_left.ravel(), bottom_left.ravel(), top_right.ravel()], axis=1),
            np.stack([top_right.ravel(), bottom_left.ravel(), bottom_right.ravel()], axis=1),
        ]
    )
    return tris.astype(np.int64), np.asarray(sources, dtype=np.int64), below.reshape(-1)


def _barycentric_on_grid(u: float, v: float, u_axis: np.ndarray, v_axis: np.ndarray, below: np.ndarray):
    """Vertex triple + weights of a UV point on the grid (same split and slit handling as _build_topology)."""
    cols = len(u_axis)
    j = int(np.clip(np.searchsorted(u_axis, u) - 1, 0, len(u_axis) - 2))
    i = int(np.clip(np.searchsorted(v_axis, v) - 1, 0, len(v_axis) - 2))
    s = (u - u_axis[j]) / (u_axis[j + 1] - u_axis[j])
    t = (v - v_axis[i]) / (v_axis[i + 1] - v_axis[i])
    tl, tr = int(below[i * cols + j]), int(below[i * cols + j + 1])
    bl, br = (i + 1) * cols + j, (i + 1) * cols + j + 1
    if s + t <= 1.0:  # triangle (tl, bl, tr)
        return (tl, bl, tr), (1.0 - s - t, t, s)
    return (tr, bl, br), (1.0 - t, 1.0 - s, s + t - 1.0)


def build_faceworld_model(rows: int = 120, cols: int = 120) -> FaceWorldModel:
    """Construct the procedural model (deterministic; about 0.5 s)."""
    if rows < 40 or cols < 40:
        raise ValueError(f"FaceWorld grid must be at least 40x40, got {rows}x{cols}")
    u_axis, v_axis, eye_row, mouth_row = _grid_axes(rows, cols)
    U, V = np.meshgrid(u_axis, v_axis)
    x_front, _y_front, theta = front_coordinates(U, V)
    x_row_eye = x_front[eye_row]
    x_row_mouth = x_front[mouth_row]

    behind = np.cos(theta[0]) < 0  # columns on the back of the head reach the same x: never pick them

    def col_of(x_row: np.ndarray, x: float) -> int:
        return int(np.argmin(np.where(behind, np.inf, np.abs(x_row - x))))

    eye_cols = []
    for side in (-1.0, 1.0):
        inner = col_of(x_row_eye, side * (EYE_CENTER_X - EYE_HALF_WIDTH))
        outer = col_of(x_row_eye, side * (EYE_CENTER_X + EYE_HALF_WIDTH))
        eye_cols.append((min(inner, outer), max(inner, outer)))
    mouth_cols = (col_of(x_row_mouth, -MOUTH_HALF_WIDTH), col_of(x_row_mouth, MOUTH_HALF_WIDTH))
    slits = [(eye_row, *eye_cols[0]), (eye_row, *eye_cols[1]), (mouth_row, *mouth_cols)]
    triangles, dup_source, below = _build_topology(rows, cols, slits)

    n_grid = rows * cols
    uv = np.concatenate([np.stack([U.ravel(), V.ravel()], 1), np.stack([U.ravel(), V.ravel()], 1)[dup_source]])
    n = len(uv)
    is_duplicate = np.zeros(n, dtype=bool)
    is_duplicate[n_grid:] = True
    row_of = np.concatenate([np.repeat(np.arange(rows), cols), (dup_source // cols)])
    col_of_v = np.concatenate([np.tile(np.arange(cols), rows), dup_source % cols])
    fx, fy, fth = front_coordinates(uv[:, 0], uv[:, 1])

    # Eyelid opening: re-parametrise lid vertices along v (upper up, lower down); closed = original v.
    dy_dv = np.gradient(_Y_DENSE, _V_DENSE)
    open_v = uv[:, 1].copy()
    lid_masks = []
    for side, (c0, c1) in zip((-1.0, 1.0), eye_cols):
        xc = side * EYE_CENTER_X
        within = (col_of_v > c0) & (col_of_v < c1)
        s = np.clip((fx - xc) / EYE_HALF_WIDTH, -1.0, 1.0)
        shape = np.power(np.clip(1.0 - s * s, 0.0, 1.0), 0.6)
        upper = within & ((row_of < eye_row) | ((row_of == eye_row) & ~is_duplicate))
        lower = within & ((row_of > eye_row) | ((row_of == eye_row) & is_duplicate))
        dist = np.abs(fy - EYE_CENTER_Y)
        slope = np.interp(uv[:, 1], _V_DENSE, dy_dv)
        up_mm = EYE_OPEN_UP_MM * shape * _gauss(dist / 5.5) * upper
        down_mm = EYE_OPEN_DOWN_MM * shape * _gauss(dist / 4.0) * lower
        open_v -= up_mm / slope
        open_v += down_mm / slope
        lid_masks.append(upper | lower)

    closed = surface(uv[:, 0], uv[:, 1])
    mean = surface(uv[:, 0], open_v)
    blink_fields = [np.where(mask[:, None], closed - mean, 0.0) for mask in lid_masks]

    # Which vertices belong to the lower lip / jaw side of the mouth slit.
    lower_mouth = (row_of > mouth_row) | ((row_of == mouth_row) & is_duplicate)
    lips_side = np.where(lower_mouth, 1.0, -1.0)

    eye_centers = np.stack([_eye_ball_center(-1.0), _eye_ball_center(1.0)])
    identity = _identity_fields(mean, fx, fy, lips_side, eye_centers)
    expression = _expression_fields(mean, fx, fy, fth, lower_mouth, blink_fields, eye_centers)

    # Landmarks.
    lm_vertices = np.zeros((68, 3), dtype=np.int64)
    lm_weights = np.zeros((68, 3), dtype=np.float32)

    def vertex_at(row: int, col: int, lower: bool) -> int:
        vid = row * cols + col
        if lower:
            hits = np.nonzero(dup_source == vid)[0]
            if len(hits):
                return int(n_grid + hits[0])
        return vid

    def set_vertex(k: int, vid: int) -> None:
        lm_vertices[k] = vid
        lm_weights[k] = (1.0, 0.0, 0.0)

    def set_front(k: int, x: float, y: float) -> None:
        u, v = uv_of_front(np.array(x), np.array(y))
        verts, weights = _barycentric_on_grid(float(u), float(v), u_axis, v_axis, below)
        lm_vertices[k] = verts
        lm_weights[k] = weights

    for k in range(9):
        th = np.deg2rad(_JAW_THETA[k])
        v = float(v_of_y(np.array(_JAW_Y[k])))
        u = float(u_of_theta(th))
        verts, weights = _barycentric_on_grid(u, v, u_axis, v_axis, below)
        lm_vertices[k], lm_weights[k] = verts, weights
        verts, weights = _barycentric_on_grid(float(u_of_theta(-th)), v, u_axis, v_axis, below)
        lm_vertices[16 - k], lm_weights[16 - k] = verts, weights
    brow_x = (-50.0, -41.0, -32.0, -23.0, -14.0)
    brow_y = (-24.0, -29.5, -31.5, -30.5, -28.0)
    for k in range(5):
        set_front(17 + k, brow_x[k], brow_y[k])
        set_front(26 - k, -brow_x[k], brow_y[k])
    for k, y in enumerate((-6.0, 5.0, 16.0, NOSE_TIP_Y)):
        set_front(27 + k, 0.0, y)
    for k, (x, y) in enumerate(((-12.0, 34.5), (-6.0, 37.0), (0.0, SUBNASALE_Y), (6.0, 37.0), (12.0, 34.5))):
        set_front(31 + k, x, y)
    # Eyes: corners and lid points on the slit row (upper = original vertex, lower = duplicate). Both eyes run
    # clockwise in the image from their column c0: subject's right eye (image left) 36 outer (c0) .. 39 inner (c1),
    # left eye 42 inner (c0) .. 45 outer (c1); then the lower lid back from c1 (40/46 under b, 41/47 under a).
    for first, (c0, c1) in zip((36, 42), eye_cols):
        third = (c1 - c0) / 3.0
        a_col, b_col = round(c0 + third), round(c0 + 2 * third)
        lid_points = ((c0, False), (a_col, False), (b_col, False), (c1, False), (b_col, True), (a_col, True))
        for offset, (col, lower) in enumerate(lid_points):
            set_vertex(first + offset, vertex_at(eye_row, col, lower))
    # Mouth: outer contour on the vermilion border, inner contour on the slit vertices.
    w = MOUTH_HALF_WIDTH
    set_front(48, -(w + 2.0), MOUTH_Y)
    set_front(54, w + 2.0, MOUTH_Y)
    for k, (xf, yoff) in enumerate(((-0.55, -6.5), (-0.22, -8.8), (0.0, -7.6), (0.22, -8.8), (0.55, -6.5))):
        set_front(49 + k, xf * w, MOUTH_Y + yoff)
    for k, (xf, yoff) in enumerate(((0.55, 8.0), (0.22, 10.2), (0.0, 10.6), (-0.22, 10.2), (-0.55, 8.0))):
        set_front(55 + k, xf * w, MOUTH_Y + yoff)
    m0, m1 = mouth_cols
    span = m1 - m0

    def mouth_col(frac: float) -> int:
        return round(m0 + frac * span)

    set_vertex(60, vertex_at(mouth_row, m0, False))
    set_vertex(64, vertex_at(mouth_row, m1, False))
    for k, frac in enumerate((0.28, 0.5, 0.72)):
        set_vertex(61 + k, vertex_at(mouth_row, mouth_col(frac), False))
    for k, frac in enumerate((0.72, 0.5, 0.28)):
        set_vertex(65 + k, vertex_at(mouth_row, mouth_col(frac), True))

    exp_ranges = np.array([[0.0, 1.0]] * len(EXPRESSION_NAMES), dtype=np.float32)
    mm = MorphableModel(
        mean=mean,
        triangles=triangles,
        identity_basis=np.stack([f.reshape(-1) for f in identity], axis=1),
        identity_std=np.ones(len(identity)),
        expression_basis=np.stack([f.reshape(-1) for f in expression], axis=1),
        expression_std=np.ones(len(expression)),
        expression_names=EXPRESSION_NAMES,
        expression_ranges=exp_ranges,
        landmark_vertices=lm_vertices,
        landmark_weights=lm_weights,
        identity_range=3.0,
        uv=uv,
        name="faceworld",
        identity_names=IDENTITY_NAMES,
    )
    lms = mm.landmarks(mm.mean)
    offsets = np.stack([eye_centers[0] - 0.5 * (lms[36] + lms[39]), eye_centers[1] - 0.5 * (lms[42] + lms[45])])
    u0, u1 = float(u_of_theta(-np.deg2rad(95.0))), float(u_of_theta(np.deg2rad(95.0)))
    v0, v1 = float(v_of_y(np.array(-95.0))), float(v_of_y(np.array(112.0)))
    return FaceWorldModel(
        morphable=mm,
        grid_shape=(rows, cols),
        vertex_front_xy=np.stack([fx, fy], 1).astype(np.float32),
        eye_corner_landmarks=((36, 39), (42, 45)),
        eye_center_offsets=offsets.astype(np.float32),
        eye_radius=EYE_RADIUS_MM,
        prnet_uv_box=(u0, u1, v0, v1),
    )


def _eye_rigid(field: np.ndarray, x: np.ndarray, y: np.ndarray, eye_centers: np.ndarray) -> np.ndarray:
    """Make a displacement field rigid (a translation) over each eye region so lids keep clear of the ball."""
    out = field.copy()
    for c in eye_centers:
        r = np.hypot((x - c[0]) / (EYE_HALF_WIDTH + 5.0), (y - c[1]) / 10.0)
        m = np.exp(-(r**4))[:, None]
        k = int(np.argmin((x - c[0]) ** 2 + (y - c[1]) ** 2))
        out = out * (1 - m) + field[k] * m
    return out


def _identity_fields(mean, x, y, lips_side, eye_centers) -> list[np.ndarray]:
    """Unit (1 std) displacement fields of the identity components, in IDENTITY_NAMES order."""
    ax, sx = np.abs(x), np.sign(x)
    z = mean[:, 2]
    zero = np.zeros_like(x)

    def f(dx, dy, dz) -> np.ndarray:
        field = np.stack([dx + zero, dy + zero, dz + zero], axis=1)
        return _eye_rigid(field, x, y, eye_centers)

    g_chin = _gauss(np.hypot(x / 18.0, (y - 92.0) / 12.0))
    g_tip = _gauss(np.hypot(x / 12.0, (y - NOSE_TIP_Y) / 10.0))
    g_ala = _gauss(np.hypot(x / 20.0, (y - 32.0) / 8.0))
    g_nose = nose_height(y) / 23.0 * _gauss(x / nose_sigma(y))
    g_eyes = _gauss(np.hypot((ax - EYE_CENTER_X) / 14.0, (y - EYE_CENTER_Y) / 12.0))
    g_brow = _gauss((y - BROW_Y) / 7.0) * _gauss((x / 45.0) ** 2)
    g_cheek = _gauss(np.hypot((ax - 42.0) / 14.0, (y - 18.0) / 13.0))
    g_lips = _gauss(np.hypot(x / 24.0, (y - MOUTH_Y) / 9.0))
    g_mouth = _gauss(np.hypot(x / 30.0, (y - MOUTH_Y) / 10.0))
    g_low_cheek = _gauss(np.hypot((ax - 45.0) / 15.0, (y - 50.0) / 16.0))
    # Smooth ramps (kinks in a displacement field would show as shading creases).
    t = (y + 5.0) / 100.0
    lower_face = 0.5 * (t + np.sqrt(t * t + 0.01))
    jaw = _smoothstep(30.0, 80.0, y)
    forehead = _smoothstep(0.0, 1.0, (-30.0 - y) / 70.0)
    return [
        f(0.07 * x, 0, 0),
        f(0, 8.0 * lower_face, 0),
        f(0, 0, 0.06 * z),
        f(0.11 * x * jaw, 0, 0),
        f(0, 4.0 * g_chin, -4.0 * g_chin),
        f(0, 4.0 * g_tip, -1.5 * g_tip),
        f(0.2 * x * g_ala, 0, 0),
        f(0, 0, -4.0 * g_nose),
        f(3.0 * sx * g_eyes, 0, 0),
        f(0, 3.0 * g_eyes, 0),
        f(0, 0, -3.0 * g_brow),
        f(2.5 * sx * g_cheek, 0, -3.0 * g_cheek),
        f(0, 1.5 * lips_side * g_lips, -2.0 * g_lips),
        f(0.12 * x * g_mouth, 0, 0),
        f(0, 0, 5.0 * forehead),
        f(4.0 * sx * g_low_cheek, 0, -2.5 * g_low_cheek),
    ]


def _expression_fields(mean, x, y, theta, lower_mouth, blink_fields, eye_centers) -> list[np.ndarray]:
    """Displacement fields at full strength (coefficient 1), in EXPRESSION_NAMES order."""
    ax, sx = np.abs(x), np.sign(x)
    zero = np.zeros_like(x)
    front = _smoothstep(0.05, 0.45, np.cos(theta))

    def f(dx, dy, dz, rigid_eyes: bool = True) -> np.ndarray:
        field = np.stack([dx + zero, dy + zero, dz + zero], axis=1) * front[:, None]
        return _eye_rigid(field, x, y, eye_centers) if rigid_eyes else field

    # Jaw: rotation about the TMJ axis for the lower face, fading over the cheeks and down the neck.
    hinge_y, hinge_z = JAW_HINGE_YZ
    phi = np.deg2rad(JAW_OPEN_DEG)
    ry, rz = mean[:, 1] - hinge_y, mean[:, 2] - hinge_z
    rot = np.stack([zero, ry * np.cos(phi) - rz * np.sin(phi) - ry, ry * np.sin(phi) + rz * np.cos(phi) - rz], 1)
    near_mouth = _gauss(np.maximum(ax - MOUTH_HALF_WIDTH, 0.0) / 14.0)
    w_side = _smoothstep(MOUTH_Y - 6.0, MOUTH_Y + 16.0, y)
    w_jaw = np.where(near_mouth > 0.5, np.where(lower_mouth, 1.0, 0.0), w_side) * near_mouth + w_side * (1 - near_mouth)
    w_jaw = np.maximum(w_jaw, np.where(lower_mouth & (y > MOUTH_Y - 1), near_mouth, 0.0))
    w_jaw *= 1.0 - _smoothstep(118.0, 150.0, y)
    jaw_open = rot * w_jaw[:, None]

    g_corner = _gauss(np.hypot((ax - MOUTH_HALF_WIDTH) / 11.0, (y - MOUTH_Y) / 10.0))
    g_cheek = _gauss(np.hypot((ax - 38.0) / 14.0, (y - 35.0) / 13.0))
    smile = f(sx * (5.0 * g_corner + 1.0 * g_cheek), -5.0 * g_corner - 3.0 * g_cheek, 2.5 * g_corner - 2.0 * g_cheek)
    g_lips = _gauss(np.hypot(x / 22.0, (y - MOUTH_Y) / 10.0))
    pucker = f(-0.3 * x * g_lips, 0.0, -7.0 * g_lips)
    w_brow = _gauss((y - BROW_Y) / 12.0) * np.where(y < BROW_Y, 1.0, 1.0) * _gauss((x / 55.0) ** 2)
    w_brow = np.where(y < BROW_Y, np.maximum(w_brow, 0.6 * _smoothstep(-110.0, -40.0, y)), w_brow)
    brow_raise = f(0.0, -6.0 * w_brow, 0.0)
    g_frown = _gauss(np.hypot((ax - 14.0) / 12.0, (y - BROW_Y) / 9.0))
    brow_frown = f(-3.0 * sx * g_frown, 3.0 * g_frown, -1.0 * g_frown)
    g_puff = _gauss(np.hypot((ax - 42.0) / 15.0, (y - 50.0) / 15.0))
    cheek_puff = f(4.5 * sx * g_puff, 0.0, -5.0 * g_puff)
    mouth_frown = f(0.0, 4.0 * g_corner, 0.5 * g_corner)
    return [
        jaw_open,
        smile,
        pucker,
        brow_raise,
        brow_frown,
        blink_fields[1],  # blink_left: the subject's left eye (x > 0)
        blink_fields[0],
        cheek_puff,
        mouth_frown,
    ]


@lru_cache(maxsize=4)
def default_model(rows: int = 120, cols: int = 120) -> FaceWorldModel:
    """The shared default model (built once per process)."""
    return build_faceworld_model(rows, cols)


def default_landmark_template() -> np.ndarray:
    """Mean-face 68 iBUG landmarks (68,3) in model space, the template of `estimate_pose_2d`."""
    mm = default_model().morphable
    return mm.landmarks(mm.mean)
