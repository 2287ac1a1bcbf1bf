"""PRNet's UV data (the files of its `Data/uv-data/` folder): build them from a face mask and keypoints, write and
read them, so FaceWorld data, the original's own files and users' files go through one reader.

Files (names and formats as PRNet's, see ../shared/reference/faces2one.md):
    uv_face_mask.png     P x P uint8, 255 on the face texels
    uv_weight_mask.png   P x P uint8 loss weights: 255 at the 68 keypoints (5-texel X marks), 64 on eyes / nose /
                         mouth, 48 on the rest of the face, 0 outside the face mask (the ratio 16 : 4 : 3 : 0 of the
                         fork's weight_mask_final.jpg, which its train.py uses)
    uv_kpt_ind.txt       2 x 68 `%.18e` text: row 0 = texel column (u), row 1 = texel row (v)
    face_ind.txt         one flat texel index v * P + u per line, the face mask's texels in row-major order
    triangles.txt        F x 3 int, 0-based into the face_ind vertex list (two triangles per texel quad whose three
                         corners lie on the mask)
Weights: the loss reads `uv_weight_mask / 16` (keypoints ~16, eyes / nose / mouth 4, face 3, neck 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from src.geometry.regions import landmark_region_masks
from src.geometry.uv import uv_grid_triangles
from src.io.atomic import atomic_path, write_image_atomic
from src.io.images import ImageReadError, read_image
from src.utils.errors import DatasetError

UV_FILES = ("uv_face_mask.png", "uv_weight_mask.png", "uv_kpt_ind.txt", "face_ind.txt", "triangles.txt")
WEIGHT_KEYPOINT, WEIGHT_FEATURES, WEIGHT_FACE = 255, 64, 48
WEIGHT_DIVISOR = 16.0
_X_MARK = ((0, 0), (-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass(frozen=True)
class UVData:
    """PRNet's UV data in memory. face_mask (P,P) bool; weight_mask (P,P) uint8; keypoints (68,2) int (row, col);
    face_indices (N,) flat texel indices; triangles (F,3) into face_indices."""

    face_mask: np.ndarray
    weight_mask: np.ndarray
    keypoints: np.ndarray
    face_indices: np.ndarray
    triangles: np.ndarray

    @property
    def size(self) -> int:
        return int(self.face_mask.shape[0])

    @property
    def keypoint_flat(self) -> np.ndarray:
        """(68,) flat texel index row * P + col of each keypoint."""
        return self.keypoints[:, 0] * self.size + self.keypoints[:, 1]

    def loss_weights(self) -> np.ndarray:
        """(P,P) float32 weights of the position-map loss (uv_weight_mask / 16)."""
        return self.weight_mask.astype(np.float32) / WEIGHT_DIVISOR


def weight_mask(face_mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(P,P) uint8 weight mask (module docstring) from the face mask and the 68 keypoint texels (row, col).

    Eyes, nose and mouth are the landmark polygons of src.geometry.regions drawn in UV texel coordinates, dilated
    by one texel; the keypoint X marks are drawn last. Everything is cut to the face mask."""
    mask = np.asarray(face_mask, bool)
    size = mask.shape[0]
    points = np.asarray(keypoints, np.float64)[:, ::-1]  # (x = col, y = row)
    regions = landmark_region_masks(points, size, size, ("eyes", "nose", "mouth"))
    features = regions["eyes"] | regions["nose"] | regions["mouth"]
    features = cv2.dilate(features.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    out = np.where(mask, WEIGHT_FACE, 0).astype(np.uint8)
    out[mask & features] = WEIGHT_FEATURES
    for row, col in np.asarray(keypoints, int):
        for dr, dc in _X_MARK:
            r, c = row + dr, col + dc
            if 0 <= r < size and 0 <= c < size and mask[r, c]:
                out[r, c] = WEIGHT_KEYPOINT
    return out


def build_uv_data(face_mask: np.ndarray, keypoints: np.ndarray) -> UVData:
    """Every UV file's content from a face mask (P,P) and 68 keypoint texels (row, col)."""
    mask = np.asarray(face_mask, bool)
    flat = np.flatnonzero(mask)
    lookup = np.full(mask.size, -1, np.int64)
    lookup[flat] = np.arange(len(flat))
    triangles = lookup[uv_grid_triangles(mask)]
    return UVData(mask, weight_mask(mask, keypoints), np.asarray(keypoints, np.int64), flat, triangles)


def _save_text(path: Path, array: np.ndarray, fmt: str) -> None:
    with atomic_path(path) as tmp:
        np.savetxt(tmp, array, fmt=fmt)


def write_uv_data(folder: str | os.PathLike, uv: UVData) -> Path:
    """Write the five files into `folder` (atomically each); returns the folder."""
    folder = Path(folder)
    write_image_atomic(folder / "uv_face_mask.png", uv.face_mask.astype(np.uint8) * 255)
    write_image_atomic(folder / "uv_weight_mask.png", uv.weight_mask)
    _save_text(folder / "uv_kpt_ind.txt", uv.keypoints[:, ::-1].T.astype(np.float64), "%.18e")
    _save_text(folder / "face_ind.txt", uv.face_indices[:, None], "%d")
    _save_text(folder / "triangles.txt", uv.triangles, "%d")
    return folder


def read_uv_data(folder: str | os.PathLike) -> UVData:
    """Read PRNet's UV files from `folder` (ours or the original's `Data/uv-data`); one DatasetError lists every
    missing or malformed file. A missing uv_weight_mask.png / face_ind.txt / triangles.txt is rebuilt from the mask
    and keypoints (the original's folder lacks triangles.txt in some copies)."""
    folder = Path(folder)
    problems: list[str] = []
    if not folder.is_dir():
        raise DatasetError(f"{folder}: PRNet uv-data folder not found (needs uv_face_mask.png and uv_kpt_ind.txt)")
    try:
        mask = read_image(folder / "uv_face_mask.png", cv2.IMREAD_GRAYSCALE) > 0
    except ImageReadError as err:
        raise DatasetError(f"{err}") from None
    size = mask.shape[0]
    if mask.shape != (size, size) or not mask.any():
        problems.append(f"uv_face_mask.png: expected a square mask with face texels, got shape {mask.shape}")
    try:
        kpt = np.loadtxt(folder / "uv_kpt_ind.txt")
    except (OSError, ValueError) as err:
        raise DatasetError(f"{folder / 'uv_kpt_ind.txt'}: cannot read ({err})") from None
    if kpt.shape != (2, 68):
        problems.append(f"uv_kpt_ind.txt: expected 2 rows of 68 values (columns, rows), got shape {kpt.shape}")
        raise DatasetError(f"{folder}: " + "; ".join(problems))
    keypoints = np.round(kpt[::-1].T).astype(np.int64)
    if keypoints.min() < 0 or keypoints.max() >= size:
        problems.append(f"uv_kpt_ind.txt: texels outside the {size}x{size} map")
    if problems:
        raise DatasetError(f"{folder}: " + "; ".join(problems))
    built = build_uv_data(mask, keypoints)
    weights = built.weight_mask
    if (folder / "uv_weight_mask.png").is_file():
        weights = read_image(folder / "uv_weight_mask.png", cv2.IMREAD_GRAYSCALE)
        if weights.shape != mask.shape:
            raise DatasetError(f"{folder / 'uv_weight_mask.png'}: shape {weights.shape}, the face mask is {mask.shape}")
    face_indices, triangles = built.face_indices, built.triangles
    if (folder / "face_ind.txt").is_file():
        face_indices = np.loadtxt(folder / "face_ind.txt").astype(np.int64).reshape(-1)
        if face_indices.min() < 0 or face_indices.max() >= mask.size:
            raise DatasetError(f"{folder / 'face_ind.txt'}: indices outside the {size}x{size} map")
    if (folder / "triangles.txt").is_file():
        triangles = np.loadtxt(folder / "triangles.txt").astype(np.int64).reshape(-1, 3)
        if triangles.size and (triangles.min() < 0 or triangles.max() >= len(face_indices)):
            raise DatasetError(f"{folder / 'triangles.txt'}: indices outside the face_ind vertex list")
    return UVData(mask, weights, keypoints, face_indices, triangles)
