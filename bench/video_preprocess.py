"""Video preprocessing (src/convert/video) measured on FaceWorld talking-head videos, whose truth is known.

    python bench/video_preprocess.py [--videos 2] [--frames 100] [--video-size 1280x720] [--crop 256]
                                     [--pupils detector] [--smooth 0] [--no-jaw] [--workers 2] [--keep DIR]

Writes `--videos` FaceWorld .mp4 files (H.264, 25 fps; src/faceworld/writers/videos.py), converts each in this
process (one core, so every stage's CPU seconds are its own), and compares the output with the videos' truth:
- NMFC: IoU of the face region (non-black pixels) and mean colour error (0-255, over the pixels both call face) of
  the fitted NMFC against the true NMFC cropped and resized by the same box;
- landmarks: NME (mean distance / outer-eye-corner distance) of the 68 points and of the 2 pupils;
- pose: the angle (degrees) of the rotation between the fitted and the true head rotation, and per Euler angle;
- expression coefficients: mean absolute error per FaceWorld component (each in [0, 1]);
- identity: the spread (std, in model std units) of single-frame identity fits across the video, and the error of
  the video's identity against the truth;
- speed: CPU seconds per frame of each stage and frames/s per core; with `--workers` > 1 the whole conversion also
  runs through the parallel entry (run_video_conversion) and its wall-clock frames/s is printed beside the load.
The machine may be shared: CPU seconds (time.process_time, this process and its threads) are the figure to trust.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("decode", "detect", "boxes", "crop", "landmarks", "fit", "nmfc", "write")


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation a @ b.T (geodesic distance between two rotations)."""
    cosine = (np.trace(a @ b.T) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def measure_video(truth, details: dict, crop: int) -> dict[str, list[float]]:
    """Per-frame errors of one converted video against its truth."""
    from src.convert.video.pipeline import crop_square, frame_to_crop
    from src.landmarks.nme import normalised_mean_error
    from src.landmarks.scheme import PUPILS

    fit, frames, found, box = details["fit"], details["frames"], details["landmarks"], details["box"]
    out: dict[str, list[float]] = {k: [] for k in ("iou", "colour", "nme68", "nme_pupils", "pose", "yaw", "pitch",
                                                   "roll")}  # fmt: skip
    out["expression"] = []
    from src.io.images import read_image

    for k, frame in enumerate(frames):
        if not truth.face_present[frame]:
            continue
        true_points = frame_to_crop(truth.landmarks[frame], box, crop)
        out["nme68"].append(normalised_mean_error(found[k][:68], true_points[:68]))
        eye = np.linalg.norm(true_points[36] - true_points[45])
        out["nme_pupils"].append(float(np.linalg.norm(found[k][list(PUPILS)] - true_points[list(PUPILS)], axis=1).mean()
                                       / eye))  # fmt: skip
        true_nmfc = crop_square(truth.nmfc(frame), box, crop)
        fitted = read_image(details["nmfc_paths"][k])[..., ::-1].astype(np.float64)
        a, b = true_nmfc.max(-1) > 0, fitted.max(-1) > 0
        out["iou"].append(float((a & b).sum() / max(1, (a | b).sum())))
        both = a & b
        out["colour"].append(float(np.abs(fitted[both] - true_nmfc[both]).mean()) if both.any() else float("nan"))
        out["pose"].append(rotation_angle_deg(fit.rotation[k], truth.rotation[frame]))
        for j, name in enumerate(("yaw", "pitch", "roll")):
            out[name].append(abs(fit.rotation_deg[k, j] - truth.rotation_deg[frame, j]))
        out["expression"].append(np.abs(fit.expression[k] - truth.expression[frame]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--video-size", type=_size, default=(1280, 720), help="WIDTHxHEIGHT of the videos")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--pupils", default="detector", choices=("detector", "centre_of_mass"))
    parser.add_argument("--smooth", type=int, default=0, help="fitting.smooth_window (frames; 0 = none)")
    parser.add_argument("--no-jaw", action="store_true", help="leave the jaw contour out of the fit (use_jaw=false)")
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--workers", type=int, default=0, help="> 1: also time the parallel conversion (wall clock)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the videos and outputs here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from src.convert.video.pipeline import VideoSettings, convert_one_video, run_video_conversion
    from src.faceworld.writers.common import identity_seed, world_for
    from src.faceworld.writers.videos import write_talking_head_video

    work = args.keep or Path(tempfile.mkdtemp(prefix="video_bench_"))
    videos, output = work / "videos", work / "out"
    settings = VideoSettings(
        size=args.crop, pupils=args.pupils, coefficient_smoothing=args.smooth, fit_jaw=not args.no_jaw
    )
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    start = time.process_time()
    truths = []
    for k in range(args.videos):
        path = videos / f"person{k}.mp4"
        truths.append(write_talking_head_video(path, identity_seed(args.seed, k), args.frames, size=args.video_size,
                                               seed=args.seed, crf=args.crf))  # fmt: skip
    print(f"wrote {args.videos} FaceWorld videos of {args.frames} frames at {args.video_size[0]}x{args.video_size[1]} "
          f"(crf {args.crf}) in {time.process_time() - start:.1f} CPU s")  # fmt: skip

    metrics: dict[str, list] = {}
    seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    identity_spread, identity_error, frames_total, box_sides = [], [], 0, []
    mm = world_for().model
    for k, truth in enumerate(truths):
        name = f"person{k}"
        report, details = convert_one_video(videos / f"{name}.mp4", name, output, settings)
        if report.status != "ok":
            print(f"{name}: {report.status} {report.message}")
            continue
        for key, values in measure_video(truth, details, args.crop).items():
            metrics.setdefault(key, []).extend(values)
        for stage, value in report.seconds.items():
            seconds[stage] = seconds.get(stage, 0.0) + value
        fit = details["fit"]
        identity_spread.append(float(fit.identity_per_frame.std(axis=0).mean()))
        identity_error.append(float(np.abs(fit.identity - truth.identity).mean()))
        frames_total += report.frames
        box_sides.append(report.box[2])

    if not frames_total:
        print("no video converted")
        return 1
    expression = np.stack(metrics.pop("expression"))
    print(f"\nfixed crop box side in the video: {', '.join(str(s) for s in box_sides)} px -> {args.crop} px")
    print("\n| measure | mean | median | 90th pct |\n|---|---|---|---|")
    labels = {
        "iou": "NMFC face-region IoU", "colour": "NMFC mean colour error (0-255)", "nme68": "landmark NME (68 points)",
        "nme_pupils": "pupil NME", "pose": "pose error (deg, rotation angle)", "yaw": "yaw error (deg)",
        "pitch": "pitch error (deg)", "roll": "roll error (deg)",
    }  # fmt: skip
    for key, label in labels.items():
        values = np.array(metrics[key], dtype=np.float64)
        values = values[np.isfinite(values)]
        print(f"| {label} | {values.mean():.4f} | {np.median(values):.4f} | {np.percentile(values, 90):.4f} |")
    print(f"| expression-coefficient error (mean abs, all 9) | {expression.mean():.4f} | {np.median(expression):.4f} "
          f"| {np.percentile(expression, 90):.4f} |")  # fmt: skip
    print("\nexpression error per component: " + ", ".join(
        f"{n} {v:.3f}" for n, v in zip(mm.expression_names, expression.mean(0))))  # fmt: skip
    print(f"identity: spread of single-frame fits {np.mean(identity_spread):.3f} std units (per component, mean); "
          f"video identity error {np.mean(identity_error):.3f} std units (mean abs)")  # fmt: skip

    total = sum(seconds.values())
    print(f"\nspeed ({frames_total} frames, one process, CPU seconds):\n| stage | ms / frame | share |\n|---|---|---|")
    for stage in STAGES:
        print(
            f"| {stage} | {1000 * seconds.get(stage, 0.0) / frames_total:.1f} | {seconds.get(stage, 0.0) / total:.0%} |"
        )
    per_core = frames_total / total
    print(f"| all | {1000 * total / frames_total:.1f} | 100% |")
    print(f"\n{per_core:.1f} frames/s per core -> {2 * per_core:.1f} frames/s on 2 cores with 2 workers "
          f"(target 15 at {args.crop}x{args.crop})")  # fmt: skip

    if args.workers > 1:
        parallel = work / "parallel"
        wall = time.perf_counter()
        report = run_video_conversion(videos, parallel, settings, workers=args.workers, progress=False)
        wall = time.perf_counter() - wall
        frames = sum(v.frames for v in report.videos)
        print(f"parallel entry, {args.workers} workers: {frames / wall:.1f} frames/s wall clock "
              f"(load average now {os.getloadavg()[0]:.2f})")  # fmt: skip
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
