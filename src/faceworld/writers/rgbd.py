"""FaceWorld datasets in the RGBD face system's on-disk layouts (src/io/rgbd_layout.py).

- write_processed_dataset: what `convert` produces from real captures, so the rgbd datamodule reads both:
  Color / Depth / Feature PNGs + Landmark txt + config.txt. Framing follows the original conversion: every
  frame's scale is normalised to the first frame's nose depth (focal length x nose_z / desired nose_z),
  one global scale makes the largest landmark box fit size - 2 * padding, the crop is centred on each
  landmark box, depth is shifted so the nose sits at the desired depth and [nose - depth_padding,
  nose + face_depth] is encoded by DepthEncoding (0 = background). Depth is the true depth (no sensor noise,
  no holes: what the converter's hole filling aims at). Split by identity: the last `eval_identities`
  identities form the eval split; frames of one identity are one smooth talking-head sequence.
- write_unprocessed_capture: what the Azure-Kinect capture writes: colour crops of a Kinect 3072P-like
  camera (the original's depth-lit crop x=1050, y=400, w=1900, h=2270, scaled to `size`), depth registered
  to colour with the Kinect-like sensor model (noise, holes), IR likewise; split by session.
Both are deterministic in `seed` whatever the number of workers, write every file atomically and show a
progress bar. The processed config's fx, fy, cx, cy are approximate, as for converted real data: each frame is
its own crop (the principal point moves) and its own scale (the nose-depth normalisation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from src.faceworld.sensor import KinectSensorModel
from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import begin_write, check_workers, chunks, identity_seed, run_jobs, world_for
from src.geometry.camera import (
    KINECT_3072P_CX,
    KINECT_3072P_CY,
    KINECT_3072P_FX,
    KINECT_3072P_FY,
    PinholeCamera,
)
from src.io.atomic import write_image_atomic, write_text_atomic
from src.io.rgbd_layout import (
    CONFIG_FILE,
    DepthEncoding,
    format_landmark_file,
    processed_paths,
    unprocessed_paths,
    write_config,
)
from src.landmarks.drawing import draw_feature_image
from src.landmarks.scheme import NOSE_TIP

PROCESSED_SIZES = (128, 256, 512)
# The original capture keeps this region of the 4096x3072 colour image (x, y, width, height).
KINECT_CROP = (1050, 400, 1900, 2270)


@dataclass(frozen=True)
class _ProcessedJob:
    root: str
    split: str
    identity: int
    start: int
    stop: int
    frames_per_identity: int
    size: int
    fps: float
    seed: int
    focal: float
    desired_nose_mm: float
    encoding: DepthEncoding


def _sequence(identity: int, frames: int, fps: float, seed: int) -> list:
    return talking_head(world_for(), identity_seed(seed, identity), frames, fps=fps, seed=seed)


def _render_processed(job: _ProcessedJob) -> int:
    torch.set_num_threads(1)
    world = world_for()
    params = _sequence(job.identity, job.frames_per_identity, job.fps, job.seed)
    for index in range(job.start, job.stop):
        p = params[index]
        nose_z = float(world.landmarks3d(p)[NOSE_TIP, 2])
        camera = world.framing_camera(
            p, job.size, focal=job.focal * nose_z / job.desired_nose_mm, center_offset=(0.0, 0.0)
        )
        frame = world.render(p, camera, ("rgb", "depth", "landmarks"))
        depth = frame["depth_mm"]
        shifted = np.where(depth > 0, depth - nose_z + job.desired_nose_mm, 0.0)
        frame_id = f"id{job.identity:03d}_{index:06d}"
        paths = processed_paths(job.root, job.split, frame_id)
        landmarks = frame["landmarks2d"].astype(np.float64)
        write_image_atomic(paths["Color"], cv2.cvtColor(frame["rgb"], cv2.COLOR_RGB2BGR))
        write_image_atomic(paths["Depth"], job.encoding.encode(shifted))
        write_image_atomic(paths["Feature"], draw_feature_image(landmarks, job.size))
        write_text_atomic(paths["Landmark"], format_landmark_file(landmarks))
    return job.stop - job.start


def write_processed_dataset(
    root: str | os.PathLike,
    *,
    num_identities: int,
    frames_per_identity: int,
    size: int = 256,
    depth_bits: int = 16,
    eval_identities: int = 1,
    seed: int = 0,
    workers: int = 2,
    face_depth_mm: float = 80.0,
    depth_padding_mm: float = 20.0,
    padding_px: float | None = None,
    fps: float = 15.0,
    progress: bool = True,
) -> Path:
    """Write a processed RGBD dataset (see the module docstring); returns the root."""
    if size not in PROCESSED_SIZES:
        raise ValueError(f"size must be one of {PROCESSED_SIZES}, got {size}")
    if num_identities < 1 or frames_per_identity < 1:
        raise ValueError(f"need at least one identity and one frame, got {num_identities} x {frames_per_identity}")
    if not 0 <= eval_identities < num_identities:
        raise ValueError(f"eval_identities must be in [0, {num_identities - 1}], got {eval_identities}")
    check_workers(workers)
    root = Path(root)
    encoding_depth = float(face_depth_mm)
    padding = size * 20.0 / 512.0 if padding_px is None else float(padding_px)
    state = begin_write(
        root,
        "rgbd-processed",
        {
            "num_identities": num_identities, "frames_per_identity": frames_per_identity, "size": size,
            "depth_bits": depth_bits, "eval_identities": eval_identities, "seed": seed,
            "face_depth_mm": face_depth_mm, "depth_padding_mm": depth_padding_mm, "padding_px": padding, "fps": fps,
        },
    )  # fmt: skip

    # Pass 1 (landmarks only): the desired nose depth (first frame) and one focal length for all frames such
    # that the largest landmark box, after nose-depth normalisation, fits the crop with its padding.
    world = world_for()
    desired_nose = None
    largest = 0.0
    for identity in range(num_identities):
        for p in _sequence(identity, frames_per_identity, fps, seed):
            lm = world.landmarks3d(p)[:68]
            nose_z = float(lm[NOSE_TIP, 2])
            desired_nose = nose_z if desired_nose is None else desired_nose
            xn, yn = lm[:, 0] / lm[:, 2], lm[:, 1] / lm[:, 2]
            # At focal f the box spans f * extent * nose_z / desired pixels after normalisation.
            largest = max(largest, max(np.ptp(xn), np.ptp(yn)) * nose_z)
    assert desired_nose is not None
    focal = (size - 2.0 * padding) * desired_nose / largest
    encoding = DepthEncoding(desired_nose - depth_padding_mm, desired_nose + encoding_depth, depth_bits)

    jobs = []
    chunk = max(4, min(32, frames_per_identity))
    for identity in range(num_identities):
        split = "eval" if identity >= num_identities - eval_identities else "train"
        for start, stop in chunks(frames_per_identity, chunk):
            jobs.append(
                _ProcessedJob(
                    str(root),
                    split,
                    identity,
                    start,
                    stop,
                    frames_per_identity,
                    size,
                    fps,
                    seed,
                    focal,
                    desired_nose,
                    encoding,
                )
            )
    total = num_identities * frames_per_identity
    run_jobs(_render_processed, jobs, workers, "FaceWorld processed RGBD", total, progress, state)
    write_config(
        root / CONFIG_FILE,
        {
            "near_mm": f"{encoding.near_mm:.4f}",
            "far_mm": f"{encoding.far_mm:.4f}",
            "depth_bits": depth_bits,
            "fx": f"{focal:.4f}",
            "fy": f"{focal:.4f}",
            "cx": f"{(size - 1) / 2:.4f}",
            "cy": f"{(size - 1) / 2:.4f}",
            "face_depth_mm": face_depth_mm,
            "depth_padding_mm": depth_padding_mm,
            "nose_depth_mm": f"{desired_nose:.4f}",
            "padding_px": padding,
            "size": size,
            "source": "faceworld",
            "num_identities": num_identities,
            "frames_per_identity": frames_per_identity,
            "eval_identities": eval_identities,
            "split": "by_identity",
            "seed": seed,
            "fps": fps,
        },
    )
    state.finish()
    return root


def kinect_crop_camera(size: tuple[int, int]) -> PinholeCamera:
    """The colour camera of the unprocessed layout: Kinect 3072P intrinsics, cropped like the original
    capture (KINECT_CROP) and scaled to size (H, W)."""
    height, width = size
    if height <= 0 or width <= 0:
        raise ValueError(f"capture size must be positive, got {height}x{width}")
    x0, y0, cw, ch = KINECT_CROP
    sx, sy = width / cw, height / ch
    return PinholeCamera(
        fx=KINECT_3072P_FX * sx,
        fy=KINECT_3072P_FY * sy,
        cx=(KINECT_3072P_CX - x0 + 0.5) * sx - 0.5,
        cy=(KINECT_3072P_CY - y0 + 0.5) * sy - 0.5,
        width=width,
        height=height,
    )


@dataclass(frozen=True)
class _CaptureJob:
    root: str
    split: str
    session: int
    start: int
    stop: int
    frames_per_session: int
    size: tuple[int, int]
    fps: float
    seed: int
    distance_mm: float


def _render_capture(job: _CaptureJob) -> int:
    torch.set_num_threads(1)
    world = world_for()
    params = talking_head(
        world,
        identity_seed(job.seed, 1000 + job.session),
        job.frames_per_session,
        fps=job.fps,
        seed=job.seed + job.session,
        camera_shake=True,
        distance_mm=job.distance_mm,
    )
    camera = kinect_crop_camera(job.size)
    sensor = KinectSensorModel(seed=identity_seed(job.seed, 5000 + job.session))
    for index in range(job.start, job.stop):
        frame = world.render(params[index], camera, ("rgb", "depth", "ir", "mask"))
        sensed = sensor.apply(frame, camera=camera, frame_index=index)
        paths = unprocessed_paths(job.root, job.split, f"s{job.session:02d}_{index:06d}")
        write_image_atomic(paths["Color"], cv2.cvtColor(frame["rgb"], cv2.COLOR_RGB2BGR))
        write_image_atomic(paths["Depth"], sensed["depth"])
        write_image_atomic(paths["Infrared"], sensed["ir"])
    return job.stop - job.start


def write_unprocessed_capture(
    root: str | os.PathLike,
    *,
    num_sessions: int,
    frames_per_session: int,
    size: tuple[int, int] = (454, 380),
    seed: int = 0,
    eval_sessions: int = 1,
    workers: int = 2,
    fps: float = 15.0,
    distance_mm: float = 700.0,
    progress: bool = True,
) -> Path:
    """Write a Kinect-like unprocessed capture (see the module docstring); returns the root.

    Frame ids are `s<session:02d>_<index:06d>`; the last `eval_sessions` sessions form the eval split.
    Each session is one identity talking in front of the camera with hand-held shake.
    """
    if num_sessions < 1 or frames_per_session < 1:
        raise ValueError(f"need at least one session and one frame, got {num_sessions} x {frames_per_session}")
    if not 0 <= eval_sessions < num_sessions:
        raise ValueError(f"eval_sessions must be in [0, {num_sessions - 1}], got {eval_sessions}")
    camera = kinect_crop_camera(size)
    check_workers(workers)
    root = Path(root)
    state = begin_write(
        root,
        "rgbd-unprocessed",
        {
            "num_sessions": num_sessions, "frames_per_session": frames_per_session, "size": list(size), "seed": seed,
            "eval_sessions": eval_sessions, "fps": fps, "distance_mm": distance_mm,
        },
    )  # fmt: skip
    jobs = []
    chunk = max(4, min(32, frames_per_session))
    for session in range(num_sessions):
        split = "eval" if session >= num_sessions - eval_sessions else "train"
        for start, stop in chunks(frames_per_session, chunk):
            jobs.append(
                _CaptureJob(
                    str(root), split, session, start, stop, frames_per_session, tuple(size), fps, seed, distance_mm
                )
            )
    total = num_sessions * frames_per_session
    run_jobs(_render_capture, jobs, workers, "FaceWorld Kinect capture", total, progress, state)
    write_config(
        root / CONFIG_FILE,
        {
            "source": "faceworld",
            "width": camera.width,
            "height": camera.height,
            "fx": f"{camera.fx:.4f}",
            "fy": f"{camera.fy:.4f}",
            "cx": f"{camera.cx:.4f}",
            "cy": f"{camera.cy:.4f}",
            "depth_unit": "mm",
            "depth_registered_to": "color",
            "crop_x_y_w_h_3072p": ",".join(str(v) for v in KINECT_CROP),
            "fps": fps,
            "num_sessions": num_sessions,
            "frames_per_session": frames_per_session,
            "eval_sessions": eval_sessions,
            "split": "by_session",
            "seed": seed,
        },
    )
    state.finish()
    return root
