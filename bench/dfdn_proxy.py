"""DFDN proxy estimation on FaceWorld photos: landmark reprojection error (px) and vertex error (mm) against the
true shape, without and with the expression prior (emotion-feature nearest neighbour), and with the true
expression as the prior (the best a prior can do).

The 68 input landmarks are FaceWorld's true ones plus Gaussian noise (--noise-px, a detector's typical error),
so the fit cannot simply interpolate them. Reprojection error is measured against the CLEAN landmarks; vertex
error is the mean distance over the face vertices between the fitted and the true model-space shape (identity +
expression, no pose). The emotion CNN is trained here first (src/apps/dfdn/emotion.py) on other identities.

    python bench/dfdn_proxy.py [--photos 48 --noise-px 2 --train-samples 800 --epochs 8]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.apps.dfdn.emotion import (
    CLASSES,
    EMOTIONS,
    build_emotion_prior,
    face_crop,
    features_of,
    render_emotion_samples,
)
from src.faceworld.writers.common import world_for
from src.geometry.fitting import LandmarkFit, fit_proxy


def reprojection_px(fit: LandmarkFit, camera, clean: np.ndarray) -> float:
    projected = fit.landmarks3d @ (fit.scale * fit.rotation[:2]).T + fit.offset
    pixels = np.stack([projected[:, 0] * camera.fx + camera.cx, projected[:, 1] * camera.fy + camera.cy], 1)
    return float(np.linalg.norm(pixels - clean[:68], axis=1).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--noise-px", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--train-samples", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--expression-regularization", type=float, default=300.0)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.process_time()
    prior_model, cost = build_emotion_prior(args.train_samples, args.epochs, seed=0)
    world = world_for(64, 64)
    mm = world.model
    face = slice(0, mm.num_vertices)
    rng = np.random.default_rng(123)
    test = render_emotion_samples(args.photos, seed=987, render_size=args.size)  # for the classifier accuracy
    predicted, _ = features_of(prior_model.net, test.faces)
    rows: dict[str, list[tuple[float, float, float]]] = {"no prior": [], "emotion prior": [], "true expression": []}
    for index in range(args.photos):
        # Same recipe as the emotion samples (new seeds, other identities), kept here for the camera and truth.
        label = index % len(CLASSES)
        params = world.sample_params(int(rng.integers(1 << 30)), pose_range_deg=12.0)
        intensity = rng.uniform(0.6, 1.1)
        named = {k: float(np.clip(v * intensity, 0, 1)) for k, v in EMOTIONS[CLASSES[label]].items()}
        params = params.replace(expression=world.expression(**named))
        camera = world.framing_camera(params, args.size)
        frame = world.render(params, camera, ("rgb", "landmarks"))
        clean = frame["landmarks2d"][:68]
        noisy = clean + rng.normal(0.0, args.noise_px, clean.shape)
        true_shape = mm.shape(params.identity, params.expression)[face]
        priors = {
            "no prior": None,
            "emotion prior": prior_model.dictionary.lookup(
                features_of(prior_model.net, face_crop(frame["rgb"], noisy)[None])[1][0]
            ),
            "true expression": params.expression,
        }
        for name, prior in priors.items():
            fit = fit_proxy(
                mm, noisy, camera, expression_prior=prior, expression_regularization=args.expression_regularization
            )
            vertex_mm = float(np.linalg.norm(mm.shape(fit.identity, fit.expression)[face] - true_shape, axis=1).mean())
            expression_mae = float(np.abs(fit.expression - params.expression).mean())
            rows[name].append((reprojection_px(fit, camera, clean), vertex_mm, expression_mae))
    cpu = time.process_time() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"FaceWorld photos: {args.photos} at {args.size} px, landmark noise {args.noise_px} px, "
          f"expression_regularization {args.expression_regularization}")  # fmt: skip
    print(f"emotion CNN: {args.train_samples} training faces, {args.epochs} epochs; accuracy on {len(test.labels)} "
          f"new faces {float((predicted == test.labels).mean()):.3f} (chance {1 / len(CLASSES):.3f})")  # fmt: skip
    print("| fit | landmark reprojection (px) | vertex error (mm) | expression coefficient MAE |")
    print("|---|---|---|---|")
    for name, values in rows.items():
        a = np.asarray(values)
        cells = " | ".join(f"{a[:, k].mean():.3f} ± {a[:, k].std():.3f}" for k in range(3))
        print(f"| {name} | {cells} |")
    print(f"CPU {cpu:.1f} s (emotion data {cost['render_cpu_s']:.1f} s, training {cost['train_cpu_s']:.1f} s), "
          f"peak RSS {peak_mb:.0f} MB, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
