"""Depth hole filling on FaceWorld frames with Kinect-like holes: ours vs OpenCV's inpainting (TELEA, NS).

    python bench/depth_fill.py [--frames 6] [--width 1900 --height 2270] [--radius 3] [--repeats 3]

Each frame is rendered at the original capture's resolution and camera (the 1900x2270 crop of the Azure Kinect
3072P colour camera), passed through FaceWorld's Kinect sensor model (noise + holes at grazing angles, dark
surfaces, hair, edges), and filled by every method with the same input (float32 mm), the same hole mask and the
same region: the converter's face region (landmark + forehead hull grown by fill_margin), with depth far behind the face
treated as background, exactly as `src.convert.steps.fill_face_depth` does. The hidden truth is FaceWorld's
noiseless depth; RMSE is over the filled hole pixels that lie on the face (FaceWorld's labels: skin, eyes, lips,
brows; hair over the forehead, where no surface fill can guess the hair's shape, is reported separately in
"RMSE all"). Times are per frame (median of --repeats) for the fill call alone, on one thread; the CPU may be
shared with other work, so absolute times are pessimistic, the ratios are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.convert.depth_fill import FillSettings
from src.convert.steps import face_fill_region, fill_face_depth

METHODS = {
    "thin plate (ours)": FillSettings("biharmonic"),
    "membrane (ours)": FillSettings("harmonic"),
    "cv2 TELEA": FillSettings("telea"),
    "cv2 NS": FillSettings("ns"),
}
SHORT = {"thin plate (ours)": "thin", "membrane (ours)": "membrane", "cv2 TELEA": "TELEA", "cv2 NS": "NS"}


def faceworld_frames(count: int, width: int, height: int, seed: int):
    """(sensor depth, true depth mm, landmarks, labels) for `count` FaceWorld heads seen like the original capture."""
    from src.faceworld import FaceWorld
    from src.faceworld.sensor import KinectSensorModel
    from src.faceworld.writers.rgbd import kinect_crop_camera

    world = FaceWorld()
    camera = kinect_crop_camera((height, width))  # the original's 1900x2270 crop of the 3072P colour camera
    sensor = KinectSensorModel(seed=seed)
    for i in range(count):
        params = world.sample_params(seed + i, pose_range_deg=10)
        frame = world.render(params, camera, modalities=("rgb", "depth", "ir", "landmarks", "mask"))
        sensed = sensor.apply(frame, camera=camera, frame_index=i)
        yield sensed["depth"], frame["depth_mm"], frame["landmarks2d"], frame["mask"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--width", type=int, default=1900)
    parser.add_argument("--height", type=int, default=2270)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radius", type=int, default=3, help="inpaintRadius of the OpenCV methods")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--margin", type=float, default=0.02, help="fill_margin of the converter")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    from src.faceworld.appearance import LABEL_HAIR

    errors: dict[str, list[np.ndarray]] = {name: [] for name in METHODS}
    on_face: list[np.ndarray] = []
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    print(f"FaceWorld {args.frames} frames at {args.width}x{args.height}, Kinect sensor model holes")
    frames = faceworld_frames(args.frames, args.width, args.height, args.seed)
    for index, (sensor, truth, landmarks, labels) in enumerate(frames):
        (y0, y1, x0, x1), region = face_fill_region(sensor.shape, landmarks, args.margin)
        window_truth = truth[y0:y1, x0:x1]
        scored = region & (sensor[y0:y1, x0:x1] == 0) & (window_truth > 0)
        on_face.append(labels[y0:y1, x0:x1][scored] != LABEL_HAIR)
        line = [f"frame {index}: {int(scored.sum()):6d} holes ({int((~on_face[-1]).sum()):5d} on hair), RMSE face:"]
        for name, fill in METHODS.items():
            settings = FillSettings(**{**fill.__dict__, "opencv_radius": args.radius})
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                filled, origin = fill_face_depth(sensor, landmarks, settings, args.margin)
                runs.append(time.perf_counter() - start)
            assert origin == (y0, x0)
            times[name].append(statistics.median(runs))
            errors[name].append(filled[scored] - window_truth[scored])
            line.append(f"{SHORT[name]} {_rmse(errors[name][-1][on_face[-1]]):.2f}")
        print("  ".join(line))

    face = np.concatenate(on_face)
    print(
        f"\n{face.size} filled hole pixels on the head ({int(face.sum())} on the face, the rest on hair) over "
        f"{args.frames} frames; OpenCV inpaintRadius {args.radius}; RMSE and p95 in mm against the true depth"
    )
    print(f"{'method':20s} {'RMSE face':>10s} {'p95 face':>9s} {'RMSE all':>9s} {'ms/frame':>9s}")
    for name in METHODS:
        err = np.concatenate(errors[name])
        p95 = float(np.percentile(np.abs(err[face]), 95))
        ms = 1000 * statistics.mean(times[name])
        print(f"{name:20s} {_rmse(err[face]):10.3f} {p95:9.3f} {_rmse(err):9.3f} {ms:9.1f}")


def _rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(err**2))) if err.size else float("nan")


if __name__ == "__main__":
    main()
