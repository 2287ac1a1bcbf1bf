"""Depth hole filling on FaceWorld frames with Kinect-like holes: ours vs OpenCV's inpainting (TELEA, NS), by scene.

    python bench/depth_fill.py [--frames 4] [--width 1900 --height 2270] [--radius 3] [--repeats 3] [--far none]

Each frame is rendered at the original capture's resolution and camera (the 1900x2270 crop of the Azure Kinect
3072P colour camera) and passed through FaceWorld's Kinect sensor model (noise + holes at grazing angles, dark
surfaces, hair, depth edges). Four scene classes, --frames frames each:

- interior:   head pose within +-10 degrees on an empty background: mostly holes enclosed by face depth;
- silhouette: the head turned 30-50 degrees, plus a sensor dropout straddling the face outline: holes that run out
              into the background (no depth there);
- wall:       as silhouette, with a wall 150-500 mm behind the head that the sensor sees: the background has depth;
- occluder:   a hand-sized object 70-150 mm in front of the face, with the IR shadow it casts beside it (a band
              of holes on the face next to the occluder's edge).

Every method gets the same input (float32 mm), the same hole mask, the same region (the converter's face region:
landmark + forehead hull grown by fill_margin) and the same anchors: valid depth within FillSettings' near / far
extents of the face's median depth (so OpenCV's methods are not bridged to the wall or the hand either). With
--far none (default) the fill is called as `fill_depth(depth, region)`, without a far limit; --far converter runs
`src.convert.steps.fill_face_depth` (far limit from the face's median depth). The hidden truth is FaceWorld's
noiseless depth; RMSE is over the filled hole pixels that lie on the face (FaceWorld's labels: skin, eyes, lips,
brows, mouth; not hair, where no surface fill can guess the hair's shape, and not the occluder). "wins vs NS"
counts the frames whose face RMSE is below cv2 NS's. "overshoot" is how far the fill of the holes open to the
background (or to the occluder) leaves the range of the head's valid depth within 3 px of each (worst pixel, mm).
Times are per frame (median of --repeats) for the fill call alone, on one thread; the CPU may be shared with other
work, so absolute times are pessimistic, the ratios are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.convert.depth_fill import FillSettings, fill_depth
from src.convert.steps import face_fill_region, fill_face_depth

METHODS = {
    "thin plate (ours)": FillSettings("biharmonic"),
    "membrane (ours)": FillSettings("harmonic"),
    "cv2 TELEA": FillSettings("telea"),
    "cv2 NS": FillSettings("ns"),
}
SHORT = {"thin plate (ours)": "thin", "membrane (ours)": "membrane", "cv2 TELEA": "TELEA", "cv2 NS": "NS"}
SCENES = ("interior", "silhouette", "wall", "occluder")
OCCLUDER_LABEL = 200  # FaceWorld's labels stop at 7; the pasted occluder gets its own
SHADOW_PX = 0.006  # the occluder's IR shadow, as a fraction of the image width (5-11 px at 1900)


@dataclass
class Scene:
    kind: str
    sensor_depth: np.ndarray  # uint16 mm, 0 = hole
    true_depth: np.ndarray  # float32 mm, 0 = no surface
    landmarks: np.ndarray  # (70, 2) FaceWorld truth
    labels: np.ndarray  # uint8 FaceWorld labels, OCCLUDER_LABEL on the occluder


def generate_scenes(kind: str, count: int, width: int, height: int, seed: int = 0) -> Iterator[Scene]:
    """`count` FaceWorld frames of one scene class (see the module docstring), deterministic in (kind, seed)."""
    from src.faceworld import FaceWorld
    from src.faceworld.sensor import KinectSensorModel
    from src.faceworld.writers.rgbd import kinect_crop_camera

    if kind not in SCENES:
        raise ValueError(f"scene kind must be one of {SCENES}, got {kind!r}")
    world = FaceWorld()
    camera = kinect_crop_camera((height, width))  # the original's 1900x2270 crop of the 3072P colour camera
    sensor = KinectSensorModel(seed=seed)
    offset = SCENES.index(kind) * 1000
    for i in range(count):
        rng = np.random.default_rng([seed, offset + i, 97])
        params = world.sample_params(seed + offset + i, pose_range_deg=10)
        if kind in ("silhouette", "wall"):
            params = params.replace(yaw=float(rng.choice([-1, 1]) * rng.uniform(30, 50)))
        frame = world.render(params, camera, modalities=("depth", "ir", "landmarks", "mask"))
        truth = frame["depth_mm"].astype(np.float32)
        labels = frame["mask"].copy()
        landmarks = frame["landmarks2d"]
        depth_in = truth.copy()
        extra_holes = np.zeros(truth.shape, bool)
        if kind == "wall":
            depth_in = np.where(truth > 0, truth, _wall(truth, rng, camera)).astype(np.float32)
        if kind in ("silhouette", "wall"):
            extra_holes = _silhouette_dropout(truth > 0, landmarks, rng)
        if kind == "occluder":
            occluder, occluder_depth, shadow = _occluder(truth, landmarks, rng, width)
            depth_in = np.where(occluder, occluder_depth, depth_in).astype(np.float32)
            labels[occluder] = OCCLUDER_LABEL
            truth = np.where(occluder, occluder_depth, truth).astype(np.float32)
            extra_holes = shadow
        sensed = sensor.apply(
            {"depth_mm": depth_in, "ir": frame["ir"], "mask": labels}, camera=camera, frame_index=offset + i
        )
        depth = np.where(extra_holes, 0, sensed["depth"]).astype(np.uint16)
        yield Scene(kind, depth, truth, landmarks, labels)


def _wall(truth: np.ndarray, rng: np.random.Generator, camera) -> np.ndarray:
    """A slanted plane 150-500 mm behind the head's median depth, as depth along the camera rays."""
    h, w = truth.shape
    behind = float(np.median(truth[truth > 0])) + rng.uniform(150, 500)
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    tilt_x, tilt_y = rng.uniform(-0.3, 0.3, 2)
    rx, ry = (u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy
    return (behind / (1 - tilt_x * rx - tilt_y * ry)).astype(np.float32)


def _silhouette_dropout(surface: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An elliptic sensor dropout centred on the face's outline beside a jaw / cheek landmark: half on the face,
    half over the background, so the hole is open to it."""
    h, w = surface.shape
    face_width = float(np.ptp(landmarks[:17, 0]))
    holes = np.zeros((h, w), np.uint8)
    for _ in range(2):
        anchor = landmarks[int(rng.choice([1, 2, 3, 4, 12, 13, 14, 15]))]
        # walk outwards from the anchor to the silhouette along the row
        row = int(np.clip(round(anchor[1]), 0, h - 1))
        direction = -1 if anchor[0] < landmarks[30, 0] else 1
        col = int(np.clip(round(anchor[0]), 0, w - 1))
        while 0 < col < w - 1 and surface[row, col]:
            col += direction
        axes = (int(rng.uniform(0.08, 0.18) * face_width), int(rng.uniform(0.12, 0.25) * face_width))
        cv2.ellipse(holes, (col, row), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return holes.astype(bool)


def _occluder(
    truth: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A rounded object (hand, fingers, a lock of hair) 70-150 mm in front of the face (its median depth) over part
    of it, and the band of IR shadow it casts on the face beside one of its sides."""
    h, w = truth.shape
    face_width = float(np.ptp(landmarks[:17, 0]))
    anchor = landmarks[int(rng.choice([3, 5, 8, 11, 13, 31, 35, 48, 54]))]
    centre = anchor + rng.normal(0, 0.08, 2) * face_width
    axes = np.array([rng.uniform(0.12, 0.22), rng.uniform(0.25, 0.45)]) * face_width
    angle = rng.uniform(0, 180)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (round(centre[0]), round(centre[1])), (round(axes[0]), round(axes[1])), angle, 0, 360, 1, -1)
    occluder = mask.astype(bool)
    face_depth = float(np.median(truth[truth > 0]))
    # A rounded front: nearest in the middle, 15 mm further back at the rim.
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    bulge = 15.0 * (1 - np.clip(distance / max(float(distance.max()), 1.0), 0, 1) ** 0.5)
    depth = (face_depth - rng.uniform(70, 150) + bulge).astype(np.float32)
    shift = rng.normal(0, 1, 2)
    shift = shift / np.linalg.norm(shift) * max(2.0, SHADOW_PX * width) * rng.uniform(1.0, 1.8)
    moved = cv2.warpAffine(mask, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (w, h)) > 0
    shadow = moved & ~occluder & (truth > 0)
    return occluder, depth, shadow


def face_pixels(labels: np.ndarray) -> np.ndarray:
    """Where a surface fill can be scored: face labels, not hair, background or the occluder."""
    from src.faceworld.appearance import LABEL_HAIR

    return head_pixels(labels) & (labels != LABEL_HAIR)


def head_pixels(labels: np.ndarray) -> np.ndarray:
    """The subject: every FaceWorld label but the background, and not the occluder."""
    from src.faceworld.appearance import LABEL_BACKGROUND

    return (labels != LABEL_BACKGROUND) & (labels != OCCLUDER_LABEL)


def open_holes(holes: np.ndarray, depth: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The holes that run out to the background: connected to pixels that are not the head or have no depth."""
    count, components = cv2.connectedComponents(holes.astype(np.uint8), connectivity=8)
    outside = ~holes & (~head | (depth == 0))
    touching = holes & (cv2.dilate(outside.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    is_open = np.zeros(count, bool)
    is_open[components[touching]] = True
    is_open[0] = False
    return is_open[components]


def overshoot_mm(filled: np.ndarray, depth: np.ndarray, holes: np.ndarray, head: np.ndarray, ring_px: int = 3) -> float:
    """How far the fill of the background-open holes leaves the range of the head's valid depth around each of them
    (worst pixel, mm; 0 if never). `holes`: every hole the fill was asked to fill (the region's pixels without
    depth); `head`: the subject's pixels (face and hair, not background or occluder)."""
    opened = open_holes(holes, depth, head)
    count, components = cv2.connectedComponents(opened.astype(np.uint8), connectivity=8)
    worst = 0.0
    valid_head = (depth > 0) & head
    kernel = np.ones((2 * ring_px + 1,) * 2, np.uint8)
    for index in range(1, count):
        hole = components == index
        ring = (cv2.dilate(hole.astype(np.uint8), kernel) > 0) & valid_head
        if not ring.any():
            continue
        values = filled[hole]
        lo, hi = float(depth[ring].min()), float(depth[ring].max())
        worst = max(worst, float(np.max(np.maximum(lo - values, values - hi))))
    return worst


def fill_scene(scene: Scene, settings: FillSettings, margin: float, far: str) -> tuple[np.ndarray, tuple[int, int]]:
    """The filled window and its origin, the way `--far` says the fill is called."""
    if far == "converter":
        return fill_face_depth(scene.sensor_depth, scene.landmarks, settings, margin)
    (y0, y1, x0, x1), region = face_fill_region(scene.sensor_depth.shape, scene.landmarks, margin)
    return fill_depth(scene.sensor_depth[y0:y1, x0:x1].astype(np.float32), region, settings), (y0, x0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4, help="frames per scene class")
    parser.add_argument("--width", type=int, default=1900)
    parser.add_argument("--height", type=int, default=2270)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radius", type=int, default=3, help="inpaintRadius of the OpenCV methods")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--margin", type=float, default=0.02, help="fill_margin of the converter")
    parser.add_argument("--far", choices=("none", "converter"), default="none")
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=SCENES)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    errors = {kind: {name: [] for name in METHODS} for kind in args.scenes}
    frame_rmse = {kind: {name: [] for name in METHODS} for kind in args.scenes}
    overshoot = {kind: {name: [] for name in METHODS} for kind in args.scenes}
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    print(
        f"FaceWorld {args.frames} frames per scene class at {args.width}x{args.height}, Kinect sensor model holes, "
        f"far limit: {args.far}"
    )
    for kind in args.scenes:
        for index, scene in enumerate(generate_scenes(kind, args.frames, args.width, args.height, args.seed)):
            (y0, y1, x0, x1), region = face_fill_region(scene.sensor_depth.shape, scene.landmarks, args.margin)
            window_depth = scene.sensor_depth[y0:y1, x0:x1].astype(np.float32)
            window_truth = scene.true_depth[y0:y1, x0:x1]
            face = face_pixels(scene.labels[y0:y1, x0:x1])
            head = head_pixels(scene.labels[y0:y1, x0:x1])
            holes = region & (window_depth == 0)
            scored = holes & face & (window_truth > 0)
            line = [f"{kind:10s} {index}: {int(scored.sum()):6d} face holes, RMSE:"]
            for name, fill in METHODS.items():
                settings = FillSettings(**{**fill.__dict__, "opencv_radius": args.radius})
                runs = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    filled, origin = fill_scene(scene, settings, args.margin, args.far)
                    runs.append(time.perf_counter() - start)
                assert origin == (y0, x0)
                times[name].append(statistics.median(runs))
                errors[kind][name].append(filled[scored] - window_truth[scored])
                frame_rmse[kind][name].append(_rmse(errors[kind][name][-1]))
                overshoot[kind][name].append(overshoot_mm(filled, window_depth, holes, head))
                line.append(f"{SHORT[name]} {frame_rmse[kind][name][-1]:.2f}")
            print("  ".join(line), flush=True)

    print(f"\nface RMSE in mm over the filled face hole pixels; wins = frames with face RMSE below cv2 NS's; OpenCV "
          f"inpaintRadius {args.radius}")  # fmt: skip
    header = f"{'method':20s}" + "".join(f" {kind:>11s}" for kind in args.scenes)
    print(header + f" {'all':>11s} {'wins vs NS':>11s} {'overshoot':>10s} {'ms/frame':>9s}")
    for name in METHODS:
        row = f"{name:20s}"
        for kind in args.scenes:
            row += f" {_rmse(np.concatenate(errors[kind][name])):11.3f}"
        everything = np.concatenate([e for kind in args.scenes for e in errors[kind][name]])
        wins = [
            a < b
            for kind in args.scenes
            for a, b in zip(frame_rmse[kind][name], frame_rmse[kind]["cv2 NS"], strict=True)
        ]
        worst = max(max(overshoot[kind][name]) for kind in args.scenes)
        ms = 1000 * statistics.mean(times[name])
        win_text = f"{sum(wins)}/{len(wins)}" if name != "cv2 NS" else "-"
        print(row + f" {_rmse(everything):11.3f} {win_text:>11s} {worst:10.2f} {ms:9.1f}")
    print("\nwins vs NS per scene class:")
    for name in METHODS:
        if name == "cv2 NS":
            continue
        per_class = []
        for kind in args.scenes:
            pairs = zip(frame_rmse[kind][name], frame_rmse[kind]["cv2 NS"], strict=True)
            per_class.append(f"{kind} {sum(a < b for a, b in pairs)}/{len(frame_rmse[kind][name])}")
        print(f"{name:20s} " + ", ".join(per_class))


def _rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(err**2))) if err.size else float("nan")


if __name__ == "__main__":
    main()
