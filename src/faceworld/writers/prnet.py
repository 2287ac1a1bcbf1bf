"""FaceWorld image / UV-position-map pairs for PRNet, and video pairs with the TRUE texture transfer for faces2one.

PRNet layout (the convention PRNet's users train with: 300W-LP crops made by face3d's position-map generator, one
image and one .npy per sample, PRNet's Data/uv-data files beside; split BY IDENTITY):

    <root>/faceworld.json                       sizes, z convention, crop rule, splits
    <root>/uv-data/uv_face_mask.png             PRNet's UV files (src/models/components/prnet_uv.py): face mask,
    <root>/uv-data/uv_weight_mask.png           loss weight mask (255 keypoints : 64 eyes-nose-mouth : 48 face :
    <root>/uv-data/uv_kpt_ind.txt               0 outside), 68 keypoint texels (2 x 68: columns, then rows),
    <root>/uv-data/face_ind.txt                 flat face-texel indices, triangles into that vertex list
    <root>/uv-data/triangles.txt
    <root>/trainDataLabel.txt                   the fork's list format `<image> <npy>` per line (paths relative to
    <root>/testDataLabel.txt                    the list's folder: the dataset can move)
    <root>/{train,test}/<id>/<sample:06d>.jpg   size x size face crop (RGB, JPEG as 300W-LP), default 256
    <root>/{train,test}/<id>/<sample:06d>.npy   (P, P, 3) float32 position map (P = size): x, y in crop pixels; z in
                                                crop pixels towards the camera, shifted so its minimum over the face
                                                mask is 0 (PRNet's training maps; its network outputs values in
                                                [0, 1.1 * 256]); 0 outside the face mask
    <root>/{train,test}/<id>/<sample:06d>.json  FaceParams record + crop camera + pose (re-render, evaluate by yaw)
    <root>/previews/{train,test}/<id>/<sample:06d>_posmap.jpg   visualisation: position / (1.1 * size) as RGB, in
                                                its own tree so a `*.jpg` / `*.png` glob of a sample folder finds
                                                only the images (`previews=False` writes none)
Crops follow PRNet's box rule on the 68 landmarks of a webcam-like 1280x720 frame: the square of side 1.58 x the
mean of the box's width and height around the box centre, raised by 0.1 x side (the landmark box stops at the
brows; without the raise ~10% of the UV face region's forehead falls above the crop). Like face3d's 300W-LP
generator, each training crop is jittered (`crop_jitter`, default 0.1: centre shifted by up to 10% of the box size,
side scaled by U(0.9, 1.1)), so a network learns crops that a tracker or detector will not centre exactly.

faces2one layout (identity A's texture onto identity B's video; pairs (A, B) = (k, k + 1 mod N) over all
identities, each identity's split recorded in faceworld.json):

    <root>/faces2one/<A>_<B>/
        source/<frame:06d>.png                  video of A (the texture donor), size x size
        reference/<frame:06d>.png               video of B (pose, expression, background and lighting kept)
        transfer/<frame:06d>.png                TRUE result: inside B's face region, B's geometry rendered with
                                                A's albedo under B's light; B's frame elsewhere
        face_mask/<frame:06d>.png               255 on B's face region (the UV face mask's image in the frame)
        source_posmap/<frame:06d>.npy           true position maps of both videos in frame pixels (z as above)
        reference_posmap/<frame:06d>.npy
The transfer is rendered with FaceWorld.render(B, ..., appearance=A): A's albedo on B's geometry, hair volume
included, so the transfer's face region, landmarks and depth are exactly B's.
Each video is framed by one fixed square box (smoothed per-frame boxes, larger margin than a face crop).
Deterministic in `seed` whatever the number of workers; every file is written atomically; progress bar.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from src.faceworld.params import FaceParams
from src.faceworld.sequences import talking_head
from src.faceworld.world import FaceWorld
from src.faceworld.writers.common import (
    begin_write,
    check_workers,
    chunks,
    crop_camera,
    fixed_video_box,
    identity_name,
    identity_seed,
    identity_splits,
    landmark_box,
    rgb_to_bgr,
    run_jobs,
    video_camera,
    world_for,
    write_json_atomic,
)
from src.geometry.camera import PinholeCamera
from src.geometry.regions import position_map_footprint
from src.io.atomic import atomic_path, write_image_atomic, write_text_atomic
from src.models.components.prnet_crop import CROP_RAISE, CROP_SCALE, prnet_crop_box
from src.models.components.prnet_uv import build_uv_data, write_uv_data

MAX_POS_FACTOR = 1.1
META_FILE = "faceworld.json"
VIDEO_BOX_SCALE = 2.2
IMAGE_SUFFIX = ".jpg"
UV_DATA_FOLDER = "uv-data"
PREVIEW_FOLDER = "previews"
LIST_FILES = {"train": "trainDataLabel.txt", "test": "testDataLabel.txt"}


def params_record(params: FaceParams) -> dict:
    """A JSON-able record of FaceParams (FaceParams(**params_from_record(r)) rebuilds it)."""
    record = {}
    for key, value in asdict(params).items():
        record[key] = value.tolist() if isinstance(value, np.ndarray) else value
    if isinstance(params.background, tuple):
        record["background"] = list(params.background)
    return record


def params_from_record(record: dict) -> FaceParams:
    values = dict(record)
    if isinstance(values.get("background"), list):
        values["background"] = tuple(values["background"])
    return FaceParams(**values)


def camera_record(camera: PinholeCamera) -> dict:
    return {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy, "size": camera.width}


def prnet_crop_camera(
    world: FaceWorld,
    params: FaceParams,
    full: PinholeCamera,
    size: int,
    jitter: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> PinholeCamera:
    """The camera of PRNet's crop (src.models.components.prnet_crop) of the frame `full` sees, at size x size."""
    x0, y0, side = prnet_crop_box(landmark_box(full.project(world.landmarks3d(params))), jitter)
    return crop_camera(full, x0, y0, side, size)


def crop_jitter_draw(seed: int, amount: float) -> tuple[float, float, float]:
    """face3d's 300W-LP augmentation: shift U(-a, a) x box size on each axis, scale U(1 - a, 1 + a)."""
    rng = np.random.default_rng([int(seed), 7])
    dx, dy, scale = rng.uniform(-amount, amount, 3)
    return float(dx), float(dy), float(1.0 + scale)


def prnet_position_map(position_map: np.ndarray, uv_mask: np.ndarray) -> np.ndarray:
    """FaceWorld's position map with z shifted so its minimum over the face mask is 0 (PRNet's convention)."""
    out = position_map.astype(np.float32).copy()
    out[..., 2] -= out[..., 2][uv_mask].min()
    out[~uv_mask] = 0.0
    return out


def position_map_image(position_map: np.ndarray, size: int) -> np.ndarray:
    """(P,P,3) uint8 RGB visualisation: position / (1.1 * size) clipped to [0, 1]."""
    return np.round(np.clip(position_map / (MAX_POS_FACTOR * size), 0.0, 1.0) * 255.0).astype(np.uint8)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def _sample_seed(seed: int, identity: int, sample: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(identity), int(sample), 2]).generate_state(1)[0])


@dataclass(frozen=True)
class _PairJob:
    """PRNet (image, position map) samples [start, stop) of one identity."""

    root: str
    split: str
    identity: int
    start: int
    stop: int
    size: int
    seed: int
    pose_range_deg: float
    crop_jitter: float
    previews: bool

    def run(self) -> int:
        world = world_for(256, self.size)
        uv_mask = world.uv_face_mask()
        full = video_camera()
        relative = Path(self.split) / identity_name(self.identity)
        folder = Path(self.root) / relative
        for sample in range(self.start, self.stop):
            sample_seed = _sample_seed(self.seed, self.identity, sample)
            params = world.sample_params(
                sample_seed, identity_seed=identity_seed(self.seed, self.identity), pose_range_deg=self.pose_range_deg
            )
            jitter = crop_jitter_draw(sample_seed, self.crop_jitter)
            camera = prnet_crop_camera(world, params, full, self.size, jitter)
            out = world.render(params, camera, ("rgb", "position_map"))
            pos = prnet_position_map(out["position_map"], uv_mask)
            stem = f"{sample:06d}"
            write_image_atomic(folder / f"{stem}{IMAGE_SUFFIX}", rgb_to_bgr(out["rgb"]))
            _save_npy(folder / f"{stem}.npy", pos)
            if self.previews:
                preview = Path(self.root) / PREVIEW_FOLDER / relative / f"{stem}_posmap.jpg"
                write_image_atomic(preview, rgb_to_bgr(position_map_image(pos, self.size)))
            record = {
                "params": params_record(params),
                "camera": camera_record(camera),
                "pose_deg": {"yaw": float(params.yaw), "pitch": float(params.pitch), "roll": float(params.roll)},
                "crop_jitter": list(jitter),
            }
            write_json_atomic(folder / f"{stem}.json", record)
        return self.stop - self.start


@dataclass(frozen=True)
class _TransferJob:
    """Frames [start, stop) of one faces2one pair (A's texture on B's video)."""

    root: str
    donor: int  # A
    target: int  # B
    frames: int
    start: int
    stop: int
    fps: float
    seed: int
    donor_camera: PinholeCamera
    target_camera: PinholeCamera
    posmaps: bool

    def run(self) -> int:
        world = world_for(256, self.donor_camera.width)
        uv_mask = world.uv_face_mask()
        donor = _transfer_video(world, self.donor, self.frames, self.fps, self.seed)
        target = _transfer_video(world, self.target, self.frames, self.fps, self.seed)
        folder = Path(self.root) / "faces2one" / f"{identity_name(self.donor)}_{identity_name(self.target)}"
        size = self.target_camera.width
        for index in range(self.start, self.stop):
            stem = f"{index:06d}"
            source = world.render(donor[index], self.donor_camera, ("rgb", "position_map"))
            reference = world.render(target[index], self.target_camera, ("rgb", "position_map"))
            swapped = world.render(target[index], self.target_camera, ("rgb",), appearance=donor[index])
            region = position_map_footprint(reference["position_map"], uv_mask, size, size)
            transfer = np.where(region[..., None], swapped["rgb"], reference["rgb"])
            write_image_atomic(folder / "source" / f"{stem}.png", rgb_to_bgr(source["rgb"]))
            write_image_atomic(folder / "reference" / f"{stem}.png", rgb_to_bgr(reference["rgb"]))
            write_image_atomic(folder / "transfer" / f"{stem}.png", rgb_to_bgr(transfer))
            write_image_atomic(folder / "face_mask" / f"{stem}.png", region.astype(np.uint8) * 255)
            if self.posmaps:
                _save_npy(folder / "source_posmap" / f"{stem}.npy", prnet_position_map(source["position_map"], uv_mask))
                _save_npy(
                    folder / "reference_posmap" / f"{stem}.npy", prnet_position_map(reference["position_map"], uv_mask)
                )
        return self.stop - self.start


def _transfer_video(world: FaceWorld, identity: int, frames: int, fps: float, seed: int) -> list[FaceParams]:
    """A talking-head video of one identity (the same person as in the other layouts for this seed)."""
    return talking_head(world, identity_seed(seed, identity), frames, fps=fps, seed=seed + 1)


def _execute(job: _PairJob | _TransferJob) -> int:
    torch.set_num_threads(1)
    return job.run()


def write_prnet_dataset(
    root: str | os.PathLike,
    *,
    num_identities: int,
    images_per_identity: int = 8,
    test_identities: int = 1,
    size: int = 256,
    pose_range_deg: float = 30.0,
    crop_jitter: float = 0.1,
    previews: bool = True,
    transfer_pairs: int = 0,
    transfer_frames: int = 8,
    transfer_posmaps: bool = True,
    fps: float = 25.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write PRNet pairs and (optionally) faces2one video pairs (see the module docstring); returns the root."""
    splits = identity_splits(num_identities, test_identities)
    if images_per_identity < 1:
        raise ValueError(f"images_per_identity must be >= 1, got {images_per_identity}")
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    if not 0.0 <= pose_range_deg <= 60.0:
        raise ValueError(f"pose_range_deg must be in [0, 60], got {pose_range_deg}")
    if not 0.0 <= crop_jitter <= 0.3:
        raise ValueError(f"crop_jitter must be in [0, 0.3], got {crop_jitter}")
    max_pairs = num_identities if num_identities > 1 else 0
    if not 0 <= transfer_pairs <= max_pairs:
        raise ValueError(f"transfer_pairs must be in [0, {max_pairs}], got {transfer_pairs}")
    if transfer_pairs and transfer_frames < 1:
        raise ValueError(f"transfer_frames must be >= 1, got {transfer_frames}")
    check_workers(workers)
    root = Path(root)
    state = begin_write(
        root,
        "prnet",
        {
            "num_identities": num_identities, "images_per_identity": images_per_identity,
            "test_identities": test_identities, "size": size, "pose_range_deg": pose_range_deg,
            "crop_jitter": crop_jitter, "previews": previews,
            "transfer_pairs": transfer_pairs, "transfer_frames": transfer_frames,
            "transfer_posmaps": transfer_posmaps, "fps": fps, "seed": seed,
        },
    )  # fmt: skip
    world = world_for(256, size)
    jobs: list[_PairJob | _TransferJob] = []
    for identity in range(num_identities):
        for start, stop in chunks(images_per_identity, max(4, min(16, images_per_identity))):
            jobs.append(
                _PairJob(
                    str(root), splits[identity], identity, start, stop, size, seed, pose_range_deg, crop_jitter,
                    previews,
                )
            )  # fmt: skip
    full = video_camera()
    video_cameras = {}
    pairs = [(k, (k + 1) % num_identities) for k in range(transfer_pairs)]
    for identity in sorted({k for pair in pairs for k in pair}):
        params = _transfer_video(world, identity, transfer_frames, fps, seed)
        video_cameras[identity] = crop_camera(full, *fixed_video_box(world, params, full, VIDEO_BOX_SCALE), size)
    for donor, target in pairs:
        for start, stop in chunks(transfer_frames, max(4, min(16, transfer_frames))):
            jobs.append(
                _TransferJob(
                    str(root), donor, target, transfer_frames, start, stop, fps, seed,
                    video_cameras[donor], video_cameras[target], transfer_posmaps,
                )
            )  # fmt: skip
    total = num_identities * images_per_identity + len(pairs) * transfer_frames
    run_jobs(_execute, jobs, workers, "FaceWorld PRNet / faces2one", total, progress, state)

    uv_mask = world.uv_face_mask()
    write_uv_data(root / UV_DATA_FOLDER, build_uv_data(uv_mask, world.uv_keypoint_indices()))
    for split, list_name in LIST_FILES.items():
        lines = [
            f"{split}/{identity_name(k)}/{n:06d}{IMAGE_SUFFIX} {split}/{identity_name(k)}/{n:06d}.npy\n"
            for k in range(num_identities)
            if splits[k] == split
            for n in range(images_per_identity)
        ]
        write_text_atomic(root / list_name, "".join(lines))
    write_json_atomic(
        root / META_FILE,
        {
            "layout": "prnet",
            "settings": state.settings,
            "source": "faceworld",
            "seed": seed,
            "size": size,
            "position_map_size": size,
            "num_identities": num_identities,
            "test_identities": test_identities,
            "identity_splits": {identity_name(k): s for k, s in enumerate(splits)},
            "images_per_identity": images_per_identity,
            "pose_range_deg": pose_range_deg,
            "crop": f"square of side {CROP_SCALE} x mean(68-landmark box width, height) around its centre, "
            f"raised by {CROP_RAISE} x side; jitter {crop_jitter} (shift x box size, side x U(1 -+ jitter))",
            "image_suffix": IMAGE_SUFFIX,
            "uv_data": UV_DATA_FOLDER,
            "lists": dict(LIST_FILES),
            "position_map": "x, y crop pixels; z crop pixels towards the camera, min over the face mask = 0",
            "max_pos": MAX_POS_FACTOR * size,
            "uv_box_u0_u1_v0_v1": list(world.prnet_uv_box()),
            "uv_face_mask_texels": int(uv_mask.sum()),
            "faces2one_pairs": [f"{identity_name(a)}_{identity_name(b)}" for a, b in pairs],
            "faces2one_frames": transfer_frames if pairs else 0,
            "faces2one_truth": "B's geometry (hair volume included), pose, light, background with A's albedo "
            "inside B's face region",
            "fps": fps,
        },
    )
    state.finish()
    return root
