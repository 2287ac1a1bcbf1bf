"""Measure a landmark detector against FaceWorld ground truth (NME by region); tune the mediapipe table.

    python -m src.landmarks.detectors.evaluate --detector mediapipe --frames 30
    python -m src.landmarks.detectors.evaluate --detector classical --frames 30
    python -m src.landmarks.detectors.evaluate --tune-mediapipe      # grid over the table's free parameters

Frames: FaceWorld faces with varied identity, expression (full range), head pose (|yaw| <= 15 degrees) and
light, rendered at 256x256 through a framing camera.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import numpy as np

from src.landmarks.detectors.base import LandmarkDetector, build_detector
from src.landmarks.nme import nme_by_region


@dataclass
class BenchmarkFrame:
    rgb: np.ndarray
    landmarks: np.ndarray  # (70, 2) truth


def faceworld_frames(
    num_frames: int = 30, size: int = 256, seed: int = 0, pose_range_deg: float = 15.0
) -> list[BenchmarkFrame]:
    from src.faceworld import FaceWorld

    world = FaceWorld()
    frames = []
    for k in range(num_frames):
        params = world.sample_params(seed * 1000 + k, pose_range_deg=pose_range_deg)
        camera = world.framing_camera(params, size=size)
        out = world.render(params, camera, modalities=("rgb", "landmarks"))
        frames.append(BenchmarkFrame(out["rgb"], out["landmarks2d"].astype(np.float64)))
    return frames


@dataclass
class DetectorScore:
    detected: int  # frames with exactly one face found
    total: int
    nme: dict[str, float]  # mean over detected frames, per region

    def __str__(self) -> str:
        regions = " ".join(f"{k}={v:.4f}" for k, v in self.nme.items())
        return f"found {self.detected}/{self.total} faces; NME {regions}"


def score_detector(detector: LandmarkDetector, frames: list[BenchmarkFrame]) -> DetectorScore:
    per_frame = []
    for frame in frames:
        faces = detector.detect(frame.rgb)
        if len(faces) == 1:
            per_frame.append(nme_by_region(faces[0].landmarks, frame.landmarks))
    nme = {k: float(np.mean([f[k] for f in per_frame])) for k in per_frame[0]} if per_frame else {}
    return DetectorScore(len(per_frame), len(frames), nme)


def tune_mediapipe_mapping(frames: list[BenchmarkFrame]) -> list[tuple[float, dict[str, float]]]:
    """Grid over (jaw_start, brow_upper_weight, nose_ridge_start): NME of the affected regions per setting."""
    from src.landmarks.detectors.mediapipe import MediaPipeDetector
    from src.landmarks.detectors.mediapipe_mapping import build_mapping, mapping_matrix

    with MediaPipeDetector(max_num_faces=1) as detector:
        meshes = [(detector.detect_mesh(f.rgb), f.landmarks) for f in frames]
    meshes = [(m[0], truth) for m, truth in meshes if m]
    results = []
    for jaw, brow, nose in itertools.product(
        (0.0, 0.5, 1.0, 1.5, 2.0), (0.0, 0.25, 0.5, 0.75, 1.0), (0.0, 0.5, 1.0, 1.5)
    ):
        matrix = mapping_matrix(build_mapping(jaw, brow, nose))
        scores = [nme_by_region(matrix @ mesh, truth) for mesh, truth in meshes]
        mean = {k: float(np.mean([s[k] for s in scores])) for k in ("all", "jaw", "brows", "nose")}
        results.append(((jaw, brow, nose), mean))
    return sorted(results, key=lambda r: r[1]["all"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="mediapipe")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune-mediapipe", action="store_true")
    args = parser.parse_args()
    frames = faceworld_frames(args.frames, args.size, args.seed)
    if args.tune_mediapipe:
        for params, score in tune_mediapipe_mapping(frames)[:10]:
            print(f"jaw_start={params[0]} brow_upper_weight={params[1]} nose_ridge_start={params[2]}: {score}")
        return
    with build_detector(args.detector) as detector:
        print(f"{args.detector}: {score_detector(detector, frames)}")


if __name__ == "__main__":
    main()
