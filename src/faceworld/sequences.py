"""Smooth talking-head sequences: one identity, pose / expression trajectories, blinks, visemes, saccades.

Motion is built from band-limited pieces so it looks like a person on a call: slow head sway (sums of
low-frequency sinusoids), a viseme track (short mouth shapes of 80-220 ms with pauses) smoothed over ~40 ms,
blinks every few seconds (about 230 ms, closing faster than opening), gaze saccades to new targets every
0.4-2 s, occasional brow raises and smiles; optional hand-held camera shake (small high-frequency jitter).
Deterministic in (identity_seed, seed); any length and frame rate.
"""

from __future__ import annotations

import numpy as np

from src.faceworld.params import GAZE_LIMIT, FaceParams
from src.faceworld.world import FaceWorld, random_light

# Viseme -> (jaw_open, lips_pucker, smile) targets.
VISEMES: dict[str, tuple[float, float, float]] = {
    "sil": (0.0, 0.0, 0.0),
    "AA": (0.75, 0.0, 0.1),
    "E": (0.4, 0.0, 0.45),
    "I": (0.22, 0.0, 0.6),
    "O": (0.5, 0.55, 0.0),
    "U": (0.22, 0.85, 0.0),
    "M": (0.0, 0.15, 0.0),
    "F": (0.1, 0.0, 0.25),
    "L": (0.35, 0.0, 0.15),
}
_SPOKEN = [v for v in VISEMES if v != "sil"]


def viseme_track(num_frames: int, fps: float, rng: np.random.Generator) -> list[str]:
    """One viseme name per frame: words of 2-6 visemes (80-220 ms each) separated by pauses."""
    track: list[str] = []
    while len(track) < num_frames:
        if rng.random() < 0.25:
            track += ["sil"] * max(1, int(rng.uniform(0.15, 0.6) * fps))
            continue
        for _ in range(rng.integers(2, 7)):
            track += [str(rng.choice(_SPOKEN))] * max(1, round(rng.uniform(0.08, 0.22) * fps))
    return track[:num_frames]


def _smooth(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    if sigma_frames < 0.3 or len(values) < 2:
        return values
    radius = int(np.ceil(3 * sigma_frames))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    k /= k.sum()
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    out = np.stack([np.convolve(padded[:, c], k, mode="valid") for c in range(values.shape[1])], 1)
    return out


def _sway(t: np.ndarray, rng: np.random.Generator, amplitude: float, freqs: tuple[float, float]) -> np.ndarray:
    """A sum of three low-frequency sinusoids with random phases, scaled to about +-amplitude."""
    out = np.zeros_like(t)
    for _ in range(3):
        f = rng.uniform(*freqs)
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.5, 1.0)
    return amplitude * out / 2.0


def blink_curve(num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure in [0, 1] per frame: blinks every 2-6 s: ~70 ms closing, ~60 ms closed, ~100 ms opening."""
    t = np.arange(num_frames) / fps
    out = np.zeros(num_frames)
    start = rng.uniform(0.3, 3.0)
    close, hold, open_ = 0.07, 0.06, 0.10
    while start < t[-1] + 1.0:
        rising = np.clip((t - start) / close, 0, 1)
        falling = np.clip(1 - (t - start - close - hold) / open_, 0, 1)
        out = np.maximum(out, np.minimum(rising, falling))
        start += rng.uniform(2.0, 6.0)
    return out


def talking_head(
    world: FaceWorld,
    identity_seed: int,
    num_frames: int,
    fps: float = 15.0,
    seed: int = 0,
    camera_shake: bool = False,
    distance_mm: float = 700.0,
    pose_amplitude_deg: float = 10.0,
) -> list[FaceParams]:
    """Per-frame FaceParams of one identity talking; see the module docstring."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rng = np.random.default_rng([int(identity_seed), int(seed), 777])
    t = np.arange(num_frames) / fps
    base = world.neutral_params(identity_seed)
    light = random_light(rng)
    background = int(rng.integers(1 << 30))

    yaw = _sway(t, rng, pose_amplitude_deg, (0.05, 0.3))
    pitch = _sway(t, rng, 0.5 * pose_amplitude_deg, (0.05, 0.35))
    roll = _sway(t, rng, 0.25 * pose_amplitude_deg, (0.03, 0.2))
    trans = np.stack(
        [
            _sway(t, rng, 12.0, (0.03, 0.2)),
            _sway(t, rng, 8.0, (0.03, 0.2)),
            distance_mm + _sway(t, rng, 25.0, (0.02, 0.1)),
        ],
        1,
    )
    if camera_shake:
        jitter = _smooth(rng.standard_normal((num_frames, 6)), 0.7)
        yaw, pitch, roll = yaw + 0.6 * jitter[:, 0], pitch + 0.6 * jitter[:, 1], roll + 0.4 * jitter[:, 2]
        trans = trans + 1.5 * jitter[:, 3:6]

    names = world.expression_names
    expr = np.zeros((num_frames, len(names)))
    if "jaw_open" in names:
        track = viseme_track(num_frames, fps, rng)
        shapes = np.array([VISEMES[v] for v in track])
        shapes = _smooth(shapes, 0.04 * fps)
        for col, name in enumerate(("jaw_open", "lips_pucker", "smile")):
            expr[:, names.index(name)] = shapes[:, col]
        blink = blink_curve(num_frames, fps, rng)
        expr[:, names.index("blink_left")] = blink
        expr[:, names.index("blink_right")] = blink
        mood = np.clip(_sway(t, rng, 0.35, (0.02, 0.1)) + 0.15, 0, 1)
        expr[:, names.index("smile")] = np.clip(expr[:, names.index("smile")] + mood, 0, 1)
        expr[:, names.index("brow_raise")] = np.clip(_sway(t, rng, 0.6, (0.05, 0.3)) - 0.1, 0, 1)
    else:  # a loaded 3DMM: smooth random expression trajectories in std units
        expr = np.stack([_sway(t, rng, 0.8, (0.1, 0.8)) for _ in names], 1) if len(names) else expr
    lo, hi = world.model.expression_ranges[:, 0], world.model.expression_ranges[:, 1]
    expr = np.clip(expr, lo, hi)

    gaze = np.zeros((num_frames, 2))
    k, target = 0, rng.uniform(-10, 10, 2)
    while k < num_frames:
        hold = max(1, int(rng.uniform(0.4, 2.0) * fps))
        gaze[k : k + hold] = target
        k += hold
        target = np.clip(rng.normal(0, 8, 2), -GAZE_LIMIT + 5, GAZE_LIMIT - 5)
    gaze = _smooth(gaze, 0.015 * fps)

    return [
        base.replace(
            expression=expr[i],
            yaw=float(yaw[i]),
            pitch=float(pitch[i]),
            roll=float(roll[i]),
            translation=trans[i],
            gaze=gaze[i],
            light=light,
            background=background,
        )
        for i in range(num_frames)
    ]
