"""Second-order spherical-harmonics (9 coefficients per colour) Lambertian shading.

Ramamoorthi & Hanrahan (2001): the irradiance of a distant environment is, to a few percent, its projection
onto the first 9 real SH functions convolved with the clamped cosine (factors pi, 2pi/3, pi/4 for l = 0,1,2).
`irradiance_basis` folds those factors and 1/pi in, so shading = irradiance_basis(n) @ L and
colour = albedo * shading. Normals are unit vectors in camera space.
"""

from __future__ import annotations

import numpy as np

NUM_SH = 9
_Y00 = 0.282095
_Y1 = 0.488603
_Y2 = 1.092548
_Y20 = 0.315392
_Y22 = 0.546274
_A = (1.0, 2.0 / 3.0, 0.25)  # clamped-cosine convolution / pi for bands 0, 1, 2


def sh_basis(directions: np.ndarray) -> np.ndarray:
    """Real SH basis Y_lm (N,9) of unit directions (N,3) in the order 00, 1-1, 10, 11, 2-2, 2-1, 20, 21, 22."""
    d = np.asarray(directions, dtype=np.float32)
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    return np.stack(
        [
            np.full_like(x, _Y00),
            _Y1 * y,
            _Y1 * z,
            _Y1 * x,
            _Y2 * x * y,
            _Y2 * y * z,
            _Y20 * (3.0 * z * z - 1.0),
            _Y2 * x * z,
            _Y22 * (x * x - y * y),
        ],
        axis=1,
    )


_BAND_FACTORS = np.array([_A[0], _A[1], _A[1], _A[1], _A[2], _A[2], _A[2], _A[2], _A[2]], dtype=np.float32)


def irradiance_basis(normals: np.ndarray) -> np.ndarray:
    """(N,9) so that shading = irradiance_basis(n) @ L (L: (9,3) lighting coefficients)."""
    return sh_basis(normals) * _BAND_FACTORS


def shade(normals: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Lambertian shading (N,3) for unit normals (N,3) under SH lighting (9,3); not clamped."""
    L = check_light(light)
    return irradiance_basis(normals) @ L.astype(np.float32)


def check_light(light: np.ndarray, name: str = "light") -> np.ndarray:
    L = np.asarray(light, dtype=np.float64)
    if L.shape != (NUM_SH, 3):
        raise ValueError(f"{name}: expected SH coefficients of shape (9, 3), got {L.shape}")
    if not np.all(np.isfinite(L)):
        raise ValueError(f"{name}: SH coefficients contain NaN or infinity")
    return L


def sh_light(
    ambient: float | np.ndarray = 0.7, direction: np.ndarray | None = None, intensity: float | np.ndarray = 0.5
) -> np.ndarray:
    """SH coefficients (9,3) of a uniform ambient term plus one distant light from `direction`.

    `direction` points from the surface towards the light, in camera space (e.g. (0.3, -0.5, -1) = from
    the upper right of a camera looking along +z). With these coefficients the shading of a normal facing
    the light is about ambient + intensity.
    """
    amb = np.broadcast_to(np.asarray(ambient, dtype=np.float64), (3,))
    L = np.zeros((NUM_SH, 3))
    L[0] = amb / _Y00
    if direction is not None:
        d = np.asarray(direction, dtype=np.float64).reshape(1, 3)
        d = d / max(np.linalg.norm(d), 1e-12)
        inten = np.broadcast_to(np.asarray(intensity, dtype=np.float64), (3,))
        # A delta light of power I has coefficients I * Y_lm(d); times pi to undo the basis' 1/pi.
        L += np.pi * sh_basis(d)[0].astype(np.float64)[:, None] * inten[None, :]
    return L
