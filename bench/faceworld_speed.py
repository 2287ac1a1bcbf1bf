"""FaceWorld speed on ONE CPU core: frames/s per modality at 256x256, and dataset generation time.

    python bench/faceworld_speed.py                          # per-modality fps, per-stage cost, 2,000-frame dataset
    python bench/faceworld_speed.py --dataset-frames 400     # a smaller dataset, extrapolated (labelled so)

The target of issue 2: >= 30 frames/s for rgb + depth + landmarks at 256x256 on one core, and a 2,000-frame
dataset in well under two minutes on 2 cores. Every figure comes with CPU seconds (or CPU-time fps): on a machine
shared with other jobs the wall-clock numbers are pessimistic, the CPU ones are what dedicated cores give.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import torch  # noqa: E402

from src.faceworld import MODALITIES, FaceWorld  # noqa: E402
from src.faceworld.sequences import talking_head  # noqa: E402
from src.faceworld.writers.rgbd import write_processed_dataset  # noqa: E402
from src.io.rgbd_layout import DepthEncoding, format_landmark_file  # noqa: E402
from src.landmarks.drawing import draw_feature_image  # noqa: E402


def measure(world: FaceWorld, params: list, camera, modalities: tuple[str, ...], repeats: int) -> tuple[float, float]:
    """Frames per second of world.render over a talking-head sequence (after one warm-up frame), by wall clock
    and by this process's CPU time (the second is what one dedicated core would give on a shared machine)."""
    world.render(params[0], camera, modalities)
    start, start_cpu = time.perf_counter(), time.process_time()
    for count in range(repeats):
        world.render(params[count % len(params)], camera, modalities)
    return repeats / (time.perf_counter() - start), repeats / (time.process_time() - start_cpu)


def stage_costs(world: FaceWorld, params: list, camera, frames: int) -> dict[str, float]:
    """CPU milliseconds per frame of each stage of a processed-dataset frame (what write_processed_dataset does per
    frame, minus the file system): render, the three PNG encodings, the feature drawing and the landmark text."""
    encoding = DepthEncoding(600.0, 800.0, 16)
    costs = dict.fromkeys(("render", "color png", "depth encode + png", "feature draw + png", "landmark txt"), 0.0)
    for count in range(frames):
        t = time.process_time()
        frame = world.render(params[count % len(params)], camera, ("rgb", "depth", "landmarks"))
        t1 = time.process_time()
        cv2.imencode(".png", cv2.cvtColor(frame["rgb"], cv2.COLOR_RGB2BGR))
        t2 = time.process_time()
        cv2.imencode(".png", encoding.encode(frame["depth_mm"]))
        t3 = time.process_time()
        landmarks = frame["landmarks2d"].astype("float64")
        cv2.imencode(".png", draw_feature_image(landmarks, camera.width))
        t4 = time.process_time()
        format_landmark_file(landmarks)
        t5 = time.process_time()
        for key, (a, b) in zip(costs, ((t, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
            costs[key] += (b - a) * 1000.0 / frames
    return costs


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the dataset workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=40, help="renders per measurement")
    parser.add_argument("--dataset-frames", type=int, default=2000, help="frames of the timed processed dataset")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    world = FaceWorld()
    params = talking_head(world, identity_seed=1, num_frames=30, fps=15.0, seed=0)
    camera = world.framing_camera(params[0], args.size, fill=0.6)
    print(f"FaceWorld render speed, {args.size}x{args.size}, one thread ({args.frames} frames each)")
    print(f"  load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (CPU count {os.cpu_count()})")
    print(f"  {'modalities':<32s} {'wall fps':>9s} {'CPU-time fps':>13s}")
    combos = [(m,) for m in MODALITIES] + [("rgb", "depth", "landmarks"), ("rgb", "depth", "ir", "landmarks", "mask")]
    for modalities in combos:
        fps, cpu_fps = measure(world, params, camera, modalities, args.frames)
        print(f"  {'+'.join(modalities):<32s} {fps:9.1f} {cpu_fps:13.1f}")
    costs = stage_costs(world, params, camera, args.frames)
    print(f"processed-dataset frame, CPU ms per stage ({args.frames} frames): total {sum(costs.values()):.1f}")
    for stage, ms in costs.items():
        print(f"  {stage:<32s} {ms:9.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        n = args.dataset_frames
        identities = max(2, n // 100)
        per_identity = max(1, n // identities)
        start = time.perf_counter()
        cpu_start = _cpu_seconds()
        write_processed_dataset(
            Path(tmp) / "ds",
            num_identities=identities,
            frames_per_identity=per_identity,
            size=args.size,
            workers=args.workers,
            seed=0,
        )
        seconds = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_start
        total = identities * per_identity
        workers = max(1, args.workers)
        print(
            f"processed RGBD dataset: {total} frames ({identities} identities) in {seconds:.1f} s wall with "
            f"{args.workers} workers = {total / seconds:.1f} frames/s; {cpu:.1f} CPU-s over all processes"
        )
        print(f"  CPU-bound time on {workers} dedicated cores: {cpu / workers:.1f} s")
        if total < 2000:
            print(
                f"  EXTRAPOLATED (measured on {total} frames, not 2,000): {2000 * seconds / total:.0f} s wall here, "
                f"{2000 * cpu / total / workers:.0f} s on {workers} dedicated cores"
            )
        print(f"  load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
