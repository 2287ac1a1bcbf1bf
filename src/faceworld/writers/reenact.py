"""FaceWorld reenactment pairs for DG (dual-generator large-pose reenactment), VoxCeleb-like, with the TRUE answer
of every (source, reference) pair.

Layout:

    <root>/faceworld.json                                   how the set was made
    <root>/identities.csv                                   identity,label,split (labels 0..N-1 for the identity
                                                            classifier; train identities first)
    <root>/{train,test}/                                    split BY IDENTITY (no person on both sides)
        images/<id>/<video>/<frame:06d>.png                 size x size RGB face crop (default 256)
        landmark_images/<id>/<video>/<frame:06d>.png        size x size landmark image, parallel to images/
                                                            (src.landmarks.drawing lines, white on black, 3 equal
                                                            channels; DG's own rasteriser can redraw from landmarks/)
        landmarks/<id>/<video>/<frame:06d>.txt              70 lines "x y" in crop pixels (68 iBUG + 2 pupils;
                                                            DG's landmark networks read the first 68)
        reenacted/{images,landmark_images,landmarks}/<pair:06d>.png|.txt
                                                            the TRUE reenactment of pair <pair>: the source's person
                                                            (shape, albedo, hair, light, background of the source
                                                            video) with the reference's head pose, position,
                                                            expression and gaze, seen by the reference video's camera
        pairs.csv                                           pair,source_identity,source_label,source_image,
                                                            reference_identity,reference_label,reference_image,
                                                            target_image,target_landmark_image,target_landmarks
                                                            (paths relative to the split folder)
Videos are short talking-head clips with large head motion (`pose_amplitude_deg`), frames taken every
`frame_stride` frames; each video is cropped with one fixed square box (smoothed per-frame boxes, as VoxCeleb's
face tracks). References come from a different identity of the same split whenever the split has two.
Deterministic in `seed` whatever the number of workers; every file is written atomically; progress bar.
"""

from __future__ import annotations

import csv
import io
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
    fixed_video_box,
    format_points,
    identity_name,
    identity_seed,
    identity_splits,
    rgb_to_bgr,
    run_jobs,
    transplant_motion,
    video_camera,
    world_for,
    write_json_atomic,
)
from src.geometry.camera import PinholeCamera
from src.io.atomic import write_image_atomic, write_text_atomic
from src.landmarks.drawing import draw_feature_image

KINDS = ("images", "landmark_images", "landmarks")
PAIR_COLUMNS = (
    "pair",
    "source_identity",
    "source_label",
    "source_image",
    "reference_identity",
    "reference_label",
    "reference_image",
    "target_image",
    "target_landmark_image",
    "target_landmarks",
)
META_FILE = "faceworld.json"


def video_name(video: int) -> str:
    return f"v{video:02d}"


@dataclass(frozen=True)
class _ClipSpec:
    """Everything that decides one video clip (so a worker can rebuild its parameters)."""

    identity: int
    video: int
    frames: int
    stride: int
    fps: float
    seed: int
    pose_amplitude_deg: float


def _clip_params(spec: _ClipSpec) -> list[FaceParams]:
    sequence = talking_head(
        world_for(),
        identity_seed(spec.seed, spec.identity),
        spec.frames * spec.stride,
        fps=spec.fps,
        seed=identity_seed(spec.seed, 100_000 + 100 * spec.identity + spec.video),
        pose_amplitude_deg=spec.pose_amplitude_deg,
    )
    return sequence[:: spec.stride]


def _write_sample(folder: Path, key: str, frame: dict[str, np.ndarray], size: int) -> None:
    """images / landmark_images / landmarks of one rendered frame under folder/<kind>/<key>."""
    landmarks = frame["landmarks2d"]
    write_image_atomic(folder / "images" / f"{key}.png", rgb_to_bgr(frame["rgb"]))
    lines = draw_feature_image(landmarks, size)
    write_image_atomic(folder / "landmark_images" / f"{key}.png", np.repeat(lines[..., None], 3, axis=2))
    write_text_atomic(folder / "landmarks" / f"{key}.txt", format_points(landmarks))


@dataclass(frozen=True)
class _ClipJob:
    root: str
    split: str
    spec: _ClipSpec
    camera: PinholeCamera
    start: int
    stop: int

    def run(self) -> int:
        world = world_for()
        params = _clip_params(self.spec)
        folder = Path(self.root) / self.split
        for index in range(self.start, self.stop):
            frame = world.render(params[index], self.camera, ("rgb", "landmarks"))
            key = f"{identity_name(self.spec.identity)}/{video_name(self.spec.video)}/{index:06d}"
            _write_sample(folder, key, frame, self.camera.width)
        return self.stop - self.start


@dataclass(frozen=True)
class _PairJob:
    root: str
    split: str
    pair: int
    source: tuple[_ClipSpec, int]
    reference: tuple[_ClipSpec, int]
    camera: PinholeCamera  # the reference clip's camera

    def run(self) -> int:
        world = world_for()
        source = _clip_params(self.source[0])[self.source[1]]
        reference = _clip_params(self.reference[0])[self.reference[1]]
        frame = world.render(transplant_motion(source, reference), self.camera, ("rgb", "landmarks"))
        _write_sample(Path(self.root) / self.split / "reenacted", f"{self.pair:06d}", frame, self.camera.width)
        return 1


def _execute(job: _ClipJob | _PairJob) -> int:
    torch.set_num_threads(1)
    return job.run()


def _image_key(spec: _ClipSpec, frame: int) -> str:
    return f"images/{identity_name(spec.identity)}/{video_name(spec.video)}/{frame:06d}.png"


def write_reenactment_dataset(
    root: str | os.PathLike,
    *,
    num_identities: int,
    videos_per_identity: int = 2,
    frames_per_video: int = 8,
    pairs_per_identity: int = 4,
    test_identities: int = 1,
    size: int = 256,
    frame_stride: int = 5,
    pose_amplitude_deg: float = 30.0,
    box_scale: float = 1.5,
    fps: float = 25.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write DG reenactment data with true targets (see the module docstring); returns the root."""
    splits = identity_splits(num_identities, test_identities)
    if videos_per_identity < 1 or frames_per_video < 1:
        raise ValueError(f"need at least one video and one frame, got {videos_per_identity} x {frames_per_video}")
    if pairs_per_identity < 0:
        raise ValueError(f"pairs_per_identity must be >= 0, got {pairs_per_identity}")
    if size < 16 or frame_stride < 1:
        raise ValueError(f"size must be >= 16 and frame_stride >= 1, got {size}, {frame_stride}")
    if not 0.0 <= pose_amplitude_deg <= 40.0:
        raise ValueError(f"pose_amplitude_deg must be in [0, 40], got {pose_amplitude_deg}")
    check_workers(workers)
    root = Path(root)
    state = begin_write(
        root,
        "dg",
        {
            "num_identities": num_identities, "videos_per_identity": videos_per_identity,
            "frames_per_video": frames_per_video, "pairs_per_identity": pairs_per_identity,
            "test_identities": test_identities, "size": size, "frame_stride": frame_stride,
            "pose_amplitude_deg": pose_amplitude_deg, "box_scale": box_scale, "fps": fps, "seed": seed,
        },
    )  # fmt: skip
    world = world_for()
    full = video_camera()
    order = [k for k in range(num_identities) if splits[k] == "train"] + [
        k for k in range(num_identities) if splits[k] == "test"
    ]
    labels = {identity: label for label, identity in enumerate(order)}

    clips: dict[tuple[int, int], tuple[_ClipSpec, PinholeCamera]] = {}
    jobs: list[_ClipJob | _PairJob] = []
    for identity in range(num_identities):
        for video in range(videos_per_identity):
            spec = _ClipSpec(identity, video, frames_per_video, frame_stride, fps, seed, pose_amplitude_deg)
            params = _clip_params(spec)
            camera = crop_camera(full, *fixed_video_box(world, params, full, box_scale), size)
            clips[identity, video] = (spec, camera)
            for start, stop in chunks(frames_per_video, max(4, min(16, frames_per_video))):
                jobs.append(_ClipJob(str(root), splits[identity], spec, camera, start, stop))

    rng = np.random.default_rng([int(seed), 31337])
    rows: dict[str, list[dict[str, object]]] = {"train": [], "test": []}
    for split in ("train", "test"):
        members = [k for k in range(num_identities) if splits[k] == split]
        for source_id in members:
            others = [k for k in members if k != source_id] or [source_id]
            for _ in range(pairs_per_identity):
                reference_id = int(others[rng.integers(len(others))])
                source_spec, _ = clips[source_id, int(rng.integers(videos_per_identity))]
                reference_spec, reference_camera = clips[reference_id, int(rng.integers(videos_per_identity))]
                source_frame, reference_frame = (int(v) for v in rng.integers(frames_per_video, size=2))
                pair = len(rows[split])
                jobs.append(
                    _PairJob(
                        str(root),
                        split,
                        pair,
                        (source_spec, source_frame),
                        (reference_spec, reference_frame),
                        reference_camera,
                    )
                )
                rows[split].append(
                    {
                        "pair": pair,
                        "source_identity": identity_name(source_id),
                        "source_label": labels[source_id],
                        "source_image": _image_key(source_spec, source_frame),
                        "reference_identity": identity_name(reference_id),
                        "reference_label": labels[reference_id],
                        "reference_image": _image_key(reference_spec, reference_frame),
                        "target_image": f"reenacted/images/{pair:06d}.png",
                        "target_landmark_image": f"reenacted/landmark_images/{pair:06d}.png",
                        "target_landmarks": f"reenacted/landmarks/{pair:06d}.txt",
                    }
                )
    total = num_identities * videos_per_identity * frames_per_video + sum(len(r) for r in rows.values())
    run_jobs(_execute, jobs, workers, "FaceWorld DG pairs", total, progress, state)

    for split, split_rows in rows.items():
        if any(s == split for s in splits):
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=PAIR_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(split_rows)
            write_text_atomic(root / split / "pairs.csv", text.getvalue())
    identity_rows = "".join(f"{identity_name(k)},{labels[k]},{splits[k]}\n" for k in order)
    write_text_atomic(root / "identities.csv", "identity,label,split\n" + identity_rows)
    write_json_atomic(
        root / META_FILE,
        {
            "layout": "dg_reenactment",
            "settings": state.settings,
            "source": "faceworld",
            "seed": seed,
            "size": size,
            "num_identities": num_identities,
            "test_identities": test_identities,
            "videos_per_identity": videos_per_identity,
            "frames_per_video": frames_per_video,
            "frame_stride": frame_stride,
            "fps": fps,
            "pose_amplitude_deg": pose_amplitude_deg,
            "pairs_per_identity": pairs_per_identity,
            "box_scale": box_scale,
            "landmarks": "70 x 2 (68 iBUG + pupils), crop pixels",
            "target": "source person (shape, appearance, light, background) with the reference's pose, position, "
            "expression and gaze, through the reference clip's camera",
        },
    )
    state.finish()
    return root
