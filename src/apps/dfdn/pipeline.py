"""DFDN inference on photos: landmarks -> proxy fit -> UV texture -> patches -> both region models -> stitched
displacement -> normal map and a shaded render with the details applied.

Per photo `<stem>/` in the output folder:
    proxy.obj, proxy.mtl   the fitted proxy mesh (camera space, mm) with UV, textured by texture.png
    texture.png            the photo unwrapped into the UV box (RGB; black where the face is hidden)
    displacement.png       16-bit: round((x + 1) / 2 * 65535), x = displacement_mm / displacement_scale_mm
                           (the training data's scale; summary.json records it; 0 = no patch covered the texel)
    normal.png             8-bit tangent-space normal map of the displacement (x along u, y along v, z out),
                           from its slopes in mm per mm (the texel size is known), round((n + 1) * 127.5)
    render.png             the proxy shaded with the details applied (normals bent by the displacement), beside
    render_proxy.png       the same render without details
    landmarks68.txt        the 68 landmarks used
A run writes summary.json: every input with its status (written / skipped and why) and the counts.

Input rules (each counted in the summary): a grey photo is used as grey RGB and an RGBA photo's alpha is dropped
(both noted, not errors); an unreadable file, a photo smaller than `min_side` px, or one where no face is found is
skipped with its reason; a single photo that is skipped ends the run with one error line (exit 1).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from src.faceworld.world import vertex_normals
from src.faceworld.writers.common import world_for
from src.faceworld.writers.details import (
    PRESETS,
    REGIONS,
    encode_displacement,
    patch_positions,
    preprocess_texture_patch,
    region_boxes,
    texel_mm,
)
from src.geometry.camera import PinholeCamera
from src.geometry.fitting import fit_proxy
from src.geometry.sh import sh_light
from src.geometry.unwrap import render_uv_texture, unwrap_mesh
from src.geometry.uv import interpolate_to_uv
from src.io.atomic import write_image_atomic, write_text_atomic
from src.models.components.dfdn_render import fine_normals, irradiance_basis, tangent_normals
from src.utils.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
RENDER_LIGHT = sh_light(0.55, np.array([0.4, -0.5, -1.0]), 0.6).mean(axis=1)
SKIN_GREY = 0.75


class InputSkippedError(ValueError):
    """An input this run cannot use (unreadable, too small, no face): skipped and counted, not a crash."""


@dataclass
class DetailSettings:
    """What the run needs besides the photos (see conf/dfdn_app.yaml)."""

    map_size: int
    stride: int
    displacement_scale_mm: float
    unwrap_size: int | None = None  # the photo is unwrapped at this side, then resized (the original: 1024)
    min_side: int = 64
    focal_factor: float = 1.2
    emotion: str | None = None


@dataclass
class RunSummary:
    written: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def as_dict(self, settings: DetailSettings) -> dict[str, Any]:
        return {
            "written": len(self.written),
            "skipped": len(self.skipped),
            "inputs": {
                **dict.fromkeys(self.written, "written"),
                **{name: f"skipped: {reason}" for name, reason in self.skipped.items()},
            },
            "notes": self.notes,
            "displacement_scale_mm": settings.displacement_scale_mm,
            "displacement_encoding": "uint16 = round((x + 1) / 2 * 65535), x = mm / displacement_scale_mm",
            "map_size": settings.map_size,
            "texel_mm_u_v": list(texel_mm(world_for(64, 64), settings.map_size)),
        }


# ---------------------------------------------------------------------------------------------------- inputs
def list_inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise UserError(f"input={path}: the folder holds no files")
        return files
    raise UserError(f"input={path}: no such file or folder")


def read_photo(path: Path, min_side: int) -> tuple[np.ndarray, str | None]:
    """HxWx3 uint8 RGB and a note (grey / RGBA converted), or InputSkippedError with the reason."""
    data = path.read_bytes() if path.is_file() else b""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None:
        raise InputSkippedError("not a readable image")
    note = None
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
        note = "16-bit image scaled to 8 bits"
    if image.ndim == 2 or image.shape[2] == 1:
        image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
        note = "grey image used as grey RGB"
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        note = "RGBA image: alpha dropped"
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if min(image.shape[:2]) < min_side:
        size = f"{image.shape[1]}x{image.shape[0]}"
        raise InputSkippedError(f"too small: {size} px, the smaller side must be >= {min_side}")
    return np.ascontiguousarray(image), note


# ---------------------------------------------------------------------------------------------------- patches
def bell_window(size: int) -> np.ndarray:
    """(size,size) separable sin^2 weight: 1 at the centre, ~0 at the border (blends overlapping patches)."""
    ramp = np.sin(np.pi * (np.arange(size) + 0.5) / size) ** 2
    return np.outer(ramp, ramp).astype(np.float32)


def stitch(patches: list[tuple[int, int, np.ndarray]], map_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Bell-weighted average of patches placed at (row, col): (map, summed weight); 0 where no patch lies."""
    total = np.zeros((map_size, map_size), np.float64)
    weight = np.zeros((map_size, map_size), np.float64)
    if not patches:
        return total.astype(np.float32), weight.astype(np.float32)
    size = patches[0][2].shape[0]
    window = bell_window(size)
    for row, col, patch in patches:
        total[row : row + size, col : col + size] += window * patch
        weight[row : row + size, col : col + size] += window
    out = np.where(weight > 1e-6, total / np.maximum(weight, 1e-12), 0.0)
    return out.astype(np.float32), weight.astype(np.float32)


@torch.no_grad()
def predict_displacement(module: Any, texture_v: np.ndarray, positions: dict[str, list[tuple[int, int]]]) -> np.ndarray:
    """Each region's patches through its model (batched), stitched into a map of x in [-1, 1]."""
    generator = module.inference_generator.eval()
    size = generator.patch_size
    placed = []
    for region, spots in positions.items():
        if not spots:
            continue
        batch = np.stack([preprocess_texture_patch(texture_v[r : r + size, c : c + size]) for r, c in spots])
        refined, _ = generator.nets[region](torch.from_numpy(batch[:, None]).float())
        placed += [(r, c, p[0]) for (r, c), p in zip(spots, refined.numpy(), strict=True)]
    displacement, _ = stitch(placed, texture_v.shape[0])
    return displacement


# ---------------------------------------------------------------------------------------------------- outputs
def write_obj(folder: Path, vertices: np.ndarray, uv_box: np.ndarray, triangles: np.ndarray) -> None:
    """proxy.obj + proxy.mtl (texture.png); UV in the texture's box, v flipped as OBJ expects."""
    lines = ["mtllib proxy.mtl", "usemtl face"]
    lines += [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices]
    lines += [f"vt {u:.6f} {1.0 - v:.6f}" for u, v in uv_box]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in triangles + 1]
    write_text_atomic(folder / "proxy.obj", "\n".join(lines) + "\n")
    write_text_atomic(folder / "proxy.mtl", "newmtl face\nKd 1 1 1\nmap_Kd texture.png\n")


def shaded_uv(normals_uv: np.ndarray) -> np.ndarray:
    """(S,S,3) camera-space normals -> (S,S) uint8 grey shading (skin grey albedo, RENDER_LIGHT, display gamma)."""
    n = torch.from_numpy(normals_uv.transpose(2, 0, 1)[None].copy())
    shading = (irradiance_basis(n) * torch.from_numpy(RENDER_LIGHT).float().view(1, 9, 1, 1)).sum(1)[0].numpy()
    return np.round(np.clip(SKIN_GREY * shading, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)


class DetailPipeline:
    """One loaded model, detector and morphable model; `process(photo, folder)` writes one photo's outputs."""

    def __init__(self, module: Any, detector: Any, settings: DetailSettings, emotion_prior: Any = None) -> None:
        self.module = module
        self.detector = detector
        self.settings = settings
        self.emotion_prior = emotion_prior
        size = settings.map_size
        self.unwrap = settings.unwrap_size or size
        self.world = world_for(self.unwrap, self.unwrap)
        self.box = self.world.prnet_uv_box()
        patch = module.inference_generator.patch_size
        factor = size / self.unwrap  # region boxes as the writer finds them (at the unwrap size, scaled)
        boxes = {r: tuple(round(v * factor) for v in b) for r, b in region_boxes(self.world).items()}
        self.positions = {r: patch_positions(boxes[r], size, patch, settings.stride) for r in REGIONS}
        self.texel = torch.tensor([texel_mm(self.world, size)], dtype=torch.float32)

    def process(self, image: np.ndarray, folder: Path) -> dict[str, Any]:
        detections = self.detector.detect(image)
        if not detections:
            raise InputSkippedError("no face found")
        landmarks = np.asarray(detections[0].landmarks, np.float64)[:68]
        height, width = image.shape[:2]
        focal = self.settings.focal_factor * max(width, height)
        camera = PinholeCamera(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, width, height)
        prior = self.emotion_prior.prior(image, landmarks) if self.emotion_prior is not None else None
        mm = self.world.model
        fit = fit_proxy(mm, landmarks, camera, expression_prior=prior)
        vertices = mm.shape(fit.identity, fit.expression) @ fit.rotation.T + fit.translation
        size = self.settings.map_size
        texture, visible = unwrap_mesh(
            image, vertices, mm.triangles, mm.uv, camera, self.unwrap, box=self.box, face_mask=self.world.uv_face_mask()
        )
        face_mask = self.world.uv_face_mask()
        proxy_n = interpolate_to_uv(self.world.uv_raster(), mm.triangles, vertex_normals(vertices, mm.triangles))
        if self.unwrap != size:
            texture = cv2.resize(texture, (size, size), interpolation=cv2.INTER_CUBIC)
            face_mask = cv2.resize(face_mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
            proxy_n = cv2.resize(proxy_n, (size, size), interpolation=cv2.INTER_LINEAR)
        displacement = predict_displacement(self.module, texture.max(axis=2), self.positions)
        displacement[~face_mask] = 0.0
        scale = self.settings.displacement_scale_mm
        mm_map = torch.from_numpy(displacement * scale)[None, None]
        tangent = tangent_normals(mm_map, self.texel)[0].numpy().transpose(1, 2, 0)
        # Proxy normals in UV (camera space), bent by the displacement: the details applied to the mesh.
        proxy_n /= np.maximum(np.linalg.norm(proxy_n, axis=2, keepdims=True), 1e-6)
        proxy_t = torch.from_numpy(proxy_n.transpose(2, 0, 1)[None].copy()).float()
        bent = fine_normals(mm_map, self.texel, proxy_t)[0].numpy().transpose(1, 2, 0)
        renders = {}
        for name, normals in (("render.png", bent), ("render_proxy.png", proxy_n)):
            shading = shaded_uv(normals)
            drawn, covered = render_uv_texture(shading, vertices, mm.triangles, mm.uv, camera, box=self.box)
            renders[name] = np.where(covered, drawn, (image.mean(axis=2) * 0.3).astype(np.uint8))
        folder.mkdir(parents=True, exist_ok=True)
        u0, u1, v0, v1 = self.box
        uv_box = np.stack([(mm.uv[:, 0] - u0) / (u1 - u0), (mm.uv[:, 1] - v0) / (v1 - v0)], 1)
        write_obj(folder, vertices, uv_box, mm.triangles)
        write_image_atomic(folder / "texture.png", cv2.cvtColor(texture, cv2.COLOR_RGB2BGR))
        write_image_atomic(folder / "displacement.png", encode_displacement(displacement * scale, scale))
        normal8 = np.round((tangent + 1.0) * 127.5).astype(np.uint8)
        write_image_atomic(folder / "normal.png", cv2.cvtColor(normal8, cv2.COLOR_RGB2BGR))
        for name, picture in renders.items():
            write_image_atomic(folder / name, picture)
        write_text_atomic(folder / "landmarks68.txt", "\n".join(f"{x:.3f} {y:.3f}" for x, y in landmarks) + "\n")
        return {
            "reprojection_error_px": fit.reprojection_error_px,
            "visible_texels": float(visible.mean()),
            "displacement_mm_range": [float(displacement.min() * scale), float(displacement.max() * scale)],
            "expression_prior": prior is not None,
        }


def settings_from_run(run_config: dict[str, Any], overrides: dict[str, Any]) -> DetailSettings:
    """Map size, stride and displacement scale of the training data (from the checkpoint's run config), unless
    given; a scan-folder run records no FaceWorld geometry and needs them given."""
    data = run_config.get("data") or {}
    faceworld = dict(data.get("faceworld") or {})
    preset = PRESETS.get(str(faceworld.get("preset")), {})
    geometry = {
        "map_size": overrides.get("map_size") or faceworld.get("map_size") or preset.get("map_size"),
        "stride": overrides.get("stride") or faceworld.get("stride") or preset.get("stride"),
        "displacement_scale_mm": overrides.get("displacement_scale_mm")
        or data.get("displacement_scale_mm")
        or faceworld.get("displacement_scale_mm")
        or 2.0,
    }
    missing = [k for k, v in geometry.items() if not v]
    if missing:
        raise UserError(f"the checkpoint's run records no {', '.join(missing)}: give {', '.join(missing)}=...")
    unwrap = overrides.get("unwrap_size") or faceworld.get("unwrap_size") or preset.get("unwrap_size")
    return DetailSettings(
        unwrap_size=int(unwrap) if unwrap else None,
        map_size=int(geometry["map_size"]),
        stride=int(geometry["stride"]),
        displacement_scale_mm=float(geometry["displacement_scale_mm"]),
        min_side=int(overrides.get("min_side") or 64),
        focal_factor=float(overrides.get("focal_factor") or 1.2),
    )


def run_folder(pipeline: DetailPipeline, inputs: list[Path], output: Path) -> RunSummary:
    summary = RunSummary()
    for path in inputs:
        try:
            image, note = read_photo(path, pipeline.settings.min_side)
            result = pipeline.process(image, output / path.stem)
        except InputSkippedError as err:
            summary.skipped[path.name] = str(err)
            log.warning(f"{path}: skipped ({err})")
            continue
        if note:
            summary.notes[path.name] = note
        summary.written.append(path.name)
        log.info(f"{path}: written to {output / path.stem} ({json.dumps(result)})")
    write_text_atomic(output / "summary.json", json.dumps(summary.as_dict(pipeline.settings), indent=2) + "\n")
    return summary
