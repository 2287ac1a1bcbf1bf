"""The DG chain of the original demo, on a file or a webcam: source photo + reference frames -> reenacted video.

Everything that can be checked is checked before the first frame is written: the checkpoints, the source photo
(it must show a face: one error line otherwise), the reference (a readable video, an openable webcam, or a folder
of landmark CSVs each with exactly 68 points). Then per frame: detect 68 landmarks, crop the face the way the
FaceWorld DG writer crops (a square around the landmarks, `box_scale` times their box), IDSG(reference landmarks,
source face) -> the original demo's eye fix -> DG drawing -> RFG. A frame without a face is passed through (the
frame itself, resized) and counted, so the output video has exactly one frame per reference frame. The video is
written to a temporary file beside `output` and renamed into place when complete.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from src.datamodules.dg import dg_drawing, landmark_values
from src.faceworld.writers.reenact import crop_box
from src.io.images import ImageReadError, read_image
from src.models.components.dg_idsg import eye_fix
from src.utils.errors import CheckpointError, UserError

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0


@dataclass
class AppSettings:
    idsg: str | None
    rfg: str
    source: str
    reference: str
    output: str = "reenacted.mp4"
    detector: str = "mediapipe"
    fps: float | None = None
    max_frames: int | None = None
    eye_fix: bool = True
    half_face: str | None = None
    box_scale: float = 1.5
    landmark_size: int = 256
    side_by_side: bool = True
    progress: bool = True

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


@dataclass
class AppSummary:
    output: Path
    frames: int
    reenacted: int
    passed_through: int

    def describe(self) -> str:
        return (
            f"{self.output}: {self.frames} frames ({self.reenacted} reenacted, {self.passed_through} without a face "
            "passed through)"
        )


# ---------------------------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class DrawingStyle:
    """How the RFG run drew its landmarks (src.datamodules.dg.dg_drawing); the app must draw the same way, or a
    quick-start RFG trained on supersampled grey lines would be fed the original's hard ones."""

    half_face: str
    supersample: int = 1
    line_width: float | None = None

    def draw(self, points: np.ndarray, size: int) -> np.ndarray:
        """(size, size) float32 in [0, 1] for (68, 2) points in pixels of the crop."""
        return dg_drawing(points, size, self.half_face, self.supersample, self.line_width)


class Reenactor:
    """IDSG + eye fix + drawing + RFG on one source face; __call__ takes a reference's 68 landmarks in [0, 1]."""

    def __init__(
        self, idsg: torch.nn.Module, rfg: torch.nn.Module, size: int, use_eye_fix: bool, drawing: DrawingStyle
    ) -> None:
        self.idsg, self.rfg, self.size = idsg.eval(), rfg.eval(), int(size)
        self.use_eye_fix, self.drawing = use_eye_fix, drawing
        self.source: torch.Tensor | None = None
        self.identity: torch.Tensor | None = None

    def set_source(self, face_rgb: np.ndarray) -> None:
        image = cv2.resize(face_rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        self.source = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            self.identity = self.idsg.encode_identity(self.source)

    @torch.no_grad()
    def __call__(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(drawing, face) uint8 RGB, size x size, for reference landmarks (68, 2) in [0, 1] of the crop."""
        reference = torch.from_numpy(np.asarray(landmarks, np.float32).reshape(1, -1))
        predicted = self.idsg.decode(reference, self.identity)
        if self.use_eye_fix:
            predicted = eye_fix(predicted, reference)
        points = predicted.reshape(68, -1)[:, :2].numpy() * self.size
        drawing = np.repeat(self.drawing.draw(points, self.size)[..., None], 3, axis=2)
        face = self.rfg(torch.from_numpy(drawing).permute(2, 0, 1)[None].float(), self.source)
        as_bytes = (drawing * 255).round().astype(np.uint8)
        return as_bytes, (face[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def load_models(settings: AppSettings) -> tuple[torch.nn.Module, torch.nn.Module, int, DrawingStyle]:
    """(IDSG, RFG, image size, the RFG run's drawing) from the checkpoints; CheckpointError / UserError naming the
    key. `half_face` of the settings, when given, overrides the run's half-face rule."""
    from src.utils.checkpoint import load_module

    for key in ("rfg", "idsg"):
        path = getattr(settings, key)
        if path is not None and not Path(path).is_file():
            raise CheckpointError(f"{key}={path}: checkpoint not found")
    rfg_system, _ = load_module(settings.rfg, expected_class="src.models.dg_rfg.DGRFGModule")
    if settings.idsg is not None:
        idsg_system, _ = load_module(settings.idsg, expected_class="src.models.dg_idsg.DGIDSGModule")
        idsg = idsg_system.inference_generator
    elif rfg_system.idsg is not None:
        idsg = rfg_system.idsg.module
    else:
        raise UserError(f"idsg is required: {settings.rfg} was trained without model.idsg_checkpoint")
    rfg = rfg_system.inference_generator
    blocks = sum(1 for m in rfg.style_encoder.shared if m.__class__.__name__ == "ResBlock")
    drawing = DrawingStyle(
        settings.half_face or rfg_system.half_face, rfg_system.drawing_supersample, rfg_system.drawing_line_width
    )
    return idsg, rfg, 2 ** (blocks + 2), drawing


# ---------------------------------------------------------------------------------------------------- faces
def crop_face(frame_rgb: np.ndarray, points: np.ndarray, size: int, box_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(size x size crop, the 68 points in [0, 1] of the crop): the DG writer's square box, black outside."""
    x0, y0, side = crop_box(points, box_scale)
    scale = size / side
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
    crop = cv2.warpAffine(frame_rgb, matrix, (size, size), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))
    moved = (points[:68, :2] - [x0, y0]) * scale / size
    return crop, moved


def detect(detector: Any, frame_rgb: np.ndarray) -> np.ndarray | None:
    faces = detector.detect(np.ascontiguousarray(frame_rgb))
    return faces[0].landmarks[:68].astype(np.float64) if faces else None


# ---------------------------------------------------------------------------------------------------- references
@dataclass
class Reference:
    frames: Iterator[tuple[np.ndarray | None, np.ndarray | None]]  # (frame RGB or None, landmarks [0, 1] or None)
    total: int | None
    fps: float


def csv_reference(folder: Path, landmark_size: int) -> Reference:
    """A folder of DG landmark CSVs, every one checked before any frame is made (wrong point count: one error)."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise UserError(f"reference={folder}: no .csv landmark files in the folder")
    points = [landmark_values(path)[0] / float(landmark_size) for path in files]  # DatasetError names the file
    return Reference(((None, p) for p in points), len(points), DEFAULT_FPS)


def video_reference(path: Path) -> tuple[Iterator[np.ndarray], int | None, float]:
    import av

    try:
        container = av.open(str(path))
        stream = container.streams.video[0]
    except (av.error.FFmpegError, IndexError) as err:
        raise UserError(f"reference={path}: not a readable video ({err})") from None
    fps = float(stream.average_rate or DEFAULT_FPS)
    total = int(stream.frames) or None

    def frames() -> Iterator[np.ndarray]:
        with container:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")

    return frames(), total, fps


def webcam_reference(index: int) -> tuple[Iterator[np.ndarray], None, float]:
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise UserError(f"reference={index}: cannot open webcam {index}")

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames(), None, float(capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS)


def open_reference(settings: AppSettings) -> tuple[Iterator[np.ndarray] | None, Reference | None, int | None, float]:
    """(image frames, or a CSV reference), total frames if known, fps."""
    text = str(settings.reference)
    path = Path(text)
    if path.is_dir():
        reference = csv_reference(path, settings.landmark_size)
        return None, reference, reference.total, reference.fps
    if text.isdigit() and not path.exists():
        frames, total, fps = webcam_reference(int(text))
        return frames, None, total, fps
    if not path.is_file():
        raise UserError(f"reference={text}: no such video file, webcam index or landmark folder")
    frames, total, fps = video_reference(path)
    return frames, None, total, fps


# ---------------------------------------------------------------------------------------------------- output
class VideoWriter:
    """H.264 (MPEG-4 part 2 when libx264 is missing) via PyAV into `<output>.partial`, renamed when closed."""

    def __init__(self, output: Path, width: int, height: int, fps: float) -> None:
        import av

        self.output = output
        self.partial = output.with_name(f".{output.stem}.partial{output.suffix or '.mp4'}")
        output.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.partial), "w")
        try:
            self.stream = self.container.add_stream("libx264", rate=round(fps))
        except (av.error.FFmpegError, ValueError):
            self.stream = self.container.add_stream("mpeg4", rate=round(fps))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.frames = 0

    def write(self, frame_rgb: np.ndarray) -> None:
        import av

        for packet in self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.replace(self.partial, self.output)

    def abort(self) -> None:
        self.container.close()
        self.partial.unlink(missing_ok=True)


def passthrough(frame_rgb: np.ndarray | None, size: int) -> np.ndarray:
    """A frame without a face, as a size x size picture (centre square, resized)."""
    if frame_rgb is None:
        return np.zeros((size, size, 3), np.uint8)
    height, width = frame_rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(frame_rgb[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


def run_app(settings: AppSettings) -> AppSummary:
    """Source + reference -> video; see the module docstring."""
    from src.landmarks.detectors import build_detector

    if settings.max_frames is not None and settings.max_frames < 1:
        raise UserError(f"max_frames must be >= 1 or null, got {settings.max_frames}")
    idsg, rfg, size, drawing = load_models(settings)
    reenactor = Reenactor(idsg, rfg, size, settings.eye_fix, drawing)
    try:
        source = cv2.cvtColor(read_image(settings.source, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    except ImageReadError as err:
        raise UserError(f"source: {err}") from None
    detector = build_detector(settings.detector)
    points = detect(detector, source)
    if points is None:
        raise UserError(f"source={settings.source}: no face found in the source image")
    reenactor.set_source(crop_face(source, points, size, settings.box_scale)[0])
    frames, csv_frames, total, fps = open_reference(settings)
    if settings.max_frames is not None:
        total = settings.max_frames if total is None else min(total, settings.max_frames)
    output = Path(settings.output)
    width = 2 * size if settings.side_by_side else size
    writer = VideoWriter(output, width, size, settings.fps or fps)
    counts = {"reenacted": 0, "passed_through": 0}
    bar = tqdm(total=total, desc="DG reenactment", unit="frame", disable=not settings.progress)
    source_of_frames = csv_frames.frames if csv_frames is not None else ((f, None) for f in frames)  # type: ignore[union-attr]
    try:
        for index, (frame, landmarks) in enumerate(source_of_frames):
            if settings.max_frames is not None and index >= settings.max_frames:
                break
            crop = None
            if landmarks is None and frame is not None:
                found = detect(detector, frame)
                if found is not None:
                    crop, landmarks = crop_face(frame, found, size, settings.box_scale)
            if landmarks is None:
                left = right = passthrough(frame, size)
                counts["passed_through"] += 1
            else:
                drawing, right = reenactor(landmarks)
                left = crop if crop is not None else drawing
                counts["reenacted"] += 1
            writer.write(np.concatenate([left, right], axis=1) if settings.side_by_side else right)
            bar.update(1)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
        detector.close()
    if writer.frames == 0:
        writer.abort()
        raise UserError(f"reference={settings.reference}: no frames")
    writer.close()
    if counts["passed_through"]:
        log.warning(f"{counts['passed_through']} of {writer.frames} reference frames had no face: passed through")
    return AppSummary(output, writer.frames, counts["reenacted"], counts["passed_through"])
