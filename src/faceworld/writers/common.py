"""Pieces shared by all FaceWorld writers (RGBD, Head2Head, DG, DFDN, PRNet / faces2one).

Every writer, the RGBD ones (src/faceworld/writers/rgbd.py) included, uses the one job runner, chunking and
identity seeds defined here, so every layout draws the same people for the same seed: identity k of a Head2Head
dataset is identity k of an RGBD or PRNet dataset written with that seed. Also here: a per-process world cache
keyed by the map sizes the layouts need, identity names and splits, the video framing of face-video datasets (one
fixed square box per video from smoothed per-frame boxes, as Head2Head and VoxCeleb crop), motion transplanting
(identity A moved by B: the ground truth of every reenactment), small text formats and the eye-gaze image.

Resuming (one mechanism for every writer): `begin_write` records the layout and its output-affecting settings in
`<root>/.faceworld_write/settings.json` (atomically) BEFORE any frame is written, and `run_jobs` marks each finished
job in `.faceworld_write/done/`. A rerun with the same settings into the same folder skips the finished jobs and
redoes the others from scratch; since every job derives its bytes from its own fields and every file is written
atomically, the result is byte-identical to an uninterrupted run. A rerun with different settings, or into a
folder that is not a FaceWorld dataset, is refused before anything is touched. `WriteState.finish` replaces the
per-job markers with one `complete.json` once the writer's last file is written.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.signal import savgol_filter
from tqdm import tqdm

from src.faceworld.params import FaceParams
from src.faceworld.world import FaceWorld
from src.geometry.camera import PinholeCamera
from src.io.atomic import remove_stale_temporaries, write_text_atomic
from src.landmarks.scheme import EYE_LEFT, EYE_RIGHT, NUM_IBUG, PUPILS
from src.utils.errors import DatasetError

__all__ = [
    "STATE_DIR",
    "WriteState",
    "begin_write",
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


# Test hook: called in the parent process after each job's completion marker is written, with the number of jobs
# finished in this run; raising from it simulates an interrupted write (tests/faceworld_writers/test_writers_resume).
after_job_hook: Callable[[int], None] | None = None


def _call_indexed(task: tuple[Callable[[Any], int], int, Any]) -> tuple[int, int]:
    function, index, job = task
    return index, function(job)


def run_jobs(
    function: Callable[[Any], int],
    jobs: list,
    workers: int,
    description: str,
    total: int,
    progress: bool,
    state: WriteState | None = None,
) -> None:
    """Run `function(job)` (returns how many frames it wrote) for every job, in-process for workers <= 1 or on a
    fork pool; each job derives everything from its own fields, so the output does not depend on `workers`.

    With a `state` (from begin_write) the jobs a previous run finished are skipped and each newly finished job is
    marked done, so an interrupted write resumes where it stopped. Jobs are identified by their position in
    `jobs`, which the same settings always rebuild in the same order."""
    finished = state.finished_jobs(len(jobs)) if state is not None else {}
    pending = [(function, index, job) for index, job in enumerate(jobs) if index not in finished]
    bar = tqdm(total=total, initial=sum(finished.values()), desc=description, unit="frame", disable=not progress)
    count = 0

    def record(index: int, frames: int) -> None:
        nonlocal count
        if state is not None:
            state.mark_done(index, frames)
        bar.update(frames)
        count += 1
        if after_job_hook is not None:
            after_job_hook(count)

    try:
        if workers <= 1 or len(pending) <= 1:
            for task in pending:
                record(*_call_indexed(task))
        else:
            context = mp.get_context("fork")
            with context.Pool(processes=min(workers, len(pending))) as pool:
                for index, frames in pool.imap_unordered(_call_indexed, pending):
                    record(index, frames)
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


STATE_DIR = ".faceworld_write"
SETTINGS_FILE = "settings.json"
COMPLETE_FILE = "complete.json"
_DONE_DIR = "done"


@dataclass(frozen=True)
class WriteState:
    """The resume bookkeeping of one dataset folder (see the module docstring)."""

    root: Path
    layout: str
    settings: dict

    @property
    def folder(self) -> Path:
        return self.root / STATE_DIR

    @property
    def complete(self) -> bool:
        return (self.folder / COMPLETE_FILE).is_file()

    def _done_path(self, index: int) -> Path:
        return self.folder / _DONE_DIR / f"job{index:06d}.json"

    def finished_jobs(self, num_jobs: int) -> dict[int, int]:
        """{job index: frames written} of the jobs a previous run finished (all of them once complete)."""
        if self.complete:
            return dict.fromkeys(range(num_jobs), 0)
        finished = {}
        for index in range(num_jobs):
            try:
                finished[index] = int(json.loads(self._done_path(index).read_text())["frames"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # absent or unreadable: the job is simply redone
        return finished

    def mark_done(self, index: int, frames: int) -> None:
        write_json_atomic(self._done_path(index), {"frames": int(frames)})

    def finish(self) -> None:
        """Record that the dataset is complete (after its last file), then drop the per-job markers."""
        write_json_atomic(self.folder / COMPLETE_FILE, {"layout": self.layout})
        shutil.rmtree(self.folder / _DONE_DIR, ignore_errors=True)


def _only_temporaries(root: Path) -> bool:
    """True when every file below `root` is a temporary of src.io.atomic (a write killed before its first rename)."""
    return all(p.name.startswith(".") and ".tmp" in p.name for p in root.rglob("*") if p.is_file())


def _differences(previous: dict, current: dict) -> list[str]:
    keys = sorted(set(previous) | set(current))
    missing = "(not set)"
    return [
        f"{key}: {json.dumps(previous.get(key, missing))} there, {json.dumps(current.get(key, missing))} now"
        for key in keys
        if previous.get(key, missing) != current.get(key, missing)
    ]


def begin_write(root: str | os.PathLike, layout: str, settings: dict) -> WriteState:
    """Record `settings` (everything that changes the output bytes) before any frame is written, or check them
    against the folder's record when resuming. Raises DatasetError, touching nothing, when `root` is a file, a
    non-empty folder that is not a FaceWorld dataset, or a dataset of another layout or other settings."""
    root = Path(root)
    stored = json.loads(json.dumps(settings))
    record = {"layout": layout, "settings": stored}
    settings_path = root / STATE_DIR / SETTINGS_FILE
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root}: exists and is not a folder; choose another output folder")
    if root.is_dir() and not _only_temporaries(root):
        try:
            previous = json.loads(settings_path.read_text())
        except (OSError, ValueError):
            previous = None
        if not isinstance(previous, dict) or not isinstance(previous.get("settings"), dict):
            raise DatasetError(
                f"{root}: not empty and not a FaceWorld dataset folder (no readable {STATE_DIR}/{SETTINGS_FILE}); "
                "choose another output folder or delete it"
            )
        if previous.get("layout") != layout:
            raise DatasetError(
                f"{root}: holds a FaceWorld {previous.get('layout')} dataset, not {layout}; choose another output "
                "folder or delete it"
            )
        differing = _differences(previous["settings"], stored)
        if differing:
            raise DatasetError(
                f"{root}: holds a FaceWorld {layout} dataset written with other settings ({'; '.join(differing)}); "
                "rerun with the same settings to resume it, or choose another output folder"
            )
        remove_stale_temporaries(root)
        return WriteState(root, layout, stored)
    if root.is_dir():
        remove_stale_temporaries(root)
    write_json_atomic(settings_path, record)
    return WriteState(root, layout, stored)


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
