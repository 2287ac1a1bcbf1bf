"""Normalised mean error of landmarks: mean point distance / outer-eye-corner distance (300-W convention)."""

from __future__ import annotations

import numpy as np

from src.landmarks.scheme import OUTER_EYE_CORNERS, REGIONS


def normalised_mean_error(predicted: np.ndarray, truth: np.ndarray, points: tuple[int, ...] | None = None) -> float:
    """NME of one face; `points` restricts the mean to some indices (the normaliser always uses the truth)."""
    pred = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(truth, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(f"landmark arrays must have the same (N, 2) shape, got {pred.shape} and {true.shape}")
    a, b = OUTER_EYE_CORNERS
    normaliser = float(np.linalg.norm(true[a] - true[b]))
    if normaliser <= 0:
        raise ValueError("truth landmarks have coincident outer eye corners; NME is undefined")
    errors = np.linalg.norm(pred - true, axis=1)
    if points is not None:
        errors = errors[list(points)]
    return float(errors.mean() / normaliser)


def nme_by_region(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """NME over all points and per region of the scheme (jaw, brows, nose, eyes, mouth, pupils)."""
    out = {
        "all": normalised_mean_error(predicted, truth),
        "ibug68": normalised_mean_error(predicted, truth, tuple(range(68))),
    }
    out.update({name: normalised_mean_error(predicted, truth, idx) for name, idx in REGIONS.items()})
    return out
