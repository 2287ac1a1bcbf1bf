"""Does the gate see a bystander? FaceWorld composites with known face counts, scored for both face counters.

    python -m src.capture.face_count_eval [--subjects 4] [--frames 2] [--bystanders 4] [--sizes 40 60 80 120 160 200]

Subjects are FaceWorld talking-head frames as the FaceWorld capture rig sees them at twice the default resolution
(the original's 3072P crop scaled to a 950x1135 frame, the subject's face ~250 px wide). Into each, a second
FaceWorld identity (a "bystander", posed within +-10 degrees) is pasted beside the subject with its own matte, its
face (landmark box, jaw to jaw) scaled to each size, at four places (left / right of the subject, upper / lower).
Every composite holds exactly two faces, so the gate must reject all of them; the untouched subject frames hold
exactly one, so none of them may be rejected as multiple faces. A group photo of several ~10%-wide faces must
count as several. Printed: rejection rate per bystander size, single-face frames counted wrong, group counts and
time per frame, for the tiled counter (src/capture/face_count.py) and for the landmark model's own count.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from src.capture.face_count import FaceCounter

SUBJECT_COLOR_SIZE = (2048, 1536)  # the FaceWorld rig at twice its default size: a 950x1135 capture crop
POSITIONS = ("left-upper", "right-upper", "left-lower", "right-lower")


@dataclass(frozen=True)
class Cutout:
    """A rendered FaceWorld head with its matte and its 68 landmarks, to paste into other frames."""

    rgb: np.ndarray
    alpha: np.ndarray  # float32 in [0, 1]
    landmarks: np.ndarray  # (68, 2)


def subject_frames(
    identities: Sequence[int], frames_per_identity: int, seed: int = 0
) -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """Single-face frames: FaceWorld talking heads through the capture rig's colour camera, cropped like a capture,
    each with its face's true landmark box (left, top, right, bottom)."""
    from src.capture.faceworld_source import FaceWorldRig, scaled_original_crop

    x, y, w, h = scaled_original_crop(*SUBJECT_COLOR_SIZE)
    frames = []
    for identity in identities:
        length = 8 * frames_per_identity
        rig = FaceWorldRig(
            num_frames=length, identity_seed=identity, seed=seed, color_size=SUBJECT_COLOR_SIZE, sensor_noise=False
        )
        for index in range(0, length, 8):  # half a second apart: other poses and mouth shapes
            out = rig.world.render(rig.sequence[index], rig.color_camera, modalities=("rgb", "landmarks"))
            points = out["landmarks2d"][:68] - (x, y)
            box = (*points.min(0), *points.max(0))
            frames.append((np.ascontiguousarray(out["rgb"][y : y + h, x : x + w]), tuple(float(v) for v in box)))
    return frames


def bystander_cutouts(seeds: Sequence[int]) -> list[Cutout]:
    """Other FaceWorld identities, head pose within +-10 degrees, rendered large enough to be scaled down."""
    from src.faceworld import FaceWorld
    from src.faceworld.appearance import LABEL_BACKGROUND

    world = FaceWorld()
    cutouts = []
    for seed in seeds:
        params = world.sample_params(1000 + seed, pose_range_deg=10)
        camera = world.framing_camera(params, size=(400, 320), fill=0.55)
        out = world.render(params, camera, modalities=("rgb", "mask", "landmarks"))
        alpha = (out["mask"] != LABEL_BACKGROUND).astype(np.float32)
        cutouts.append(Cutout(out["rgb"], alpha, out["landmarks2d"][:68].astype(np.float64)))
    return cutouts


def paste_face(frame: np.ndarray, cutout: Cutout, face_width_px: float, centre: tuple[float, float]) -> np.ndarray:
    """`frame` with the cutout scaled so its face is `face_width_px` wide and its face centred at `centre`."""
    width = float(np.ptp(cutout.landmarks[:, 0]))
    scale = face_width_px / width
    rgb = cv2.resize(cutout.rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(cutout.alpha, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
    face_centre = (cutout.landmarks.min(0) + cutout.landmarks.max(0)) / 2 * scale
    ox, oy = round(centre[0] - face_centre[0]), round(centre[1] - face_centre[1])
    out = frame.copy()
    height, width_px = frame.shape[:2]
    y0, y1 = max(0, oy), min(height, oy + rgb.shape[0])
    x0, x1 = max(0, ox), min(width_px, ox + rgb.shape[1])
    a = alpha[y0 - oy : y1 - oy, x0 - ox : x1 - ox, None]
    src = rgb[y0 - oy : y1 - oy, x0 - ox : x1 - ox].astype(np.float32)
    out[y0:y1, x0:x1] = np.round(a * src + (1 - a) * out[y0:y1, x0:x1]).astype(np.uint8)
    return out


def bystander_centre(frame: np.ndarray, subject_box: tuple[float, float, float, float], position: str):
    """Where a bystander's face goes: halfway between the subject's face and the frame edge, upper or lower."""
    height, width = frame.shape[:2]
    left, top, right, bottom = subject_box
    x = left / 2 if position.startswith("left") else (right + width) / 2
    y = top + 0.15 * (bottom - top) if position.endswith("upper") else bottom + 0.35 * (height - bottom)
    return float(x), float(y)


def group_photo(num_faces: int = 6, width: int = 1280, height: int = 720, face_fraction: float = 0.1, seed: int = 0):
    """Several FaceWorld faces, each `face_fraction` of the image width, in two rows on a FaceWorld backdrop."""
    from src.faceworld import FaceWorld

    backdrop = FaceWorld().background(7 + seed, width, height).copy()
    cutouts = bystander_cutouts(range(50 + seed, 50 + seed + num_faces))
    per_row = (num_faces + 1) // 2
    frame = backdrop
    for k, cutout in enumerate(cutouts):
        row, column = divmod(k, per_row)
        centre = ((column + 0.5 + 0.25 * row) * width / (per_row + 0.5), (0.3 + 0.42 * row) * height)
        frame = paste_face(frame, cutout, face_fraction * width, centre)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=4, help="subject identities")
    parser.add_argument("--frames", type=int, default=2, help="frames per subject identity")
    parser.add_argument("--bystanders", type=int, default=4, help="bystander identities")
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 60, 80, 120, 160, 200])
    parser.add_argument("--singles", type=int, default=8, help="frames per identity of the single-face set")
    parser.add_argument("--min-face-px", type=float, default=40.0)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    from src.capture.face_count import FaceCounter
    from src.landmarks.detectors.mediapipe import MediaPipeDetector

    counter = FaceCounter(min_face_px=args.min_face_px)
    landmarks = MediaPipeDetector(max_num_faces=4)
    counters: dict[str, Callable[[np.ndarray], int]] = {
        "tiled full-range (gate)": counter.count,
        "landmark model (FaceMesh)": lambda image: len(landmarks.detect(image)),
    }
    times: dict[str, list[float]] = {name: [] for name in counters}

    def timed(name: str, image: np.ndarray) -> int:
        start = time.perf_counter()
        found = counters[name](image)
        times[name].append(time.perf_counter() - start)
        return found

    subjects = subject_frames(range(args.subjects), args.frames)
    cutouts = bystander_cutouts(range(args.bystanders))
    singles = subject_frames(range(100, 100 + args.subjects), args.singles, seed=3)
    height, width = subjects[0][0].shape[:2]
    print(
        f"{len(subjects)} subject frames ({args.subjects} identities, {width}x{height}) "
        f"x {len(cutouts)} bystander identities x {len(POSITIONS)} positions per size; "
        f"{len(singles)} single-face frames of {args.subjects} other identities"
    )
    rejected: dict[str, dict[int, list[bool]]] = {name: {size: [] for size in args.sizes} for name in counters}
    for subject, box in subjects:
        for cutout in cutouts:
            for position in POSITIONS:
                centre = bystander_centre(subject, box, position)
                for size in args.sizes:
                    composite = paste_face(subject, cutout, size, centre)
                    for name in counters:
                        rejected[name][size].append(timed(name, composite) >= 2)
    wrong = {name: [timed(name, frame) for frame, _ in singles] for name in counters}
    groups = [group_photo(6, seed=s) for s in range(3)]
    group_counts = {name: [timed(name, frame) for frame in groups] for name in counters}

    header = f"{'counter':28s}" + "".join(f" {f'{s} px':>7s}" for s in args.sizes)
    print("\nbystander rejected (share of composites with two faces counted as >= 2):\n" + header)
    for name in counters:
        print(f"{name:28s}" + "".join(f" {np.mean(rejected[name][s]):7.1%}" for s in args.sizes))
    print(f"\n{'counter':28s} {'singles != 1':>13s} {'group (6 faces)':>16s} {'ms/frame':>9s}")
    for name in counters:
        miscount = sum(n != 1 for n in wrong[name])
        group = "/".join(str(n) for n in group_counts[name])
        print(
            f"{name:28s} {miscount:6d} of {len(singles):<4d} {group:>16s} {1000 * statistics.median(times[name]):9.1f}"
        )
    print("\ntiled counter by frame size (a single-face frame scaled; median of 3 runs):")
    for (frame_width, frame_height), tiles, seconds in time_by_resolution(counter, singles[0][0]):
        print(f"{frame_width:5d}x{frame_height:<5d} {tiles:4d} tiles {1000 * seconds:8.0f} ms/frame")
    counter.close()
    landmarks.close()


RESOLUTIONS = ((297, 355), (950, 1135), (1900, 2270))  # the default capture, twice it, the original's Kinect crop


def time_by_resolution(
    counter: FaceCounter, frame: np.ndarray, sizes: Sequence[tuple[int, int]] = RESOLUTIONS, repeats: int = 3
) -> list[tuple[tuple[int, int], int, float]]:
    """((width, height), tiles, median seconds) of `counter.find` per frame size: the cost grows with the tile count,
    so the converter's full-resolution frames cost ~4x the capture's 950x1135 ones."""
    from src.capture.face_count import tile_pyramid

    rows = []
    for width, height in sizes:
        image = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            counter.find(image)
            seconds.append(time.perf_counter() - start)
        rows.append(
            ((width, height), len(tile_pyramid(height, width, counter.min_face_px)), statistics.median(seconds))
        )
    return rows


if __name__ == "__main__":
    main()
