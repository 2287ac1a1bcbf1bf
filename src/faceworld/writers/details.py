"""FaceWorld facial-detail data for DFDN: UV textures, TRUE displacement and normal maps, and patch pairs.

DFDN learns wrinkle displacement from the photo's texture unwrapped into UV. FaceWorld knows the true
displacement of every identity x expression, so this writes what real capture rigs only approximate. UV here is
the face part of FaceWorld's UV that its PRNet position maps show (FaceWorld.prnet_uv_box), at `map_size`.

Layout:

    <root>/faceworld.json                           sizes, UV box, encodings, preprocessing, patch positions
    <root>/{train,test}/                            split BY IDENTITY
        <id>/<expression>/
            image.png                               the photo (render_size RGB, frontal, FaceWorld light)
            landmarks68.txt                         68 lines "x y": the photo's iBUG landmarks (proxy fitting)
            proxy.json                              true proxy: identity + expression coefficients, pose,
                                                    translation (mm), camera intrinsics, SH light
            texture.png                             map_size grey UV texture: HSV V channel (max of R, G, B) of
                                                    the photo unwrapped through the true mesh (unwrap_mesh); 0 where
                                                    the face is hidden or off the mesh
            mask.png                                255 where texture.png holds visible face, else 0
            albedo.png                              map_size RGB true albedo (display gamma) in the same UV
            displacement.png                        16-bit: round((x + 1) / 2 * 65535), x = displacement_mm /
                                                    displacement_scale_mm clipped to [-1, 1] (negative = groove)
            normal.png                              8-bit tangent-space normal map (true, from the wrinkle maps)
            proxy_normals.png                       8-bit camera-space unit normals of the smooth proxy mesh in
                                                    the same UV (round((n + 1) * 127.5); 128,128,128 off the face):
                                                    what the appearance loss bends by the displacement
            patches.csv                             this sample's patches (merged into ../../patches.csv)
        patches/<region>/{texture,displacement}/<id>/<expression>/<row:04d>_<col:04d>.png
                                                    patch pairs at fixed UV positions (top-left row, col) on a
                                                    `stride` grid, regions "forehead" and "mouth" (DFDN's two
                                                    models); texture patches are raw V (8-bit), displacement
                                                    patches as displacement.png
        patches.csv                                 region,identity,expression,row,col,visible_fraction,texture,
                                                    displacement (paths relative to the split folder)
Network input: preprocess_texture_patch(p) = (p / 255 - mean) * 2, the original's (p - mean(p)) * 2;
decode_displacement(png16) gives x in [-1, 1]; x * displacement_scale_mm is millimetres (the original never
defined the physical scale; here it is recorded).

Scale: the original unwraps to 1024, resizes to 4096 and cuts 256 patches on a 64 stride. Two presets
(PRESETS) fix the geometry of a dataset:
- "original": that geometry exactly: the photo (render_size 1024) is unwrapped at unwrap_size 1024 and resized
  to the 4096 map (cv2 bicubic, as the original's resize), 256-px patches on a 64 stride, so the patches fit the
  original's networks (PDIM U-Net 256, FC 65536 -> ...). FaceWorld paints its albedo and wrinkle maps at the
  unwrap size (1024) and they are resampled to the 4096 grid: the truth has the detail of a 1024 map, as the
  original's input had. A sample is ~100 MB of maps; a GPU-size dataset.
- "cpu": map 256, 32-px patches on a 16 stride (a patch is an eighth of the map: twice the original's relative
  extent, so a patch still holds several wrinkle lines), for the small networks that train in minutes on a CPU.
Without a preset the old defaults hold: map_size 512, patch 64 (map / 8; 256 when map_size >= 4096), stride
patch / 4 as in the original, unwrap at the map size. Deterministic in `seed` whatever the number of workers;
atomic writes; progress bar.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from src.faceworld.model import MM_PER_U_FRONT
from src.faceworld.params import FaceParams
from src.faceworld.world import FaceWorld, vertex_normals
from src.faceworld.writers.common import (
    begin_write,
    check_workers,
    format_points,
    identity_name,
    identity_seed,
    identity_splits,
    rgb_to_bgr,
    run_jobs,
    world_for,
    write_json_atomic,
)
from src.geometry.unwrap import unwrap_mesh
from src.geometry.uv import interpolate_to_uv, resample_uv_box
from src.io.atomic import write_image_atomic, write_text_atomic
from src.landmarks.scheme import NUM_IBUG

# Named expressions (FaceWorld's components in [0, 1]); brow_raise shows forehead lines, smile crow's feet and
# nasolabial folds, frown the glabella lines.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "browraise": {"brow_raise": 1.0},
    "smile": {"smile": 1.0},
    "frown": {"brow_frown": 1.0},
    "mouthopen": {"jaw_open": 0.7},
    "pucker": {"lips_pucker": 0.8},
}
DEFAULT_EXPRESSIONS = ("neutral", "browraise", "smile", "frown")
REGIONS = ("forehead", "mouth")
PATCH_COLUMNS = ("region", "identity", "expression", "row", "col", "visible_fraction", "texture", "displacement")
META_FILE = "faceworld.json"
VISIBILITY_TOLERANCE_MM = 3.0
PHOTO_FILL = 0.62
MM_PER_V = 300.0  # FaceWorld's mm per UV unit along v (its normal maps use the same)
# Dataset geometries (see the module docstring); keys are write_details_dataset arguments.
PRESETS: dict[str, dict[str, int]] = {
    "original": {"map_size": 4096, "patch_size": 256, "stride": 64, "render_size": 1024, "unwrap_size": 1024},
    "cpu": {"map_size": 256, "patch_size": 32, "stride": 16, "render_size": 256, "unwrap_size": 256},
}


def encode_displacement(displacement_mm: np.ndarray, scale_mm: float) -> np.ndarray:
    """mm -> uint16 levels: round((x + 1) / 2 * 65535) with x = mm / scale_mm clipped to [-1, 1]."""
    x = np.clip(np.asarray(displacement_mm, np.float64) / scale_mm, -1.0, 1.0)
    return np.round((x + 1.0) / 2.0 * 65535.0).astype(np.uint16)


def decode_displacement(levels: np.ndarray) -> np.ndarray:
    """uint16 levels -> x in [-1, 1] (multiply by displacement_scale_mm for millimetres)."""
    return (np.asarray(levels, np.float32) / 65535.0) * 2.0 - 1.0


def preprocess_texture_patch(patch: np.ndarray) -> np.ndarray:
    """The original's patch preprocessing: (p - mean(p)) * 2 on p = V / 255 in [0, 1]."""
    p = np.asarray(patch, np.float32) / 255.0
    return (p - p.mean()) * 2.0


def region_boxes(world: FaceWorld) -> dict[str, tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) of each patch region in the position-map UV, from the 68 UV keypoints:
    forehead = above the lowest brow point between the outer brow ends; mouth = from the nose bottom to the
    chin between jaw points 4 and 12 (mouth, lips and nasolabial folds)."""
    kpt = world.uv_keypoint_indices()
    rows, cols = kpt[:, 0], kpt[:, 1]
    brows = list(range(17, 27))
    return {
        "forehead": (0, int(rows[brows].max()), int(cols[17]), int(cols[26])),
        "mouth": (int(rows[33]), int(rows[8]), int(cols[4]), int(cols[12])),
    }


def patch_positions(box: tuple[int, int, int, int], map_size: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left (row, col) of the patches on the stride grid (anchored at 0) whose centre lies in the region box
    and which lie inside the map: fixed UV positions, the same for every face."""
    r0, r1, c0, c1 = box
    half = patch // 2
    out = []
    for row in range(0, map_size - patch + 1, stride):
        for col in range(0, map_size - patch + 1, stride):
            if r0 <= row + half <= r1 and c0 <= col + half <= c1:
                out.append((row, col))
    return out


def expression_params(world: FaceWorld, identity: int, seed: int, expression: str) -> FaceParams:
    """One identity (frontal, default light, black background) with a named expression."""
    if expression not in EXPRESSIONS:
        raise ValueError(f"unknown expression {expression!r}; known: {', '.join(EXPRESSIONS)}")
    base = world.neutral_params(identity_seed(seed, identity))
    return base.replace(expression=world.expression(**EXPRESSIONS[expression]))


@dataclass(frozen=True)
class _SampleJob:
    root: str
    split: str
    identity: int
    expression: str
    seed: int
    map_size: int
    render_size: int
    unwrap_size: int
    patch_size: int
    displacement_scale_mm: float
    positions: dict[str, list[tuple[int, int]]]


def _render_sample(job: _SampleJob) -> int:
    torch.set_num_threads(1)
    world = world_for(job.unwrap_size, job.unwrap_size)
    params = expression_params(world, job.identity, job.seed, job.expression)
    # Framed looser than a landmark crop so the whole forehead of the UV box is in the photo.
    camera = world.framing_camera(params, job.render_size, fill=PHOTO_FILL, center_offset=(0.0, -0.12))
    mods = ("rgb", "depth", "landmarks", "displacement", "normal_map", "uv_texture")
    out = world.render(params, camera, mods)
    box = world.prnet_uv_box()
    P = job.map_size
    U = job.unwrap_size
    # The photo unwrapped through the true proxy mesh; the rendered depth (eyeballs and mouth interior included)
    # decides which texels the photo shows.
    scene = world.build_scene(params)
    texture_rgb, visible = unwrap_mesh(
        out["rgb"],
        scene.vertices[: scene.num_face_vertices],
        world.model.triangles,
        world.model.uv,
        camera,
        U,
        box=box,
        face_mask=world.uv_face_mask(),
        depth_mm=out["depth_mm"],
        tolerance_mm=VISIBILITY_TOLERANCE_MM,
    )
    texture = texture_rgb.max(axis=2)  # HSV V
    if U != P:  # the original's 1024 -> 4096 resize of the unwrapped texture
        texture = np.clip(cv2.resize(texture, (P, P), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
        visible = cv2.resize(visible.astype(np.uint8), (P, P), interpolation=cv2.INTER_NEAREST).astype(bool)
    displacement = resample_uv_box(out["displacement"], box, P)
    normals = resample_uv_box(out["normal_map"].astype(np.float32) / 127.5 - 1.0, box, P)
    normals /= np.maximum(np.linalg.norm(normals, axis=2, keepdims=True), 1e-6)
    levels = encode_displacement(displacement, job.displacement_scale_mm)

    name = identity_name(job.identity)
    split_root = Path(job.root) / job.split
    folder = split_root / name / job.expression
    write_image_atomic(folder / "image.png", rgb_to_bgr(out["rgb"]))
    write_text_atomic(folder / "landmarks68.txt", format_points(out["landmarks2d"][:NUM_IBUG]))
    write_image_atomic(folder / "texture.png", texture)
    write_image_atomic(folder / "mask.png", visible.astype(np.uint8) * 255)
    write_image_atomic(folder / "albedo.png", rgb_to_bgr(resample_uv_box(out["uv_texture"], box, P)))
    write_image_atomic(folder / "displacement.png", levels)
    write_image_atomic(folder / "normal.png", rgb_to_bgr(np.round((normals + 1.0) * 127.5).astype(np.uint8)))
    write_image_atomic(folder / "proxy_normals.png", rgb_to_bgr(_proxy_normal_map(world, scene, camera, P)))
    write_json_atomic(
        folder / "proxy.json",
        {
            "model": world.model.name,
            "identity": params.identity.tolist(),
            "expression": dict(zip(world.expression_names, params.expression.tolist())),
            "yaw_pitch_roll_deg": list(params.head_rotation_deg),
            "translation_mm": params.translation.tolist(),
            "camera": {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy, "size": job.render_size},
            "sh_light": params.light.tolist(),
            "displacement_clipped_fraction": float(np.mean(np.abs(displacement) > job.displacement_scale_mm)),
        },
    )
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    p = job.patch_size
    for region in REGIONS:
        for row, col in job.positions[region]:
            rel = f"{name}/{job.expression}/{row:04d}_{col:04d}.png"
            tex_path = f"patches/{region}/texture/{rel}"
            disp_path = f"patches/{region}/displacement/{rel}"
            write_image_atomic(split_root / tex_path, texture[row : row + p, col : col + p])
            write_image_atomic(split_root / disp_path, levels[row : row + p, col : col + p])
            fraction = float(visible[row : row + p, col : col + p].mean())
            writer.writerow([region, name, job.expression, row, col, f"{fraction:.4f}", tex_path, disp_path])
    write_text_atomic(folder / "patches.csv", rows.getvalue())
    return 1


def texel_mm(world: FaceWorld, map_size: int) -> tuple[float, float]:
    """(mm per texel along u, along v) of a map_size map of the UV box: the scale that turns displacement
    differences into surface slopes (FaceWorld's frontal UV density, as its own normal maps use)."""
    u0, u1, v0, v1 = world.prnet_uv_box()
    return (u1 - u0) * MM_PER_U_FRONT / map_size, (v1 - v0) * MM_PER_V / map_size


def _proxy_normal_map(world: FaceWorld, scene, camera, size: int) -> np.ndarray:
    """(size,size,3) uint8 camera-space unit normals of the posed proxy mesh in the UV box (no wrinkles)."""
    face = scene.vertices[: scene.num_face_vertices]
    normals = vertex_normals(face, world.model.triangles) @ np.asarray(camera.rotation, np.float64).T
    frags = world.uv_raster()
    uv_normals = interpolate_to_uv(frags, world.model.triangles, normals.astype(np.float32))
    uv_normals /= np.maximum(np.linalg.norm(uv_normals, axis=2, keepdims=True), 1e-6)
    if uv_normals.shape[0] != size:
        uv_normals = cv2.resize(uv_normals, (size, size), interpolation=cv2.INTER_LINEAR)
        uv_normals /= np.maximum(np.linalg.norm(uv_normals, axis=2, keepdims=True), 1e-6)
    return np.round((uv_normals + 1.0) * 127.5).astype(np.uint8)


def write_details_dataset(
    root: str | os.PathLike,
    *,
    num_identities: int,
    expressions: tuple[str, ...] = DEFAULT_EXPRESSIONS,
    test_identities: int = 1,
    map_size: int | None = None,
    patch_size: int | None = None,
    stride: int | None = None,
    render_size: int | None = None,
    displacement_scale_mm: float = 2.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    preset: str | None = None,
    unwrap_size: int | None = None,
) -> Path:
    """Write DFDN detail data (see the module docstring); returns the root.

    preset: "original" or "cpu" (PRESETS) fills map_size, patch_size, stride, render_size and unwrap_size; an
    explicit value that contradicts the preset is an error. unwrap_size: the side the photo is unwrapped (and
    FaceWorld's maps painted) at before resizing to map_size (default map_size)."""
    given = {"map_size": map_size, "patch_size": patch_size, "stride": stride, "render_size": render_size}
    given["unwrap_size"] = unwrap_size
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset: unknown {preset!r}; known: {', '.join(PRESETS)}")
        clash = [f"{k}={v} (preset {preset} sets {PRESETS[preset][k]})" for k, v in given.items()
                 if v is not None and v != PRESETS[preset][k]]  # fmt: skip
        if clash:
            raise ValueError(f"preset {preset!r} contradicts {', '.join(clash)}")
        map_size, patch_size, stride = (PRESETS[preset][k] for k in ("map_size", "patch_size", "stride"))
        render_size, unwrap_size = PRESETS[preset]["render_size"], PRESETS[preset]["unwrap_size"]
    map_size = 512 if map_size is None else int(map_size)
    splits = identity_splits(num_identities, test_identities)
    unknown = [e for e in expressions if e not in EXPRESSIONS]
    if unknown or not expressions:
        raise ValueError(f"expressions: unknown {unknown or 'none given'}; known: {', '.join(EXPRESSIONS)}")
    if map_size < 32:
        raise ValueError(f"map_size must be >= 32, got {map_size}")
    patch = (256 if map_size >= 4096 else map_size // 8) if patch_size is None else int(patch_size)
    if not 4 <= patch <= map_size:
        raise ValueError(f"patch_size must be in [4, map_size={map_size}], got {patch}")
    step = max(1, patch // 4) if stride is None else int(stride)
    if step < 1:
        raise ValueError(f"stride must be >= 1, got {step}")
    if displacement_scale_mm <= 0:
        raise ValueError(f"displacement_scale_mm must be positive, got {displacement_scale_mm}")
    check_workers(workers)
    render = map_size if render_size is None else int(render_size)
    unwrap = map_size if unwrap_size is None else int(unwrap_size)
    if not 32 <= unwrap <= map_size:
        raise ValueError(f"unwrap_size must be in [32, map_size={map_size}], got {unwrap}")
    root = Path(root)
    state = begin_write(
        root,
        "dfdn",
        {
            "num_identities": num_identities, "expressions": list(expressions), "test_identities": test_identities,
            "map_size": map_size, "patch_size": patch, "stride": step, "render_size": render,
            "displacement_scale_mm": displacement_scale_mm, "seed": seed, "unwrap_size": unwrap,
            "preset": preset,
        },
    )  # fmt: skip
    world = world_for(unwrap, unwrap)
    factor = map_size / unwrap
    boxes = {r: tuple(round(v * factor) for v in b) for r, b in region_boxes(world).items()}
    positions = {region: patch_positions(boxes[region], map_size, patch, step) for region in REGIONS}
    for region, found in positions.items():
        if not found:
            raise ValueError(f"no {region} patch of size {patch} fits a {map_size} map; lower patch_size")
    jobs = [
        _SampleJob(str(root), splits[k], k, e, seed, map_size, render, unwrap, patch, displacement_scale_mm, positions)
        for k in range(num_identities)
        for e in expressions
    ]
    run_jobs(_render_sample, jobs, workers, "FaceWorld DFDN details", len(jobs), progress, state)

    for split in sorted(set(splits)):
        lines = [",".join(PATCH_COLUMNS) + "\n"]
        for job in jobs:
            if job.split == split:
                sample = root / split / identity_name(job.identity) / job.expression / "patches.csv"
                lines.append(sample.read_text())
        write_text_atomic(root / split / "patches.csv", "".join(lines))
    write_json_atomic(
        root / META_FILE,
        {
            "layout": "dfdn_details",
            "settings": state.settings,
            "source": "faceworld",
            "seed": seed,
            "num_identities": num_identities,
            "test_identities": test_identities,
            "expressions": {e: EXPRESSIONS[e] for e in expressions},
            "preset": preset,
            "map_size": map_size,
            "render_size": render,
            "unwrap_size": unwrap,
            "uv_box_u0_u1_v0_v1": list(world.prnet_uv_box()),
            "texture": "HSV V channel (max of R, G, B) of the photo unwrapped through the true mesh (unwrap_mesh)",
            "displacement_scale_mm": displacement_scale_mm,
            "texel_mm_u_v": list(texel_mm(world, map_size)),
            "proxy_normal_encoding": "uint8 RGB = round((n + 1) * 127.5), camera space (x right, y down, z forward)",
            "displacement_encoding": "uint16 = round((x + 1) / 2 * 65535), x = mm / displacement_scale_mm in [-1, 1]",
            "normal_encoding": "uint8 RGB = round((n + 1) * 127.5), tangent space (x along u, y along v, z out)",
            "patch_size": patch,
            "stride": step,
            "regions_row0_row1_col0_col1": {r: list(b) for r, b in boxes.items()},
            "patch_positions": {r: [list(p) for p in pos] for r, pos in positions.items()},
            "texture_patch_preprocessing": "(p - mean(p)) * 2 with p = V / 255 (preprocess_texture_patch)",
        },
    )
    state.finish()
    return root
