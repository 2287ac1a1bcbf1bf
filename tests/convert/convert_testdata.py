"""Tiny unprocessed captures for the conversion tests, and a detector that returns the known landmarks.

`LookupDetector` is a legitimate detector for synthetic data: the generator records which faces it put into
each colour image (keyed by the image's bytes), and the detector returns exactly those. So the tests check the
conversion, not a landmark network.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from src.io.atomic import write_image_atomic
from src.io.rgbd_layout import unprocessed_paths, write_config
from src.landmarks.detectors.base import FaceDetection, LandmarkDetector, box_around

TABLE_FILE = "detections.json"


def image_key(image_rgb: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image_rgb).tobytes() + str(image_rgb.shape).encode()).hexdigest()


class LookupDetector(LandmarkDetector):
    """Returns the faces recorded for an image by the test generator (an empty list for unknown images)."""

    name = "lookup"

    def __init__(self, table: str) -> None:
        self.table = {k: [np.asarray(f, np.float32) for f in v] for k, v in json.loads(Path(table).read_text()).items()}

    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        faces = self.table.get(image_key(image_rgb), [])
        return [FaceDetection(f, box_around(f), 1.0) for f in faces]


def canonical_landmarks() -> np.ndarray:
    """A plausible frontal 70-point layout in face units (x right, y down, face half-width 1)."""
    pts = np.zeros((70, 2))
    jaw = np.linspace(0.05, np.pi - 0.05, 17)
    pts[0:17] = np.stack([-0.95 * np.cos(jaw), -0.1 + 1.05 * np.sin(jaw) ** 0.8], 1)
    pts[17:22] = np.stack([np.linspace(-0.8, -0.2, 5), [-0.5, -0.6, -0.62, -0.6, -0.55]], 1)
    pts[22:27] = np.stack([np.linspace(0.2, 0.8, 5), [-0.55, -0.6, -0.62, -0.6, -0.5]], 1)
    pts[27:31] = np.stack([np.zeros(4), np.linspace(-0.38, 0.05, 4)], 1)
    pts[31:36] = np.stack([np.linspace(-0.22, 0.22, 5), [0.17, 0.2, 0.22, 0.2, 0.17]], 1)
    for start, cx in ((36, -0.45), (42, 0.45)):
        a = np.linspace(np.pi, -np.pi, 7)[:6]
        pts[start : start + 6] = np.stack([cx + 0.17 * np.cos(a), -0.3 - 0.07 * np.sin(a)], 1)
    a = np.linspace(np.pi, -np.pi, 13)[:12]
    pts[48:60] = np.stack([0.38 * np.cos(a), 0.5 - 0.14 * np.sin(a)], 1)
    a = np.linspace(np.pi, -np.pi, 9)[:8]
    pts[60:68] = np.stack([0.28 * np.cos(a), 0.5 - 0.05 * np.sin(a)], 1)
    pts[68] = (-0.45, -0.3)
    pts[69] = (0.45, -0.3)
    return pts


@dataclass
class SyntheticFrame:
    colour_bgr: np.ndarray
    depth_u16: np.ndarray
    true_depth_mm: np.ndarray
    landmarks: np.ndarray


def synthetic_frame(
    width: int, height: int, seed: int, nose_mm: float = 600.0, face_half_width: float | None = None
) -> SyntheticFrame:
    """A smooth head in front of a wall: depth with sensor-like noise and holes, a textured colour image."""
    rng = np.random.default_rng(seed)
    half = face_half_width if face_half_width is not None else width * rng.uniform(0.22, 0.27)
    centre = np.array([width / 2 + rng.uniform(-4, 4), height * 0.52 + rng.uniform(-4, 4)])
    landmarks = canonical_landmarks() * half + centre
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = (x - centre[0]) / (1.15 * half), (y - centre[1] + 0.15 * half) / (1.45 * half)
    r2 = u**2 + v**2
    head = r2 < 1
    tip = landmarks[30]
    nose = np.exp(-(((x - tip[0]) / (0.16 * half)) ** 2 + ((y - tip[1] + 0.1 * half) / (0.3 * half)) ** 2))
    true = nose_mm + 18 + 70 * (1 - np.sqrt(np.clip(1 - r2, 0, 1))) - 18 * nose
    true = np.where(head, true, 1500.0).astype(np.float32)
    noisy = true + rng.normal(0, 0.8, true.shape)
    noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 4)
    blobs = noise > 1.8 * noise.std()
    holes = (blobs & (r2 < 0.85)) | (rng.random((height, width)) < 0.01)
    for eye in (landmarks[68], landmarks[69]):
        holes |= ((x - eye[0]) ** 2 + (y - eye[1]) ** 2) < (0.1 * half) ** 2
    holes |= np.abs(np.sqrt(r2) - 1) < 0.03  # silhouette gap
    depth = np.where(holes, 0, np.round(noisy)).astype(np.uint16)
    shade = np.clip(0.55 + 0.45 * np.sqrt(np.clip(1 - r2, 0, 1)), 0, 1)
    skin = np.array([120, 150, 205]) * shade[..., None]
    wall = np.array([90, 110, 100]) + rng.normal(0, 6, (height, width, 1))
    colour = np.where(head[..., None], skin + rng.normal(0, 5, (height, width, 1)), wall)
    colour = np.clip(colour, 0, 255).astype(np.uint8)
    for contour in (range(36, 42), range(42, 48), range(48, 60)):
        cv2.fillPoly(colour, [np.round(landmarks[list(contour)]).astype(np.int32)], (60, 60, 140))
    return SyntheticFrame(colour, depth, true, landmarks)


_WORLD = {}


def faceworld_camera(width: int, height: int):
    """The unprocessed layout's colour camera (the original's Kinect crop) scaled to width x height."""
    from src.faceworld.writers.rgbd import kinect_crop_camera

    return kinect_crop_camera((height, width))


def faceworld_frame(width: int, height: int, seed: int, yaw: float | None = None) -> SyntheticFrame:
    """A FaceWorld head through the Kinect sensor model; landmarks are FaceWorld's ground truth."""
    from dataclasses import replace

    from src.faceworld import FaceWorld
    from src.faceworld.sensor import KinectSensorModel

    world = _WORLD.setdefault("world", FaceWorld())
    params = world.sample_params(seed, pose_range_deg=4)
    params = replace(params, translation=np.array([0.0, 0.0, 560.0 + 10 * (seed % 5)]))
    if yaw is not None:
        params = replace(params, yaw=float(yaw))
    camera = faceworld_camera(width, height)
    frame = world.render(params, camera, modalities=("rgb", "depth", "ir", "landmarks", "mask"))
    sensed = KinectSensorModel(seed=seed).apply(frame, camera=camera)
    colour = cv2.cvtColor(frame["rgb"], cv2.COLOR_RGB2BGR)
    return SyntheticFrame(colour, sensed["depth"], frame["depth_mm"], frame["landmarks2d"].astype(np.float64))


def write_capture(root: Path, frames: dict[str, list[dict]], width: int = 380, height: int = 454) -> Path:
    """Write an unprocessed capture: frames[split] = [{"name", "seed", "faces": "one"|"none"|"two", ...}].

    Optional per-frame keys: "faceworld": True (a FaceWorld render, optionally with "yaw") instead of the synthetic
    head, "nose_mm", "break": "truncated_png" | "missing_depth" | "depth_8bit" | "garbage".
    Also writes config.txt (the FaceWorld camera's intrinsics) and the LookupDetector table; returns the table path.
    """
    table: dict[str, list] = {}
    for split, specs in frames.items():
        for spec in specs:
            if spec.get("faceworld"):
                frame = faceworld_frame(width, height, spec["seed"], spec.get("yaw"))
            else:
                frame = synthetic_frame(width, height, spec["seed"], spec.get("nose_mm", 600.0))
            paths = unprocessed_paths(root, split, spec["name"])
            write_image_atomic(paths["Color"], frame.colour_bgr)
            write_image_atomic(paths["Depth"], frame.depth_u16)
            write_image_atomic(paths["Infrared"], (frame.depth_u16 // 8).astype(np.uint16))
            faces = {"one": [frame.landmarks], "none": [], "two": [frame.landmarks, frame.landmarks + 5]}
            rgb = cv2.cvtColor(frame.colour_bgr, cv2.COLOR_BGR2RGB)
            table[image_key(rgb)] = [f.tolist() for f in faces[spec.get("faces", "one")]]
            broken = spec.get("break")
            if broken == "truncated_png":
                data = paths["Color"].read_bytes()
                paths["Color"].write_bytes(data[: len(data) // 2])
            elif broken == "missing_depth":
                paths["Depth"].unlink()
            elif broken == "depth_8bit":
                write_image_atomic(paths["Depth"], (frame.depth_u16 // 8).astype(np.uint8))
            elif broken == "garbage":
                paths["Color"].write_bytes(b"this is not an image at all")
    camera = faceworld_camera(width, height)
    write_config(root / "config.txt", {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy})
    table_path = root.parent / f"{root.name}_{TABLE_FILE}"
    table_path.write_text(json.dumps(table))
    return table_path


def detector_spec(table_path: Path) -> dict:
    return {"name": "convert_testdata:LookupDetector", "table": str(table_path)}


def tree_hashes(
    root: Path, exclude: tuple[str, ...] = ("conversion_report.json",), dataset_only: bool = False
) -> dict[str, str]:
    """sha256 of every file below root (relative path -> digest); `dataset_only` skips the converter's state."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in exclude and not (dataset_only and ".convert_state" in p.parts)
    }
