"""Whole-capture conversion speed at the original's resolution (1900x2270 colour + registered depth).

    python bench/convert_speed.py [--unique 8] [--frames 64] [--workers 2] [--keep DIR]

Renders `--unique` FaceWorld frames through the unprocessed-capture writer (Kinect sensor noise and holes),
then makes a capture of `--frames` frames by copying those files under new names (rendering 1,750 frames at this
resolution would take longer than converting them; copies cost the converter exactly what originals do, every
file is read, detected, filled and written). The conversion runs with the default settings of conf/convert.yaml
(mediapipe, the tiled face counter for bystanders of 40 px and more, depth filling, 512 px, 16-bit) and `--workers`
processes, except that the pose gate is off (max_pose_deg=null) so every frame goes through both passes (the slowest
case; mediapipe's pose on FaceWorld is biased by a few degrees of pitch and would reject some frames early). The
benchmark prints frames/s and the projected time for the original's 1,750 frames. The machine's CPU may be shared
with other work: the figure is then pessimistic; the CPU-time projection is not.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.io.rgbd_layout import SPLITS, UNPROCESSED_KINDS

ORIGINAL_FRAMES = 1750
TARGET_S = 600.0
FRAME_SIZE = (2270, 1900)  # height, width: the original's Kinect colour crop


def make_capture(root: Path, unique: int, frames: int, seed: int) -> int:
    """FaceWorld capture of `unique` frames, replicated to `frames` (all in train); returns the frame count."""
    from src.faceworld.writers.rgbd import write_unprocessed_capture

    source = root.parent / f"{root.name}-unique"
    start = time.perf_counter()
    write_unprocessed_capture(
        source, num_sessions=1, eval_sessions=0, frames_per_session=unique, size=FRAME_SIZE, seed=seed
    )
    print(f"rendered {unique} unique FaceWorld frames at 1900x2270 in {time.perf_counter() - start:.1f} s")
    originals = sorted(
        (split, path.name) for split in SPLITS for path in (source / split / "Color").glob("*.png") if path.is_file()
    )
    if not originals:
        raise RuntimeError(f"the FaceWorld writer produced no frames under {source}")
    for index in range(frames):
        split, name = originals[index % len(originals)]
        for kind in UNPROCESSED_KINDS:
            src = source / split / kind / name
            if src.is_file():
                dst = root / "train" / kind / f"bench_{index:06d}.png"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    if (source / "config.txt").is_file():
        shutil.copyfile(source / "config.txt", root / "config.txt")
    return frames


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the conversion's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unique", type=int, default=8, help="distinct FaceWorld frames to render")
    parser.add_argument("--frames", type=int, default=64, help="frames in the capture (copies of the unique ones)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="extra conf/convert.yaml overrides, e.g. depth_bits=8")
    args = parser.parse_args()

    from hydra import compose, initialize_config_dir

    from src.convert import run_conversion

    work = args.keep or Path(tempfile.mkdtemp(prefix="convert-speed-"))
    capture, output = work / "unprocessed", work / "processed"
    try:
        if not (capture / "train" / "Color").is_dir():
            make_capture(capture, args.unique, args.frames, args.seed)
        shutil.rmtree(output, ignore_errors=True)
        conf_dir = str(Path(__file__).resolve().parents[1] / "conf")
        with initialize_config_dir(version_base="1.3", config_dir=conf_dir):
            cfg = compose(
                "convert",
                overrides=[
                    f"input={capture}",
                    f"output={output}",
                    f"workers={args.workers}",
                    "max_pose_deg=null",
                    *args.overrides,
                ],
            )
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        report = run_conversion(cfg)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_before
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    fps = report.frames_total / elapsed
    projected = ORIGINAL_FRAMES / fps
    print(report.table())
    run = report.this_run
    print(f"\nframes: {report.frames_total} ({args.unique} unique FaceWorld renders, the rest copies)")
    if cfg.face_counter == "tiled":
        from src.capture.face_count import tile_pyramid

        height, width = FRAME_SIZE  # the gate sees a copy shrunk to detect_max_side, when that is set
        factor = min(1.0, (cfg.detect_max_side or max(FRAME_SIZE)) / max(FRAME_SIZE))
        tiles = len(tile_pyramid(round(height * factor), round(width * factor), cfg.min_face_px))
        print(f"face counter: tiled, faces from {cfg.min_face_px:g} px ({tiles} detector runs per frame)")
    else:
        print(f"face counter: {cfg.face_counter}")
    print(f"workers: {args.workers}   pass 1 (detect, gate, fill, nose): {run.pass1_s:.1f} s   ", end="")
    print(f"pass 2 (scale, crop, encode, write): {run.pass2_s:.1f} s")
    verdict = "met" if projected < TARGET_S else "NOT met"
    print(f"throughput: {fps:.2f} frames/s   projected for {ORIGINAL_FRAMES} frames: {projected / 60:.1f} min", end="")
    print(f"   (target < {TARGET_S / 60:.0f} min: {verdict})")
    # Wall time depends on what else runs on the machine; CPU time does not (much): the projection for two
    # otherwise idle cores is CPU seconds per frame x 1750 / 2 (start-up of the workers included).
    per_frame = cpu / report.frames_total
    idle = ORIGINAL_FRAMES * per_frame / 2
    print(f"CPU time: {per_frame:.3f} s/frame (all processes)   projected on 2 idle cores: {idle / 60:.1f} min")


if __name__ == "__main__":
    main()
