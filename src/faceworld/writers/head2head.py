"""FaceWorld talking-head videos in Head2Head's on-disk layout (so the Head2Head datamodule reads real and synthetic
data alike).

Layout (one file per frame, file names are the frame's index in its video, `000123.png` / `000123.txt`):

    <root>/faceworld.json                       how the set was made (seed, sizes, split, formats)
    <root>/dataset/{train,test}/
        images/<seq>/000123.png                 size x size RGB face ROI (default 256)
        nmfcs/<seq>/000123.png                  NMFC image: the posed mesh coloured by its normalised mean-face
                                                coordinate, orthographic camera (weak perspective at the head depth)
        landmarks70/<seq>/000123.txt            70 lines "x y": 68 iBUG points + pupils 68, 69 (crop pixels)
        misc/<seq>/000123.txt                   camera: scale (1 line), rotation (3 lines), translation (1 line,
                                                3 values); a model-space point X (mm) lands at crop pixel
                                                (x, y) = scale * (R @ X)[:2] + translation[:2]; translation[2]
                                                is the head depth in mm
        exp_coeffs/<seq>/000123.txt             expression coefficients, one per line (FaceWorld's 9, in [0, 1])
        eye_gaze/<seq>/000123.png               eye contours as white curves, pupils as red discs (what the
                                                original draws from landmarks70 on the fly; written for checks)
        id_coeffs/<id>.txt                      identity coefficients averaged over the video, one per line
    train sequences <id>_<part:06d> (50-frame parts of the first part of each video), test sequences <id> (the
    LAST third of each video: self-reenactment ground truth, never interleaved with training frames).
    reenactment (optional) dataset/test/<kind>/<target>_<source>/: the source's test frames re-rendered with the
    target's person (shape, albedo, hair, light, background) and the source's expression, head pose and gaze:
    the TRUE reenactment, which real data never has. Kinds as above (images are the true frames).

Identity names are `id000`, `id001`, ... (no underscore). Each video is framed like the original's preprocessing:
face boxes in a webcam-like 1280x720 frame, smoothed over time (Savitzky-Golay), one fixed square box crops the
whole video; rendering through the matching crop camera equals crop-and-resize of the full frame.
Deterministic in `seed` whatever the number of workers; every file is written atomically; progress bar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from src.faceworld.params import FaceParams
from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import (
    begin_write,
    check_workers,
    chunks,
    crop_camera,
    draw_eye_gaze_image,
    fixed_video_box,
    format_points,
    format_values,
    identity_name,
    identity_seed,
    rgb_to_bgr,
    run_jobs,
    test_start,
    transplant_motion,
    video_camera,
    world_for,
    write_json_atomic,
)
from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.pose import euler_to_rotation
from src.io.atomic import write_image_atomic, write_text_atomic

KINDS = ("images", "nmfcs", "landmarks70", "misc", "exp_coeffs")
EYE_KIND = "eye_gaze"
PART_FRAMES = 50
META_FILE = "faceworld.json"


def train_sequence_name(identity: str, part: int) -> str:
    return f"{identity}_{part:06d}"


def reenactment_name(target: str, source: str) -> str:
    return f"{target}_{source}"


def misc_lines(params: FaceParams, camera: PinholeCamera) -> str:
    """The orthographic camera of one frame in Head2Head's misc format (see the module docstring)."""
    head_cam = camera.to_camera(np.asarray(params.translation)[None])[0]
    ortho = OrthographicCamera.matching(camera, float(head_cam[2]))
    rotation = camera.rotation @ euler_to_rotation(*params.head_rotation_deg)
    translation = np.array(
        [ortho.scale * head_cam[0] + ortho.cx, ortho.scale * head_cam[1] + ortho.cy, head_cam[2]], np.float64
    )
    return format_values([ortho.scale], 8) + format_points(rotation, 8) + format_points(translation[None], 6)


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


def _frame_paths(job: _VideoJob, index: int) -> tuple[Path, str]:
    """The sequence folder name and the split root of one frame of a job."""
    name = identity_name(job.identity)
    if job.driver != job.identity:
        return Path(job.root) / "dataset" / "test", reenactment_name(name, identity_name(job.driver))
    if index >= job.test_start:
        return Path(job.root) / "dataset" / "test", name
    return Path(job.root) / "dataset" / "train", train_sequence_name(name, index // job.part_frames)


def _render_video(job: _VideoJob) -> int:
    torch.set_num_threads(1)
    world = world_for()
    motion = _video(job.driver, job.frames_per_video, job.fps, job.seed)
    person = _video(job.identity, job.frames_per_video, job.fps, job.seed)[0] if job.driver != job.identity else None
    size = job.camera.width
    for index in range(job.start, job.stop):
        params = motion[index] if person is None else transplant_motion(person, motion[index])
        frame = world.render(params, job.camera, ("rgb", "landmarks", "nmfc"))
        split_root, seq = _frame_paths(job, index)
        stem = f"{index:06d}"
        write_image_atomic(split_root / "images" / seq / f"{stem}.png", rgb_to_bgr(frame["rgb"]))
        write_image_atomic(split_root / "nmfcs" / seq / f"{stem}.png", rgb_to_bgr(frame["nmfc"]))
        write_text_atomic(split_root / "landmarks70" / seq / f"{stem}.txt", format_points(frame["landmarks2d"]))
        write_text_atomic(split_root / "misc" / seq / f"{stem}.txt", misc_lines(params, job.camera))
        write_text_atomic(split_root / "exp_coeffs" / seq / f"{stem}.txt", format_values(params.expression))
        if job.eye_gaze:
            eyes = draw_eye_gaze_image(frame["landmarks2d"], size)
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

    `reenactments` pairs (target k, source k+1 mod n), k = 0, 1, ..., get a true reenactment sequence."""
    if num_identities < 1:
        raise ValueError(f"num_identities must be >= 1, got {num_identities}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if part_frames < 1:
        raise ValueError(f"part_frames must be >= 1, got {part_frames}")
    check_workers(workers)
    if not 0 <= reenactments <= (num_identities if num_identities > 1 else 0):
        raise ValueError(
            f"reenactments must be in [0, {num_identities if num_identities > 1 else 0}], got {reenactments}"
        )
    first_test = test_start(frames_per_video, test_fraction)
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

    for identity in range(num_identities):
        mean_identity = np.mean([p.identity for p in _video(identity, frames_per_video, fps, seed)], axis=0)
        for split in ("train", "test"):
            path = root / "dataset" / split / "id_coeffs" / f"{identity_name(identity)}.txt"
            write_text_atomic(path, format_values(mean_identity))
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
