"""Per-identity appearance painted in the procedural model's UV space: albedo, labels, wrinkle maps, eyes.

Everything is laid out in front coordinates (x, y in mm, theta) of each texel, the same coordinates the
geometry's features use, so lips, brows and wrinkles land on the right bumps at any texture size.
Albedo is linear RGB in [0, 1] (the renderer applies a display gamma). Displacement maps are in mm
(negative = groove) with one map per wrinkle group; the expression decides how strongly each shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from src.faceworld.model import (
    BROW_Y,
    EYE_CENTER_X,
    EYE_CENTER_Y,
    EYE_HALF_WIDTH,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    SUBNASALE_Y,
    ear_weight,
    front_coordinates,
)

# Mask labels (the "mask" modality).
LABEL_BACKGROUND = 0
LABEL_SKIN = 1
LABEL_HAIR = 2
LABEL_EYES = 3
LABEL_MOUTH_INTERIOR = 4
LABEL_LIPS = 5
LABEL_BROWS = 6
LABEL_NECK = 7
MASK_LABELS = {
    "background": LABEL_BACKGROUND,
    "skin": LABEL_SKIN,
    "hair": LABEL_HAIR,
    "eyes": LABEL_EYES,
    "mouth_interior": LABEL_MOUTH_INTERIOR,
    "lips": LABEL_LIPS,
    "brows": LABEL_BROWS,
    "neck": LABEL_NECK,
}

WRINKLE_GROUPS = ("forehead", "crows_feet", "nasolabial", "glabella", "static")

# Skin tones in display sRGB, light to dark; skin_tone in [0, 1] interpolates along them.
_SKIN_PALETTE = np.array(
    [(0.96, 0.80, 0.69), (0.89, 0.70, 0.57), (0.78, 0.57, 0.43), (0.60, 0.42, 0.30), (0.40, 0.27, 0.19)]
)
_HAIR_PALETTE = np.array(
    [(0.08, 0.06, 0.05), (0.22, 0.14, 0.08), (0.42, 0.27, 0.14), (0.70, 0.55, 0.32), (0.55, 0.22, 0.10)]
)
_IRIS_PALETTE = np.array([(0.25, 0.14, 0.07), (0.40, 0.25, 0.10), (0.30, 0.45, 0.20), (0.28, 0.42, 0.62)])


def to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.power(np.clip(srgb, 0.0, 1.0), 2.2)


def _gauss(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * t * t)


def _smoothstep(lo: float, hi: float, t: np.ndarray) -> np.ndarray:
    s = np.clip((t - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _noise(rng: np.random.Generator, size: int, scale_px: float) -> np.ndarray:
    """Smooth value noise (zero mean, unit std) with features about `scale_px` texels wide."""
    coarse = max(2, round(size / max(scale_px, 1.0)))
    grid = rng.standard_normal((coarse, coarse)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return (out - out.mean()) / (out.std() + 1e-6)


@dataclass(frozen=True)
class UVLayout:
    """Front coordinates of every texel of an (S,S) UV map (texel (i, j) = u (j+0.5)/S, v (i+0.5)/S)."""

    size: int
    x: np.ndarray
    y: np.ndarray
    theta: np.ndarray


@lru_cache(maxsize=4)
def uv_layout(size: int) -> UVLayout:
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    U, V = np.meshgrid(c, c)
    x, y, theta = front_coordinates(U, V)
    return UVLayout(size, x.astype(np.float32), y.astype(np.float32), theta.astype(np.float32))


def hairline_y(theta: np.ndarray) -> np.ndarray:
    """y of the hairline at azimuth theta (hair above it): forehead, temples, sideburns, nape."""
    a = np.abs(np.rad2deg(theta))
    return -80.0 + 85.0 * _smoothstep(38.0, 78.0, a) + 70.0 * _smoothstep(92.0, 118.0, a)


def lip_region(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Soft mask of the vermilion (lips), cupid's bow on the upper lip."""
    s = np.clip(np.abs(x) / (MOUTH_HALF_WIDTH + 1.5), 0.0, 1.0)
    bow = 1.0 - 0.25 * _gauss(x / 2.5)
    upper = MOUTH_Y - 8.5 * np.power(1.0 - s * s, 0.55) * bow
    lower = MOUTH_Y + 10.8 * np.power(1.0 - s * s, 0.7)
    inside = np.minimum(y - upper, lower - y)
    return _smoothstep(-0.6, 0.6, inside) * (s < 1.0)


def brow_region(x: np.ndarray, y: np.ndarray, thickness: float = 1.0) -> np.ndarray:
    """Soft mask of the eyebrows: an arch from the inner to the outer end, tapering outwards."""
    ax = np.abs(x)
    t = np.clip((ax - 13.0) / 39.0, 0.0, 1.0)
    centre = BROW_Y - 3.0 * np.sin(np.pi * np.clip(t * 1.2, 0, 1)) + 2.5 * t
    half = thickness * (4.2 - 2.2 * t)
    body = _smoothstep(-0.8, 0.8, half - np.abs(y - centre))
    ends = _smoothstep(11.0, 15.0, ax) * (1.0 - _smoothstep(50.0, 54.0, ax))
    return body * ends


def base_labels(layout: UVLayout, hair: bool) -> np.ndarray:
    """(S,S) uint8 region labels of the face mesh's UV (skin, lips, brows, neck, hair)."""
    x, y, theta = layout.x, layout.y, layout.theta
    labels = np.full(x.shape, LABEL_SKIN, dtype=np.uint8)
    neck = (y > 104.0) | ((np.abs(np.rad2deg(theta)) > 75.0) & (y > 70.0))
    labels[neck] = LABEL_NECK
    labels[lip_region(x, y) > 0.5] = LABEL_LIPS
    labels[(brow_region(x, y) > 0.5) & (np.cos(theta) > 0.3)] = LABEL_BROWS
    if hair:
        labels[hair_region(layout) > 0.5] = LABEL_HAIR
    return labels


def hair_region(layout: UVLayout) -> np.ndarray:
    """Soft hair mask: above the hairline, except over the ears."""
    ears = ear_weight(layout.theta, layout.y)
    return _smoothstep(-1.5, 1.5, hairline_y(layout.theta) - layout.y) * (1.0 - _smoothstep(0.05, 0.3, ears))


@dataclass
class IdentityAppearance:
    """The painted appearance of one identity."""

    albedo: np.ndarray  # (S,S,3) float32 linear RGB
    labels: np.ndarray  # (S,S) uint8
    wrinkles: np.ndarray  # (G,S,S) float32 mm, one map per WRINKLE_GROUPS entry
    wrinkle_gradients: np.ndarray  # (S,S,2G) float32 mm per UV unit: d/du of group g at 2g, d/dv at 2g + 1
    iris_color: np.ndarray  # (3,) linear
    iris_pattern_seed: int
    hair_color: np.ndarray  # (3,) linear
    skin_color: np.ndarray  # (3,) linear
    hair_volume_mm: float


def paint_identity(size: int, albedo_seed: int, skin_tone: float, hair: bool) -> IdentityAppearance:
    """Paint albedo, labels and wrinkle maps of one identity (deterministic in its arguments)."""
    layout = uv_layout(size)
    rng = np.random.default_rng([int(albedo_seed), 7121])
    x, y, theta = layout.x, layout.y, layout.theta
    ax = np.abs(x)

    tone = np.clip(skin_tone, 0.0, 1.0) * (len(_SKIN_PALETTE) - 1)
    i0 = int(np.floor(min(tone, len(_SKIN_PALETTE) - 1.001)))
    skin_srgb = _SKIN_PALETTE[i0] * (1 - (tone - i0)) + _SKIN_PALETTE[i0 + 1] * (tone - i0)
    skin_srgb = np.clip(skin_srgb * (1.0 + 0.04 * rng.standard_normal(3)), 0.0, 1.0)
    skin = to_linear(skin_srgb).astype(np.float32)
    hair_color = to_linear(_HAIR_PALETTE[rng.integers(len(_HAIR_PALETTE))] * rng.uniform(0.8, 1.15)).astype(np.float32)
    iris_color = to_linear(_IRIS_PALETTE[rng.integers(len(_IRIS_PALETTE))] * rng.uniform(0.8, 1.2)).astype(np.float32)

    albedo = np.broadcast_to(skin, (size, size, 3)).copy()
    # Low-frequency blotchiness and redness (cheeks, nose, lips surroundings), slightly paler forehead.
    albedo *= (1.0 + 0.05 * _noise(rng, size, size / 6))[..., None]
    red = 0.5 * _gauss(np.hypot((ax - 40.0) / 14.0, (y - 25.0) / 12.0)) + 0.35 * _gauss(np.hypot(x / 9, (y - 25) / 9))
    albedo *= 1.0 + red[..., None] * np.array([0.06, -0.10, -0.10], np.float32)
    albedo *= (1.0 + 0.04 * _smoothstep(-20.0, -70.0, y))[..., None]
    # Darker eye surroundings and upper-lid crease, lash line on the slit of each eye.
    for side in (-1.0, 1.0):
        ex, r = x - side * EYE_CENTER_X, np.hypot((x - side * EYE_CENTER_X) / 17.0, (y - EYE_CENTER_Y) / 11.0)
        albedo *= (1.0 - 0.10 * _gauss(r / 0.8))[..., None]
        span = np.clip(1.0 - (ex / EYE_HALF_WIDTH) ** 2, 0.0, 1.0)
        lash = _gauss((y - EYE_CENTER_Y + 0.6) / 0.9) * np.power(span, 0.3)
        albedo *= (1.0 - 0.75 * lash)[..., None]
        lower_lash = _gauss((y - EYE_CENTER_Y - 0.8) / 0.6) * np.power(span, 0.5)
        albedo *= (1.0 - 0.35 * lower_lash)[..., None]
        crease = _gauss((y - EYE_CENTER_Y + 4.3 + 1.5 * span) / 0.8) * span
        albedo *= (1.0 - 0.15 * crease)[..., None]
    # Lips: redder and darker, with a faint vertical texture.
    lips = lip_region(x, y) * (1.0 + 0.05 * np.sin(x * 2.2))
    lip_color = skin * np.array([0.78, 0.45, 0.48], np.float32) * rng.uniform(0.85, 1.1)
    albedo = albedo * (1 - lips[..., None]) + lip_color * lips[..., None]
    # Nostrils.
    nostril = _gauss(np.hypot((ax - 6.5) / 3.2, (y - SUBNASALE_Y + 1.5) / 1.6))
    albedo *= (1.0 - 0.8 * nostril)[..., None]
    # Brows: hair colour with strand texture.
    strands = 0.6 + 0.4 * np.clip(_noise(rng, size, 1.2), -1.5, 1.5) / 1.5
    brows = brow_region(x, y, rng.uniform(0.8, 1.2)) * (np.cos(theta) > 0.3) * np.clip(strands, 0, 1)
    brow_color = np.minimum(hair_color * 0.9, skin * 0.35)
    albedo = albedo * (1 - brows[..., None]) + brow_color * brows[..., None]
    # Neck slightly darker.
    albedo *= (1.0 - 0.08 * _smoothstep(100.0, 125.0, y))[..., None]
    # Scalp or hair.
    if hair:
        h = hair_region(layout)
        streak = cv2.resize(rng.standard_normal((size // 2, 8)).astype(np.float32), (size, size))
        fine = _noise(rng, size, 1.5)
        hair_tex = hair_color * (1.0 + 0.25 * np.clip(streak, -2, 2)[..., None] + 0.15 * fine[..., None])
        albedo = albedo * (1 - h[..., None]) + np.clip(hair_tex, 0, 1) * h[..., None]
    # Pores / fine texture.
    albedo *= (1.0 + 0.025 * _noise(rng, size, 1.0))[..., None]
    albedo = np.clip(albedo, 0.0, 1.0).astype(np.float32)

    wrinkles = _wrinkle_maps(layout, rng)
    texel = 1.0 / size
    grads = []
    for w in wrinkles:
        gv, gu = np.gradient(w, texel)
        grads += [gu, gv]
    return IdentityAppearance(
        albedo=albedo,
        labels=base_labels(layout, hair),
        wrinkles=wrinkles,
        wrinkle_gradients=np.ascontiguousarray(np.stack(grads, axis=-1), dtype=np.float32),
        iris_color=iris_color,
        iris_pattern_seed=int(rng.integers(1 << 30)),
        hair_color=hair_color,
        skin_color=skin,
        hair_volume_mm=float(rng.uniform(4.0, 10.0)) if hair else 0.0,
    )


def _wrinkle_maps(layout: UVLayout, rng: np.random.Generator) -> np.ndarray:
    """(G,S,S) displacement maps in mm for WRINKLE_GROUPS (depth at full expression strength)."""
    x, y, theta = layout.x, layout.y, layout.theta
    ax, sx = np.abs(x), np.sign(x)
    front = (np.cos(theta) > 0.2).astype(np.float32)
    depth = rng.uniform(0.35, 0.6)
    width = 0.9
    # Forehead lines: 4 horizontal, slightly wavy grooves above the brows.
    forehead = np.zeros_like(x)
    for k in range(4):
        yk = -44.0 - 8.5 * k + rng.uniform(-1.5, 1.5)
        wave = 1.2 * np.sin(x / 14.0 + rng.uniform(0, 6.28)) + 0.01 * x * x / 10.0
        span = 1.0 - _smoothstep(30.0 - 3 * k, 46.0 - 3 * k, ax)
        forehead -= depth * _gauss((y - yk - wave) / width) * span
    # Crow's feet: short lines fanning out from the outer eye corners.
    crows = np.zeros_like(x)
    cx, cy = EYE_CENTER_X + EYE_HALF_WIDTH + 1.5, EYE_CENTER_Y
    r = np.hypot(ax - cx, y - cy)
    ang = np.arctan2(y - cy, ax - cx)
    for a0 in (-0.55, -0.2, 0.15, 0.45):
        crows -= depth * _gauss((ang - a0) * np.maximum(r, 1.0) / width) * _smoothstep(2.0, 4.0, r)
    crows *= 1.0 - _smoothstep(11.0, 16.0, r)
    crows *= (ax > cx - 1.0).astype(np.float32)
    # Nasolabial folds: from the nose wing down past the mouth corner.
    t = np.clip((y - 30.0) / 42.0, 0.0, 1.0)
    fold_x = 17.0 + 12.0 * t + 4.0 * np.sin(np.pi * t)
    nasolabial = (
        -1.6 * depth * _gauss((ax - fold_x) / 2.0) * _smoothstep(28.0, 34.0, y) * (1.0 - _smoothstep(68.0, 76.0, y))
    )
    # Glabella: two vertical lines between the brows.
    glabella = -depth * _gauss((ax - 4.5) / 0.9) * _gauss((y - BROW_Y - 4.0) / 6.0)
    # Static fine texture (always on, small).
    static = -0.08 * np.abs(_noise(rng, layout.size, 2.0)) - 0.12 * depth * _gauss((y - MOUTH_Y - 6) / 1.0) * _gauss(
        ax / 18.0
    )
    maps = np.stack([forehead, crows, nasolabial, glabella, static]) * front
    del sx
    return maps.astype(np.float32)


def wrinkle_weights(expression: dict[str, float], strength: float) -> np.ndarray:
    """Weight of each wrinkle group for an expression: forehead lines with brow raise, crow's feet and
    nasolabial folds with smile, glabella lines with frown; a small constant share so ageing shows."""
    brow = expression.get("brow_raise", 0.0)
    smile = expression.get("smile", 0.0)
    frown = expression.get("brow_frown", 0.0)
    return strength * np.array(
        [0.1 + 0.9 * brow, 0.1 + 0.9 * smile, 0.3 + 0.7 * smile, 0.05 + 0.95 * frown, 1.0], dtype=np.float32
    )


def iris_colors(
    local: np.ndarray, iris_color: np.ndarray, pattern_seed: int, iris_angle: float = 0.53
) -> tuple[np.ndarray, np.ndarray]:
    """Eyeball albedo from eye-local unit directions (gaze = -z): sclera, iris with streaks, pupil.

    Returns (albedo (M,3) linear, is_pupil_or_iris (M,) bool)."""
    d = local / np.maximum(np.linalg.norm(local, axis=1, keepdims=True), 1e-9)
    polar = np.arccos(np.clip(-d[:, 2], -1.0, 1.0))
    azim = np.arctan2(d[:, 1], d[:, 0])
    rng = np.random.default_rng(pattern_seed)
    freqs = rng.integers(7, 29, size=4)
    phases = rng.uniform(0, 2 * np.pi, size=4)
    streak = sum(np.sin(f * azim + p) for f, p in zip(freqs, phases)) / 4.0
    r = polar / iris_angle
    iris = iris_color[None, :] * (0.85 + 0.35 * streak[:, None]) * (0.7 + 0.5 * r[:, None])
    iris *= 1.0 - 0.6 * _smoothstep(0.82, 1.0, r)[:, None]  # limbal ring
    sclera = np.array([0.80, 0.76, 0.72], np.float32)[None, :] * (1.0 - 0.25 * _smoothstep(0.9, 1.6, polar))[:, None]
    sclera = sclera * (1 + np.array([0.0, -0.08, -0.08]) * _smoothstep(0.9, 1.5, polar)[:, None])
    pupil = r < 0.38
    out = np.where((r < 1.0)[:, None], iris, sclera)
    out[pupil] = 0.01
    return np.clip(out, 0.0, 1.0).astype(np.float32), r < 1.0
