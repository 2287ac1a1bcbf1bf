"""FaceWorld data for DG (dual-generator large-pose reenactment) in the ORIGINAL project's on-disk layout, with the
TRUE answer of every (source, reference) pair.

Layout (the original's RaFD / VoxCeleb conventions, read from AvLab-CV/Dual_Generator_Face_Reenactment; see
../shared/reference/dg-reenactment.md), `<p>` = `prefix` (default faceworld), `<s>` = `size` (default 256):

    <root>/<p>_crop_<s>/<person>/<video>/<frame>.jpg     size x size RGB face crop, one square box per image
    <root>/<p>_LM_<s>/<person>/<video>/<frame>.jpg       its landmark image: the crop path with `_crop_` swapped
                                                         for `_LM_` (src.landmarks.drawing.draw_dg_landmarks)
    <root>/<p>_csv_<s>/<person>/<video>/<frame>.csv      its landmarks: header line, ONE data row; columns 0-2 are
                                                         frame, face_id, yaw_deg, columns 3.. the 136 values
                                                         x_0, y_0, ..., x_67, y_67 in crop pixels (the original
                                                         reads row 0, columns 3: and divides by 256)
    <root>/<p>_csv3d_<s>/<person>/<video>/<frame>.csv    the same with x_i, y_i, z_i (204 values; z in pixels of
                                                         the crop, positive away from the camera): 3D landmarks
    <root>/<p>_truth_{crop,LM,csv,csv3d}_<s>/<person>/<pair>.jpg|.csv
                                                         the TRUE reenactment of pair <pair> (global number): the
                                                         source person (shape, albedo, hair, light, background)
                                                         with the reference's head pose, position, expression and
                                                         gaze, in the reference image's crop
    <root>/train_list.txt, test_list.txt                 one pair per line, single spaces, no header, paths
                                                         relative to <root> (absolute_paths=True: absolute, as
                                                         the original's lists; relative ones keep the dataset
                                                         movable and byte-identical wherever it is written; the
                                                         datamodule reads both) (core_IDSG RaFD order):
                                                         csv1 csv2 csv3 csv4 id1 id3
                                                         csv1, csv2: two images of person id1 (a same-identity
                                                         pair: IDSG's cycle loss rebuilds csv2 from img1);
                                                         csv3: the source, person id3 != id1; csv4: the truth
                                                         (person id3 with csv2's pose and expression)
    <root>/rfg_train_list.txt, rfg_test_list.txt         the RFG list (core/data_loader_lm_perceptual.py, RaFD):
                                                         lm src tgt = truth landmark image, source crop, truth crop
    <root>/faceworld.json                                how the set was made

<person> folders are numbers, `int(folder) - 1` is the identity label (the original's MPIE rule); id1 / id3 in the
lists are those labels. Training identities come first (labels 0 .. N_train - 1: what the identity classifier
sees); the last `test_identities` are held out and appear only in the test lists. Yaw of every image is drawn
uniformly in [-max_yaw_deg, max_yaw_deg] (expressions and the rest of the motion from a talking-head track).
Deterministic in `seed` whatever the number of workers; every file is written atomically; resumable.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from src.faceworld.params import FaceParams
from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import (
    begin_write,
    check_workers,
    chunks,
    crop_camera,
    identity_seed,
    identity_splits,
    landmark_box,
    rgb_to_bgr,
    run_jobs,
    transplant_motion,
    video_camera,
    world_for,
    write_json_atomic,
)
from src.geometry.camera import PinholeCamera
from src.io.atomic import write_bytes_atomic, write_text_atomic
from src.landmarks.drawing import draw_dg_landmarks

META_FILE = "faceworld.json"
LEADING_COLUMNS = ("frame", "face_id", "yaw_deg")
NUM_POINTS = 68
IMAGE_EXT = ".jpg"
JPEG_QUALITY = 95
KINDS = ("crop", "LM", "csv", "csv3d")


def folder_name(prefix: str, kind: str, size: int, truth: bool = False) -> str:
    """`<prefix>[_truth]_<kind>_<size>`: the parallel folders (the original swaps `_crop_` for `_LM_` / `_csv_`)."""
    return f"{prefix}{'_truth' if truth else ''}_{kind}_{size}"


def person_folder(label: int) -> str:
    """Numeric identity folder: `int(folder) - 1` is the label, as the original parses MPIE paths."""
    return f"{label + 1:03d}"


def csv_text(points: np.ndarray, frame: int, yaw_deg: float) -> str:
    """The landmark CSV the original reads with pandas: a header, one row, 3 leading columns, then coordinates."""
    pts = np.asarray(points, dtype=np.float64)
    dims = pts.shape[1]
    axes = "xyz"[:dims]
    header = list(LEADING_COLUMNS) + [f"{axis}_{i}" for i in range(len(pts)) for axis in axes]
    values = [str(int(frame)), "0", f"{yaw_deg:.3f}"] + [f"{v:.4f}" for v in pts.reshape(-1)]
    return ",".join(header) + "\n" + ",".join(values) + "\n"


def _write_jpeg(path: Path, image_rgb: np.ndarray) -> None:
    """JPEG as the original's crops (its CSV -> image rule ends in .jpg), quality 95, written atomically."""
    ok, buffer = cv2.imencode(IMAGE_EXT, rgb_to_bgr(image_rgb), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    write_bytes_atomic(path, buffer.tobytes())


def crop_box(points2d: np.ndarray, scale: float, raise_fraction: float = 0.08) -> tuple[float, float, float]:
    """Square (x0, y0, side) around 68 landmarks, enlarged by `scale`, moved up to keep the forehead (per image, as
    RaFD / MPIE crops are aligned per image)."""
    box = landmark_box(points2d)
    lo, hi = box[:2], box[2:]
    side = float(scale * max(hi - lo))
    centre = 0.5 * (lo + hi) - np.array([0.0, raise_fraction * side])
    return float(centre[0] - side / 2), float(centre[1] - side / 2), side


def landmarks_with_depth(frame: dict[str, np.ndarray], camera: PinholeCamera) -> np.ndarray:
    """(68, 3): crop-pixel x, y and a depth z in the same pixel units (camera depth minus its mean, times fx / mean)."""
    xy = frame["landmarks2d"][:NUM_POINTS].astype(np.float64)
    depth = frame["landmarks3d"][:NUM_POINTS, 2].astype(np.float64)
    mean = float(depth.mean())
    return np.concatenate([xy, ((depth - mean) * camera.fx / mean)[:, None]], axis=1)


@dataclass(frozen=True)
class _PersonSpec:
    """Everything that decides one identity's images (so a worker can rebuild its parameters)."""

    identity: int
    videos: int
    frames: int
    seed: int
    max_yaw_deg: float
    box_scale: float
    frame_stride: int
    pose_amplitude_deg: float


@functools.lru_cache(maxsize=2048)
def person_params(spec: _PersonSpec) -> list[list[FaceParams]]:
    """[video][frame] FaceParams: a talking-head track (expression, gaze, position) with yaw drawn uniformly.
    Cached per process: every true target needs two people's tracks, and a track costs ten renders."""
    world = world_for()
    videos = []
    for video in range(spec.videos):
        track = talking_head(
            world,
            identity_seed(spec.seed, spec.identity),
            spec.frames * spec.frame_stride,
            fps=25.0,
            seed=identity_seed(spec.seed, 200_000 + 100 * spec.identity + video),
            pose_amplitude_deg=spec.pose_amplitude_deg,
        )[:: spec.frame_stride]
        rng = np.random.default_rng([int(spec.seed), int(spec.identity), int(video), 6060])
        yaws = rng.uniform(-spec.max_yaw_deg, spec.max_yaw_deg, spec.frames)
        videos.append([p.replace(yaw=float(y)) for p, y in zip(track, yaws)])
    return videos


def frame_camera(params: FaceParams, size: int, box_scale: float) -> PinholeCamera:
    full = video_camera()
    points = full.project(world_for().landmarks3d(params))
    return crop_camera(full, *crop_box(points, box_scale), size)


def _write_sample(root: Path, prefix: str, size: int, truth: bool, key: str, frame, camera, index: int, yaw: float):
    """crop / LM / csv / csv3d files of one rendered image at `<folder>/<key>.<ext>`."""
    points = landmarks_with_depth(frame, camera)
    _write_jpeg(root / folder_name(prefix, "crop", size, truth) / f"{key}{IMAGE_EXT}", frame["rgb"])
    drawing = draw_dg_landmarks(points[:, :2], size)
    _write_jpeg(
        root / folder_name(prefix, "LM", size, truth) / f"{key}{IMAGE_EXT}", np.repeat(drawing[..., None], 3, 2)
    )
    write_text_atomic(
        root / folder_name(prefix, "csv", size, truth) / f"{key}.csv", csv_text(points[:, :2], index, yaw)
    )
    write_text_atomic(root / folder_name(prefix, "csv3d", size, truth) / f"{key}.csv", csv_text(points, index, yaw))


@dataclass(frozen=True)
class _ImageJob:
    root: str
    prefix: str
    size: int
    label: int
    spec: _PersonSpec
    video: int
    start: int
    stop: int

    def run(self) -> int:
        params = person_params(self.spec)[self.video]
        for index in range(self.start, self.stop):
            camera = frame_camera(params[index], self.size, self.spec.box_scale)
            frame = world_for().render(params[index], camera, ("rgb", "landmarks"))
            key = f"{person_folder(self.label)}/{self.video:02d}/{index:06d}"
            _write_sample(Path(self.root), self.prefix, self.size, False, key, frame, camera, index, params[index].yaw)
        return self.stop - self.start


@dataclass(frozen=True)
class _TruthJob:
    root: str
    prefix: str
    size: int
    pair: int
    source: tuple[_PersonSpec, int, int, int]  # spec, label, video, frame
    reference: tuple[_PersonSpec, int, int]  # spec, video, frame

    def run(self) -> int:
        source_spec, label, video, frame_index = self.source
        source = person_params(source_spec)[video][frame_index]
        reference_spec, reference_video, reference_frame = self.reference
        reference = person_params(reference_spec)[reference_video][reference_frame]
        camera = frame_camera(reference, self.size, reference_spec.box_scale)
        frame = world_for().render(transplant_motion(source, reference), camera, ("rgb", "landmarks"))
        key = f"{person_folder(label)}/{self.pair:06d}"
        _write_sample(Path(self.root), self.prefix, self.size, True, key, frame, camera, self.pair, reference.yaw)
        return 1


def _execute(job: _ImageJob | _TruthJob) -> int:
    torch.set_num_threads(1)
    return job.run()


def write_reenactment_dataset(
    root: str | os.PathLike,
    *,
    num_identities: int,
    videos_per_identity: int = 2,
    frames_per_video: int = 8,
    pairs_per_identity: int = 4,
    test_identities: int = 1,
    size: int = 256,
    max_yaw_deg: float = 60.0,
    box_scale: float = 1.5,
    frame_stride: int = 5,
    pose_amplitude_deg: float = 20.0,
    prefix: str = "faceworld",
    absolute_paths: bool = False,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write DG data in the original's layout with true targets (see the module docstring); returns the root."""
    splits = identity_splits(num_identities, test_identities)
    if videos_per_identity < 1 or frames_per_video < 1 or videos_per_identity * frames_per_video < 2:
        raise ValueError(
            f"need at least two images per identity (videos_per_identity x frames_per_video), "
            f"got {videos_per_identity} x {frames_per_video}"
        )
    if pairs_per_identity < 1:
        raise ValueError(f"pairs_per_identity must be >= 1, got {pairs_per_identity}")
    if size < 16 or frame_stride < 1:
        raise ValueError(f"size must be >= 16 and frame_stride >= 1, got {size}, {frame_stride}")
    if not 0.0 <= pose_amplitude_deg <= 40.0:
        raise ValueError(f"pose_amplitude_deg must be in [0, 40], got {pose_amplitude_deg}")
    if not 0.0 <= max_yaw_deg <= 75.0:
        raise ValueError(f"max_yaw_deg must be in [0, 75], got {max_yaw_deg}")
    if not prefix.isidentifier() or "crop" in prefix or "csv" in prefix or "LM" in prefix:
        raise ValueError(f"prefix must be a plain name without crop / csv / LM, got {prefix!r}")
    check_workers(workers)
    root = Path(root)
    state = begin_write(
        root,
        "dg",
        {
            "num_identities": num_identities, "videos_per_identity": videos_per_identity,
            "frames_per_video": frames_per_video, "pairs_per_identity": pairs_per_identity,
            "test_identities": test_identities, "size": size, "max_yaw_deg": max_yaw_deg, "box_scale": box_scale,
            "frame_stride": frame_stride, "pose_amplitude_deg": pose_amplitude_deg, "prefix": prefix,
            "absolute_paths": absolute_paths, "seed": seed,
        },
    )  # fmt: skip
    order = [k for k in range(num_identities) if splits[k] == "train"] + [
        k for k in range(num_identities) if splits[k] == "test"
    ]
    labels = {identity: label for label, identity in enumerate(order)}
    specs = {
        k: _PersonSpec(
            k, videos_per_identity, frames_per_video, seed, max_yaw_deg, box_scale, frame_stride, pose_amplitude_deg
        )
        for k in range(num_identities)
    }
    jobs: list[_ImageJob | _TruthJob] = []
    for identity in order:
        for video in range(videos_per_identity):
            for start, stop in chunks(frames_per_video, 8):
                jobs.append(_ImageJob(str(root), prefix, size, labels[identity], specs[identity], video, start, stop))

    def path_of(kind: str, key: str, truth: bool = False) -> str:
        ext = ".csv" if kind.startswith("csv") else IMAGE_EXT
        relative = Path(folder_name(prefix, kind, size, truth)) / f"{key}{ext}"
        return str((root / relative).absolute() if absolute_paths else relative)

    rng = np.random.default_rng([int(seed), 6161])
    images = [(v, f) for v in range(videos_per_identity) for f in range(frames_per_video)]
    lines: dict[str, list[str]] = {"train": [], "test": []}
    rfg_lines: dict[str, list[str]] = {"train": [], "test": []}
    pair = 0
    for split in ("train", "test"):
        members = [k for k in order if splits[k] == split]
        for person in members:
            # A split of one person can only pair it with itself (the truth is then its own reference image).
            others = [k for k in members if k != person] or [person]
            for _ in range(pairs_per_identity):
                first, second = rng.choice(len(images), size=2, replace=False)
                (v1, f1), (v2, f2) = images[int(first)], images[int(second)]
                other = int(others[rng.integers(len(others))])
                v3, f3 = images[int(rng.integers(len(images)))]
                key1 = f"{person_folder(labels[person])}/{v1:02d}/{f1:06d}"
                key2 = f"{person_folder(labels[person])}/{v2:02d}/{f2:06d}"
                key3 = f"{person_folder(labels[other])}/{v3:02d}/{f3:06d}"
                key4 = f"{person_folder(labels[other])}/{pair:06d}"
                jobs.append(
                    _TruthJob(
                        str(root), prefix, size, pair, (specs[other], labels[other], v3, f3), (specs[person], v2, f2)
                    )
                )
                csvs = [path_of("csv", key1), path_of("csv", key2), path_of("csv", key3), path_of("csv", key4, True)]
                lines[split].append(" ".join([*csvs, str(labels[person]), str(labels[other])]))
                rfg_lines[split].append(
                    " ".join([path_of("LM", key4, True), path_of("crop", key3), path_of("crop", key4, True)])
                )
                pair += 1
    total = num_identities * videos_per_identity * frames_per_video + pair
    run_jobs(_execute, jobs, workers, "FaceWorld DG images and true targets", total, progress, state)

    for split in ("train", "test"):
        if lines[split]:
            write_text_atomic(root / f"{split}_list.txt", "".join(line + "\n" for line in lines[split]))
            write_text_atomic(root / f"rfg_{split}_list.txt", "".join(line + "\n" for line in rfg_lines[split]))
    write_json_atomic(
        root / META_FILE,
        {
            "layout": "dg_reenactment",
            "settings": state.settings,
            "source": "faceworld",
            "prefix": prefix,
            "size": size,
            "train_identities": splits.count("train"),
            "test_identities": test_identities,
            "labels": {f"faceworld_identity_{k}": labels[k] for k in order},
            "landmarks": "68 iBUG points, crop pixels; csv3d adds z in the same pixel units",
            "lists": "csv1 csv2 csv3 csv4 id1 id3 (RaFD order of core_IDSG); rfg lists: lm src tgt",
            "target": "source person (shape, appearance, light, background) with the reference's pose, position, "
            "expression and gaze, in the reference image's crop",
        },
    )
    state.finish()
    return root
