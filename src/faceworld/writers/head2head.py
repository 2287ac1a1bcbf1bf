"""FaceWorld talking-head videos in Head2Head's on-disk layout, by the original's rules (so the Head2Head datamodule,
and the original's own readers, read real and synthetic data alike).

Layout (one file per frame, file names are the frame's index in its video, `000123.png` / `000123.txt`; text files
as numpy.savetxt writes them, `%.18e`):

    <root>/faceworld.json                       how the set was made (seed, sizes, split, formats)
    <root>/dataset/{train,test}/
        images/<seq>/000123.png                 size x size RGB face ROI (default 256)
        nmfcs/<seq>/000123.png                  NMFC image: the posed mesh coloured by its normalised mean-face
                                                coordinate, orthographic camera (weak perspective at the head depth)
        landmarks70/<seq>/000123.txt            70 rows "x y": 68 iBUG points + pupils 68, 69 (crop pixels)
        misc/<seq>/000123.txt                   camera, 7 lines: scale; rotation (3 lines of 3); tx; ty; tz. A
                                                model-space point X (mm) lands at crop pixel (x, y) = scale *
                                                (R @ X)[:2] + (tx, ty); tz is the head depth in mm
        exp_coeffs/<seq>/000123.txt             expression coefficients, one per line (FaceWorld's 9, in [0, 1])
        eye_gaze/<seq>/000123.png               eye-gaze image (src.convert.video.eyes; the original draws it from
                                                landmarks70 on the fly: written for checks, readers ignore it)
        id_coeffs/<id>.txt                      identity coefficients averaged over the video, one per line
                                                (the same file in train/ and test/)

Split of each video of n frames, as the original's preprocessing: int(test_fraction * n) frames are meant for test;
the train part is the frames before, cut into WHOLE `part_frames`-frame sequences `<id>_<part:06d>` (part = frame //
part_frames); the shorter tail they leave goes to the test sequence `<id>`, so test = the last third plus that tail
(1000 frames: train 000000-000649 in 13 parts, test 000650-000999). A video too short for one part is an error.

Reenactment (optional, pairs (target k, source k+1)), in the original's reenactment folders, which its
self-reenactment reader never walks:

    dataset/test/source_images/<target>_<source>/      the source's test frames (copies, as the original's reenact.py)
    dataset/test/source_nmfcs/<target>_<source>/       NMFC of the target's identity moved by the source (pose,
                                                       expression): the driving input of a reenactment
    dataset/test/source_landmarks70/<target>_<source>/ 14 rows: eye points 36-47 and pupils 68, 69 of that reenacted
                                                       face (the original's eye-only file)
    dataset/test/reenactment_truth/{images,nmfcs,landmarks70,misc,exp_coeffs}/<target>_<source>/
        the TRUE reenactment, which real data never has: the target's person (shape, albedo, hair, light, background)
        with the source's expression, head pose and gaze, rendered through the source's crop camera.

Identity names are `id000`, `id001`, ... (no underscore). Each video is framed like the original's preprocessing:
face boxes in a webcam-like 1280x720 frame, smoothed over time (Savitzky-Golay), one fixed square box crops the
whole video; rendering through the matching crop camera equals crop-and-resize of the full frame.
Deterministic in `seed` whatever the number of workers; every file is written atomically; resumable; progress bar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from src.convert.video.eyes import EYE_ROWS_70, draw_eye_image
from src.faceworld.params import FaceParams
from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import (
    begin_write,
    check_workers,
    chunks,
    crop_camera,
    fixed_video_box,
    identity_name,
    identity_seed,
    rgb_to_bgr,
    run_jobs,
    transplant_motion,
    video_camera,
    world_for,
    write_json_atomic,
)
from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.pose import euler_to_rotation
from src.io.atomic import write_bytes_atomic, write_image_atomic, write_text_atomic

KINDS = ("images", "nmfcs", "landmarks70", "misc", "exp_coeffs")
SOURCE_KINDS = ("source_images", "source_nmfcs", "source_landmarks70")
TRUTH_FOLDER = "reenactment_truth"
EYE_KIND = "eye_gaze"
PART_FRAMES = 50
META_FILE = "faceworld.json"


def train_sequence_name(identity: str, part: int) -> str:
    return f"{identity}_{part:06d}"


def reenactment_name(target: str, source: str) -> str:
    return f"{target}_{source}"


def split_video(num_frames: int, test_fraction: float = 0.33, part_frames: int = PART_FRAMES) -> int:
    """The first test frame of a video, by the original's rule: int(test_fraction * n) frames meant for test, the
    train frames before them floored to whole parts. ValueError when no whole train part or no test frame is left."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if part_frames < 1:
        raise ValueError(f"part_frames must be >= 1, got {part_frames}")
    train_end = (num_frames - int(test_fraction * num_frames)) // part_frames * part_frames
    if train_end < part_frames or train_end >= num_frames:
        raise ValueError(
            f"frames_per_video={num_frames} is too short for one whole {part_frames}-frame train part and a test "
            f"split with test_fraction={test_fraction:g}"
        )
    return train_end


def savetxt_text(values: np.ndarray) -> str:
    """What numpy.savetxt(path, values) writes (`%.18e`, space separated, one row per line): the original's files."""
    rows = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if rows.ndim == 1:
        rows = rows[:, None]
    return "".join(" ".join(f"{v:.18e}" for v in row) + "\n" for row in rows)


def misc_lines(params: FaceParams, camera: PinholeCamera) -> str:
    """The orthographic camera of one frame in Head2Head's misc format, 7 lines (see the module docstring)."""
    head_cam = camera.to_camera(np.asarray(params.translation)[None])[0]
    ortho = OrthographicCamera.matching(camera, float(head_cam[2]))
    rotation = camera.rotation @ euler_to_rotation(*params.head_rotation_deg)
    translation = np.array(
        [ortho.scale * head_cam[0] + ortho.cx, ortho.scale * head_cam[1] + ortho.cy, head_cam[2]], np.float64
    )
    return savetxt_text([ortho.scale]) + savetxt_text(rotation) + savetxt_text(translation)


def read_misc(path: str | os.PathLike) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, rotation (3,3), translation (3,)) of a misc file, read as the original reads it (scale line, three
    rotation lines, then the rest as the translation: 3 lines, or one line of 3)."""
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    values = [float(v) for row in rows[4:] for v in row]
    if len(rows) < 5 or len(rows[0]) != 1 or any(len(r) != 3 for r in rows[1:4]) or len(values) != 3:
        raise ValueError(f"{path}: not a Head2Head misc file (scale; 3 rotation rows; 3 translation values)")
    return float(rows[0][0]), np.array(rows[1:4], dtype=np.float64), np.array(values)


@dataclass(frozen=True)
class _VideoJob:
    root: str
    identity: int  # the person shown (the target of a reenactment)
    driver: int  # whose video supplies the motion (== identity for the plain videos)
    start: int
    stop: int
    frames_per_video: int
    test_start: int
    fps: float
    seed: int
    camera: PinholeCamera
    part_frames: int
    eye_gaze: bool


def _video(identity: int, frames: int, fps: float, seed: int) -> list[FaceParams]:
    return talking_head(world_for(), identity_seed(seed, identity), frames, fps=fps, seed=seed)


def _write_frame(split_root: Path, seq: str, stem: str, frame: dict, params: FaceParams, job: _VideoJob) -> None:
    write_image_atomic(split_root / "images" / seq / f"{stem}.png", rgb_to_bgr(frame["rgb"]))
    write_image_atomic(split_root / "nmfcs" / seq / f"{stem}.png", rgb_to_bgr(frame["nmfc"]))
    write_text_atomic(split_root / "landmarks70" / seq / f"{stem}.txt", savetxt_text(frame["landmarks2d"]))
    write_text_atomic(split_root / "misc" / seq / f"{stem}.txt", misc_lines(params, job.camera))
    write_text_atomic(split_root / "exp_coeffs" / seq / f"{stem}.txt", savetxt_text(params.expression))


def _render_video(job: _VideoJob) -> int:
    torch.set_num_threads(1)
    world = world_for()
    motion = _video(job.driver, job.frames_per_video, job.fps, job.seed)
    reenacting = job.driver != job.identity
    person = _video(job.identity, job.frames_per_video, job.fps, job.seed)[0] if reenacting else None
    size = job.camera.width
    name = identity_name(job.identity)
    for index in range(job.start, job.stop):
        params = motion[index] if person is None else transplant_motion(person, motion[index])
        frame = world.render(params, job.camera, ("rgb", "landmarks", "nmfc"))
        stem = f"{index:06d}"
        if reenacting:
            test = Path(job.root) / "dataset" / "test"
            seq = reenactment_name(name, identity_name(job.driver))
            _write_frame(test / TRUTH_FOLDER, seq, stem, frame, params, job)
            write_image_atomic(test / "source_nmfcs" / seq / f"{stem}.png", rgb_to_bgr(frame["nmfc"]))
            eyes = frame["landmarks2d"][list(EYE_ROWS_70)]
            write_text_atomic(test / "source_landmarks70" / seq / f"{stem}.txt", savetxt_text(eyes))
            continue
        if index >= job.test_start:
            split_root, seq = Path(job.root) / "dataset" / "test", name
        else:
            split_root, seq = Path(job.root) / "dataset" / "train", train_sequence_name(name, index // job.part_frames)
        _write_frame(split_root, seq, stem, frame, params, job)
        if job.eye_gaze:
            eyes = draw_eye_image(frame["landmarks2d"], size)
            write_image_atomic(split_root / EYE_KIND / seq / f"{stem}.png", rgb_to_bgr(eyes))
    return job.stop - job.start


def write_head2head_dataset(
    root: str | os.PathLike,
    *,
    num_identities: int,
    frames_per_video: int,
    size: int = 256,
    test_fraction: float = 0.33,
    part_frames: int = PART_FRAMES,
    reenactments: int = 0,
    eye_gaze: bool = True,
    box_scale: float = 1.6,
    fps: float = 25.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write one talking-head video per identity in Head2Head's layout (see the module docstring).

    `reenactments` pairs (target k, source k+1 mod n), k = 0, 1, ..., get the reenactment folders."""
    if num_identities < 1:
        raise ValueError(f"num_identities must be >= 1, got {num_identities}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    check_workers(workers)
    if not 0 <= reenactments <= (num_identities if num_identities > 1 else 0):
        raise ValueError(
            f"reenactments must be in [0, {num_identities if num_identities > 1 else 0}], got {reenactments}"
        )
    first_test = split_video(frames_per_video, test_fraction, part_frames)
    root = Path(root)
    state = begin_write(
        root,
        "head2head",
        {
            "num_identities": num_identities, "frames_per_video": frames_per_video, "size": size,
            "test_fraction": test_fraction, "part_frames": part_frames, "reenactments": reenactments,
            "eye_gaze": eye_gaze, "box_scale": box_scale, "fps": fps, "seed": seed,
        },
    )  # fmt: skip
    world = world_for()
    full = video_camera()
    cameras = {}
    for identity in range(num_identities):
        params = _video(identity, frames_per_video, fps, seed)
        cameras[identity] = crop_camera(full, *fixed_video_box(world, params, full, box_scale), size)

    def video_jobs(identity: int, driver: int, start: int) -> list[_VideoJob]:
        span = frames_per_video - start
        return [
            _VideoJob(
                str(root), identity, driver, start + a, start + b, frames_per_video, first_test, fps, seed,
                cameras[driver], part_frames, eye_gaze,
            )
            for a, b in chunks(span, max(4, min(25, span)))
        ]  # fmt: skip

    jobs = [job for identity in range(num_identities) for job in video_jobs(identity, identity, 0)]
    pairs = [(k, (k + 1) % num_identities) for k in range(reenactments)]
    for target, source in pairs:
        jobs += video_jobs(target, source, first_test)
    total = num_identities * frames_per_video + len(pairs) * (frames_per_video - first_test)
    run_jobs(_render_video, jobs, workers, "FaceWorld Head2Head", total, progress, state)

    test = root / "dataset" / "test"
    for target, source in pairs:  # the original's reenact.py copies the source's test frames
        seq = reenactment_name(identity_name(target), identity_name(source))
        for image in sorted((test / "images" / identity_name(source)).glob("*.png")):
            destination = test / "source_images" / seq / image.name
            if not destination.is_file():
                write_bytes_atomic(destination, image.read_bytes())
    for identity in range(num_identities):
        mean_identity = np.mean([p.identity for p in _video(identity, frames_per_video, fps, seed)], axis=0)
        for split in ("train", "test"):
            path = root / "dataset" / split / "id_coeffs" / f"{identity_name(identity)}.txt"
            write_text_atomic(path, savetxt_text(mean_identity))
    write_json_atomic(
        root / META_FILE,
        {
            "layout": "head2head",
            "settings": state.settings,
            "source": "faceworld",
            "seed": seed,
            "size": size,
            "fps": fps,
            "num_identities": num_identities,
            "frames_per_video": frames_per_video,
            "test_fraction": test_fraction,
            "first_test_frame": first_test,
            "part_frames": part_frames,
            "kinds": [*KINDS, *([EYE_KIND] if eye_gaze else []), "id_coeffs"],
            "reenactments": [reenactment_name(identity_name(t), identity_name(s)) for t, s in pairs],
            "reenactment_kinds": [*SOURCE_KINDS, TRUTH_FOLDER] if pairs else [],
            "expression_names": list(world.expression_names),
            "box_scale": box_scale,
            "video_frame": {"width": full.width, "height": full.height, "focal": full.fx},
            "crop_cameras": {
                identity_name(k): {"fx": c.fx, "fy": c.fy, "cx": c.cx, "cy": c.cy} for k, c in cameras.items()
            },
        },
    )
    state.finish()
    return root
