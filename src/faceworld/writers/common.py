"""Pieces shared by all FaceWorld writers (RGBD, Head2Head, DG, DFDN, PRNet / faces2one).

Every writer, the RGBD ones (src/faceworld/writers/rgbd.py) included, uses the one job runner, chunking and
identity seeds defined here, so every layout draws the same people for the same seed: identity k of a Head2Head
dataset is identity k of an RGBD or PRNet dataset written with that seed. Also here: a per-process world cache
keyed by the map sizes the layouts need, identity names and splits, the video framing of face-video datasets (one
fixed square box per video from smoothed per-frame boxes, as Head2Head and VoxCeleb crop), motion transplanting
(identity A moved by B: the ground truth of every reenactment), small text formats and the eye-gaze image.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from scipy.signal import savgol_filter
from tqdm import tqdm

from src.faceworld.params import FaceParams
from src.faceworld.world import FaceWorld
from src.geometry.camera import PinholeCamera
from src.io.atomic import write_text_atomic
from src.landmarks.scheme import EYE_LEFT, EYE_RIGHT, NUM_IBUG, PUPILS

__all__ = [
    "check_output_root",
    "chunks",
    "crop_camera",
    "draw_eye_gaze_image",
    "fixed_video_box",
    "format_points",
    "format_values",
    "identity_name",
    "identity_seed",
    "identity_splits",
    "landmark_box",
    "rgb_to_bgr",
    "run_jobs",
    "test_start",
    "transplant_motion",
    "video_camera",
    "world_for",
    "write_json_atomic",
]

# A webcam-like full frame (1280x720, ~65 degrees horizontal field of view) that videos are "recorded" with
# before the face box is cropped out of it.
VIDEO_WIDTH, VIDEO_HEIGHT, VIDEO_FOCAL = 1280, 720, 1000.0

_WORLDS: dict[tuple[int, int], FaceWorld] = {}


def world_for(uv_size: int = 256, position_map_size: int = 256) -> FaceWorld:
    """One FaceWorld per process and map sizes (building it and its caches costs ~0.2 s)."""
    key = (int(uv_size), int(position_map_size))
    if key not in _WORLDS:
        _WORLDS[key] = FaceWorld(uv_size=key[0], position_map_size=key[1])
    return _WORLDS[key]


def identity_seed(seed: int, index: int) -> int:
    """The seed of identity `index` of a dataset written with `seed` (independent streams per identity)."""
    return int(np.random.SeedSequence([int(seed), int(index), 1]).generate_state(1)[0])


def chunks(count: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `chunk` items covering range(count): the unit of work of one job."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return [(s, min(s + chunk, count)) for s in range(0, count, chunk)]


def run_jobs(function, jobs: list, workers: int, description: str, total: int, progress: bool) -> None:
    """Run `function(job)` (returns how many frames it wrote) for every job, in-process for workers <= 1 or on a
    fork pool; each job derives everything from its own fields, so the output does not depend on `workers`."""
    bar = tqdm(total=total, desc=description, unit="frame", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                bar.update(function(job))
        else:
            context = mp.get_context("fork")
            with context.Pool(processes=workers) as pool:
                for done in pool.imap_unordered(function, jobs):
                    bar.update(done)
    finally:
        bar.close()


def check_workers(workers: int) -> None:
    """Refuse a negative worker count up front, before a writer touches its output folder (0 or 1: in-process)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")


def identity_name(index: int) -> str:
    """Identity folder name: no underscore (Head2Head splits sequence names at the first underscore)."""
    return f"id{index:03d}"


def identity_splits(num_identities: int, test_identities: int) -> list[str]:
    """'train' or 'test' per identity index: the last `test_identities` identities are held out."""
    if num_identities < 1:
        raise ValueError(f"num_identities must be >= 1, got {num_identities}")
    if not 0 <= test_identities < num_identities:
        raise ValueError(f"test_identities must be in [0, {num_identities - 1}], got {test_identities}")
    return ["test" if k >= num_identities - test_identities else "train" for k in range(num_identities)]


def test_start(num_frames: int, test_fraction: float) -> int:
    """First frame of the held-out end of a video (time split): the last `test_fraction` of the frames."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    num_test = round(num_frames * test_fraction)
    if num_test < 1 or num_test >= num_frames:
        raise ValueError(
            f"frames_per_video={num_frames} is too short for a time split with test_fraction={test_fraction:g} "
            f"(needs at least one train and one test frame)"
        )
    return num_frames - num_test


def video_camera() -> PinholeCamera:
    """The full-frame camera videos are framed in (see VIDEO_WIDTH / VIDEO_HEIGHT / VIDEO_FOCAL)."""
    return PinholeCamera(
        fx=VIDEO_FOCAL,
        fy=VIDEO_FOCAL,
        cx=(VIDEO_WIDTH - 1) / 2.0,
        cy=(VIDEO_HEIGHT - 1) / 2.0,
        width=VIDEO_WIDTH,
        height=VIDEO_HEIGHT,
    )


def crop_camera(camera: PinholeCamera, x0: float, y0: float, side: float, size: int) -> PinholeCamera:
    """The camera that sees exactly the square [x0, x0 + side) x [y0, y0 + side) of `camera`'s image resized to
    size x size: rendering with it equals rendering the full frame, cropping and resizing (without the cost)."""
    if side <= 0 or size <= 0:
        raise ValueError(f"crop side and size must be positive, got side={side}, size={size}")
    s = size / side
    return PinholeCamera(
        fx=camera.fx * s,
        fy=camera.fy * s,
        cx=(camera.cx - x0 + 0.5) * s - 0.5,
        cy=(camera.cy - y0 + 0.5) * s - 0.5,
        width=size,
        height=size,
        rotation=camera.rotation,
        translation=camera.translation,
    )


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of the 68 iBUG landmarks: a stand-in for a face detector's box."""
    pts = np.asarray(points)[:NUM_IBUG, :2]
    return np.concatenate([pts.min(0), pts.max(0)])


def fixed_video_box(
    world: FaceWorld,
    params: Sequence[FaceParams],
    camera: PinholeCamera,
    scale: float = 1.6,
    window: int = 9,
    raise_fraction: float = 0.08,
) -> tuple[float, float, float]:
    """One square box (x0, y0, side) for a whole video, as Head2Head's preprocessing does: per-frame face boxes,
    smoothed over time (Savitzky-Golay, order 2), then the square around the union of the smoothed boxes,
    enlarged by `scale` about its centre so the head stays inside however it moves."""
    boxes = np.stack([landmark_box(camera.project(world.landmarks3d(p))) for p in params])
    if len(boxes) >= 5:
        win = min(window, len(boxes) if len(boxes) % 2 else len(boxes) - 1)
        boxes = savgol_filter(boxes, win, 2, axis=0)
    lo, hi = boxes[:, :2].min(0), boxes[:, 2:].max(0)
    side = float(scale * max(hi - lo))
    # The landmark box stops at the brows: move the square up a little so the forehead is in the crop.
    centre = 0.5 * (lo + hi) - np.array([0.0, raise_fraction * side])
    return float(centre[0] - side / 2), float(centre[1] - side / 2), side


def transplant_motion(identity_from: FaceParams, motion_from: FaceParams) -> FaceParams:
    """`identity_from`'s person (shape, albedo, skin, hair) and scene (light, background, wrinkle strength)
    moved by `motion_from` (expression, head pose, position, gaze): the true result of reenacting
    identity_from with motion_from as the driver."""
    return motion_from.replace(
        identity=identity_from.identity,
        albedo_seed=identity_from.albedo_seed,
        skin_tone=identity_from.skin_tone,
        hair=identity_from.hair,
        light=identity_from.light,
        background=identity_from.background,
        displacement_strength=identity_from.displacement_strength,
    )


def format_points(points: np.ndarray, decimals: int = 4) -> str:
    """One point per line, values separated by spaces (np.loadtxt reads it back as (N, D))."""
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    return "".join(" ".join(f"{v:.{decimals}f}" for v in row) + "\n" for row in pts)


def format_values(values: np.ndarray, decimals: int = 6) -> str:
    """One value per line (np.loadtxt reads it back as (N,))."""
    return "".join(f"{float(v):.{decimals}f}\n" for v in np.asarray(values).reshape(-1))


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_output_root(root: Path, meta_file: str, settings: dict) -> dict:
    """Refuse to mix datasets: `root` must be empty, missing, or a dataset written with the same settings (a rerun
    rewrites the same bytes). Returns the settings as JSON stores them (for the meta file)."""
    stored = json.loads(json.dumps(settings))
    if not root.exists() or not any(root.iterdir()):
        return stored
    meta_path = root / meta_file
    try:
        previous = json.loads(meta_path.read_text()).get("settings")
    except (OSError, ValueError):
        previous = None
    if previous != stored:
        raise ValueError(
            f"{root}: not empty and not a dataset written with these settings ({meta_path.name} differs or is "
            f"missing); choose another output folder or delete it"
        )
    return stored


def draw_eye_gaze_image(landmarks70: np.ndarray, size: int) -> np.ndarray:
    """Head2Head's eye-gaze conditioning image (H,W,3) RGB: eye contours as white closed curves, pupils as red
    filled discs (radius ~ a tenth of the eye width), black elsewhere."""
    pts = np.asarray(landmarks70, dtype=np.float64)
    image = np.zeros((size, size, 3), np.uint8)
    thickness = max(1, round(size / 256))
    for eye, pupil in zip((EYE_RIGHT, EYE_LEFT), PUPILS):
        contour = np.round(pts[list(eye)]).astype(np.int32)
        cv2.polylines(image, [contour], True, (255, 255, 255), thickness, lineType=cv2.LINE_AA)
        width = np.linalg.norm(pts[eye[3]] - pts[eye[0]])
        radius = max(1, round(0.1 * width))
        centre = tuple(int(v) for v in np.round(pts[pupil]))
        cv2.circle(image, centre, radius, (255, 0, 0), -1, lineType=cv2.LINE_AA)
    return image


def rgb_to_bgr(image: np.ndarray) -> np.ndarray:
    """Images live as RGB in memory and are written by OpenCV (BGR on disk)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
