"""Contact sheet of FaceWorld: identities (rows) x expressions x modalities (columns), saved as one PNG.

    python -m src.faceworld.contact_sheet --out docs/faceworld_contact_sheet.png

Each row is one identity: its face under five expressions, then the modalities of the last expression
(true depth, Kinect-like sensor depth, IR, segmentation mask, NMFC, landmarks, PRNet position map, UV albedo,
UV displacement and normal map).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from src.faceworld.sensor import KinectSensorModel
from src.faceworld.world import FaceWorld
from src.io.atomic import write_image_atomic

EXPRESSIONS: tuple[tuple[str, dict[str, float]], ...] = (
    ("neutral", {}),
    ("smile", {"smile": 1.0, "cheek_puff": 0.2}),
    ("talk (jaw open)", {"jaw_open": 0.8, "brow_raise": 0.3}),
    ("brow raise", {"brow_raise": 1.0, "lips_pucker": 0.6}),
    ("frown + blink", {"brow_frown": 1.0, "mouth_frown": 0.8, "blink_left": 1.0, "blink_right": 1.0}),
)
MODALITY_COLUMNS = (
    "depth",
    "sensor depth",
    "IR",
    "mask",
    "NMFC",
    "landmarks",
    "position map",
    "UV albedo",
    "UV displacement",
    "UV normals",
)
_MASK_COLORS = np.array(
    [
        (0, 0, 0),
        (230, 180, 150),
        (90, 60, 30),
        (80, 160, 255),
        (200, 30, 60),
        (240, 80, 120),
        (60, 40, 20),
        (170, 130, 110),
    ],
    np.uint8,
)


def _depth_vis(depth_mm: np.ndarray) -> np.ndarray:
    valid = depth_mm > 0
    out = np.zeros((*depth_mm.shape, 3), np.uint8)
    if valid.any():
        near = np.percentile(depth_mm[valid], 1)
        scaled = np.clip(255 - (depth_mm - near) * 2.2, 30, 255).astype(np.uint8)
        out[valid] = cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)[..., ::-1][valid]
    return out


def _gray(image: np.ndarray, scale: float) -> np.ndarray:
    g = np.clip(image.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def identity_row(world: FaceWorld, identity_seed: int, tile: int, yaw: float) -> list[np.ndarray]:
    """The tiles of one identity: its expressions, then the modalities of the last one."""
    base = world.neutral_params(identity_seed, yaw=yaw, pitch=-4.0, background=identity_seed * 7 + 1)
    cam = world.framing_camera(base, tile, fill=0.52)
    tiles = []
    for _, named in EXPRESSIONS:
        p = base.replace(expression=world.expression(**named))
        tiles.append(world.render(p, cam, ("rgb",))["rgb"])
    everything = (
        "rgb",
        "depth",
        "ir",
        "mask",
        "nmfc",
        "landmarks",
        "position_map",
        "uv_texture",
        "displacement",
        "normal_map",
    )
    f = world.render(p, cam, everything)
    sensed = KinectSensorModel(seed=identity_seed).apply(f, camera=cam)
    lm = f["rgb"].copy()
    for (x, y), visible in zip(f["landmarks2d"], f["landmarks_visible"]):
        cv2.circle(lm, (round(x), round(y)), 1, (0, 255, 0) if visible else (255, 0, 0), -1)
    pos = f["position_map"]
    pos_vis = np.zeros_like(pos)
    valid = world.uv_face_mask()
    pos_vis[valid] = (pos[valid] - pos[valid].min(0)) / np.maximum(np.ptp(pos[valid], axis=0), 1e-6)
    disp = f["displacement"]
    disp_vis = _gray(np.clip(128 + disp * 160, 0, 255), 1.0)
    tiles += [
        _depth_vis(f["depth_mm"]),
        _depth_vis(sensed["depth"].astype(np.float32)),
        _gray(f["ir"], 255.0 / max(float(f["ir"].max()), 1.0)),
        _MASK_COLORS[f["mask"]],
        f["nmfc"],
        lm,
        cv2.resize((pos_vis * 255).astype(np.uint8), (tile, tile), interpolation=cv2.INTER_AREA),
        cv2.resize(f["uv_texture"], (tile, tile), interpolation=cv2.INTER_AREA),
        cv2.resize(disp_vis, (tile, tile), interpolation=cv2.INTER_AREA),
        cv2.resize(f["normal_map"], (tile, tile), interpolation=cv2.INTER_AREA),
    ]
    return tiles


def make_contact_sheet(identities: tuple[int, ...] = (0, 1, 2, 5), tile: int = 128) -> np.ndarray:
    """The sheet as an RGB uint8 image."""
    if tile < 32:
        raise ValueError(f"tile must be at least 32 px, got {tile}")
    world = FaceWorld()
    rows = []
    for k, ident in enumerate(identities):
        tiles = identity_row(world, ident, tile, yaw=(-14.0, 8.0, 16.0, -6.0)[k % 4])
        if k == 0:
            names = [name for name, _ in EXPRESSIONS] + list(MODALITY_COLUMNS)
            tiles = [_label(t, n) for t, n in zip(tiles, names)]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description="Save FaceWorld's contact sheet (identities x expressions x modalities) as a PNG."
    )
    parser.add_argument("--out", type=Path, default=Path("docs/faceworld_contact_sheet.png"))
    parser.add_argument("--tile", type=int, default=128, help="tile size in pixels")
    parser.add_argument("--identities", type=int, nargs="+", default=[0, 1, 2, 5], help="identity seeds (rows)")
    args = parser.parse_args(argv)
    sheet = make_contact_sheet(tuple(args.identities), args.tile)
    write_image_atomic(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}, {args.out.stat().st_size / 1e6:.2f} MB)")
    return args.out


if __name__ == "__main__":
    main()
