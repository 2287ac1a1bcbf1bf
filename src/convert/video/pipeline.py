"""Talking-head videos -> the Head2Head dataset layout, on a CPU, from the packages the project installs.

Per video (each one a unit of work: resumable, one worker process each):
1. decode (PyAV) and detect the face in every frame (mediapipe's full-range BlazeFace through
   src.capture.face_count.FaceCounter; one whole-frame tile unless detection.min_face_px asks for smaller faces);
2. boxes of frames without a detection are interpolated from their neighbours, all boxes smoothed over time
   (Savitzky-Golay), and ONE fixed square box for the whole video: the union of the smoothed boxes, enlarged by
   box_scale about its centre (the head stays inside however it moves), as the original's detect.py keeps one box;
3. decode again, crop every frame to that box and resize it to `size` (black outside the frame);
4. 70 landmarks on the crop (any src/landmarks detector; default mediapipe FaceMesh + iris in tracking mode, one
   instance per video); a frame where no face is found is dropped (counted; the datamodule splits sequences there);
5. morphable-model fitting (src.geometry.sequence_fitting: identity averaged over the video, pose + expression per
   frame, orthographic camera), NMFC (src.geometry.nmfc) and eye-gaze image (src.convert.video.eyes);
6. written in the Head2Head layout by the original's rules (src.faceworld.writers.head2head: whole 50-frame train
   parts `<name>_<part>`, the last third + the tail to test `<name>`, 7-line misc, savetxt text, id_coeffs).

Identity names follow the original (names hold no underscore): a single file given as input is named by its stem
without `_`; in a folder, `<name>_<anything>.mp4` files are parts of `<name>` (sorted by path), numbered by one
global frame counter, framed by one box from all of them; only the last part is split (earlier parts are all
train). A video that cannot be opened, has no face, or is too short for one train part is skipped and reported
(with split=test every frame goes to test/<name>, as the original's --split test).
A corrupt packet loses its frame (counted); frames are numbered by their timestamps, so later frames keep their
numbers. Resuming: `<output>/.convert_video/` records the settings and one marker per finished video; a rerun with the
same settings skips finished videos and redoes unfinished ones from scratch; other settings are refused.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from scipy.signal import savgol_filter
from tqdm import tqdm

from src.convert.video.eyes import draw_eye_image
from src.faceworld.writers.head2head import EYE_KIND, savetxt_text, train_sequence_name
from src.io.atomic import write_image_atomic, write_text_atomic
from src.utils.errors import UserError

log = logging.getLogger(__name__)

__all__ = [
    "ConversionReport",
    "VideoReport",
    "VideoSettings",
    "convert_one_video",
    "crop_square",
    "find_videos",
    "fixed_square_box",
    "frame_to_crop",
    "run_video_conversion",
]

STATE_DIR = ".convert_video"
REPORT_FILE = "convert_video_report.json"
LAYOUT_KINDS = ("images", "nmfcs", "landmarks70", "misc", "exp_coeffs")
NOMINAL_DEPTH_MM = 1000.0  # tz of a fitted orthographic camera: depth is not observable; it changes no pixel


# ------------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class VideoSettings:
    """Everything that changes the output (see conf/convert_video.yaml for each key)."""

    size: int = 256
    box_scale: float = 1.6
    box_shift_y: float = 0.0
    smooth_window: int = 99
    smooth_order: int = 3
    min_face_px: float | None = None
    face_confidence: float = 0.5
    max_missing_fraction: float = 0.5
    landmarks: Mapping[str, Any] = field(default_factory=lambda: {"name": "mediapipe"})
    pupils: str = "detector"
    identity_frames: int = 32
    fit_iterations: int = 8
    expression_iterations: int = 4
    coefficient_smoothing: int = 0
    fit_jaw: bool = True
    split: str = "train"
    test_fraction: float = 0.33
    part_frames: int = 50
    eye_gaze: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VideoSettings:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in dict(config).items() if k in known}
        if isinstance(values.get("landmarks"), Mapping):
            values["landmarks"] = {str(k): v for k, v in dict(values["landmarks"]).items()}
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        def need(ok: bool, key: str, rule: str, value: Any) -> None:
            if not ok:
                raise UserError(f"{key} must be {rule}, got {value!r}")

        need(isinstance(self.size, int) and self.size >= 32, "size", "an integer >= 32", self.size)
        need(self.box_scale > 0, "box_scale", "> 0", self.box_scale)
        need(
            isinstance(self.smooth_window, int) and self.smooth_window >= 0, "smooth_window", ">= 0", self.smooth_window
        )
        need(1 <= self.smooth_order <= 5, "smooth_order", "in [1, 5]", self.smooth_order)
        need(self.min_face_px is None or self.min_face_px > 0, "detection.min_face_px", "> 0 or null", self.min_face_px)
        need(0 < self.face_confidence < 1, "detection.face_confidence", "in (0, 1)", self.face_confidence)
        need(0 <= self.max_missing_fraction < 1, "max_missing_fraction", "in [0, 1)", self.max_missing_fraction)
        need(self.pupils in ("detector", "centre_of_mass"), "pupils", "detector or centre_of_mass", self.pupils)
        need(self.identity_frames >= 1, "fitting.identity_frames", ">= 1", self.identity_frames)
        need(self.fit_iterations >= 1, "fitting.iterations", ">= 1", self.fit_iterations)
        need(self.expression_iterations >= 1, "fitting.expression_iterations", ">= 1", self.expression_iterations)
        need(self.coefficient_smoothing >= 0, "fitting.smooth_window", ">= 0", self.coefficient_smoothing)
        need(self.split in ("train", "test"), "split", "train or test", self.split)
        need(0 < self.test_fraction < 1, "test_fraction", "in (0, 1)", self.test_fraction)
        need(isinstance(self.part_frames, int) and self.part_frames >= 1, "part_frames", ">= 1", self.part_frames)
        need(
            isinstance(self.landmarks, Mapping) and ("name" in self.landmarks or "_target_" in self.landmarks),
            "landmarks", "a detector config with `name` or `_target_`", self.landmarks,
        )  # fmt: skip

    def record(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


# ------------------------------------------------------------------------------------------------ reports
@dataclass
class VideoReport:
    """What happened to one video."""

    name: str
    path: str
    status: str = "pending"  # ok | too_short | no_face | unreadable | failed
    message: str = ""
    frames: int = 0  # frames decoded
    corrupt_frames: int = 0  # packets that failed to decode (their frames are missing)
    missing_boxes: int = 0  # frames without a face box (box interpolated)
    faceless_frames: int = 0  # frames without landmarks (dropped)
    train_frames: int = 0
    test_frames: int = 0
    fit_error_px: float = float("nan")
    box: tuple[int, int, int] = (0, 0, 0)
    seconds: dict[str, float] = field(default_factory=dict)  # CPU seconds per stage (this process)


@dataclass
class ConversionReport:
    output: str
    videos: list[VideoReport]

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.videos)

    def totals(self) -> dict[str, int]:
        keys = ("frames", "corrupt_frames", "missing_boxes", "faceless_frames", "train_frames", "test_frames")
        return {k: sum(getattr(v, k) for v in self.videos) for k in keys}

    def table(self) -> str:
        lines = ["| video | status | frames | corrupt | no box | faceless | train | test | fit error px |"]
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for v in self.videos:
            lines.append(
                f"| {v.name} | {v.status}{(': ' + v.message) if v.message else ''} | {v.frames} | {v.corrupt_frames} "
                f"| {v.missing_boxes} | {v.faceless_frames} | {v.train_frames} | {v.test_frames} "
                f"| {v.fit_error_px:.2f} |"
            )
        t = self.totals()
        lines.append(
            f"| all ({len(self.videos)}: {self.count('ok')} ok) | | {t['frames']} | {t['corrupt_frames']} "
            f"| {t['missing_boxes']} | {t['faceless_frames']} | {t['train_frames']} | {t['test_frames']} | |"
        )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "totals": self.totals(),
            "status": {s: self.count(s) for s in sorted({v.status for v in self.videos})},
            "videos": [asdict(v) for v in self.videos],
        }


# ------------------------------------------------------------------------------------------------ inputs
def video_name(path: Path, in_folder: bool) -> str:
    """The identity name of a video file (the original's rules: names hold no underscore): a file given alone is
    named by its stem without underscores; in a folder, `<name>_<anything>.mp4` is a part of `<name>`."""
    return path.stem.split("_")[0] if in_folder else path.stem.replace("_", "")


def find_videos(source: str | os.PathLike, compression: str | None = None) -> dict[str, list[Path]]:
    """{name: [parts in order]} of the .mp4 files of `source`: one file, a folder (searched recursively; parts of
    one identity sorted by path), or a FaceForensics++ root (`original_sequences/youtube/<compression>/videos/`).
    UserError naming the path when there is nothing to convert."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"input: {source} does not exist")
    ffpp = source / "original_sequences" / "youtube"
    if source.is_dir() and ffpp.is_dir():
        available = sorted(p.name for p in ffpp.iterdir() if (p / "videos").is_dir())
        if compression is None or compression not in available:
            raise UserError(f"input: {source} is a FaceForensics++ root; set compression to one of {available}")
        source = ffpp / compression / "videos"
    if source.is_file():
        if source.suffix.lower() != ".mp4":
            raise UserError(f"input: {source} is not an .mp4 file")
        paths = [source]
    else:
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() == ".mp4" and p.is_file())
    if not paths:
        raise UserError(f"input: no .mp4 file in {source}")
    videos: dict[str, list[Path]] = {}
    for path in paths:
        name = video_name(path, in_folder=source.is_dir())
        if not name:
            raise UserError(f"input: {path} gives an empty identity name (it starts with '_')")
        videos.setdefault(name, []).append(path)
    return dict(sorted(videos.items()))


def first_test_frame(last_start: int, last_count: int, test_fraction: float, part_frames: int) -> int:
    """The original's split of an identity whose last part starts at global frame `last_start` and has
    `last_count` frames: int(test_fraction * last_count) frames meant for test, the train frames before them floored
    to whole parts; frames of the last part from there on are test (earlier parts are all train). ValueError when
    no whole train part or no test frame is left."""
    end = last_start + last_count
    train_end = (end - int(test_fraction * last_count)) // part_frames * part_frames
    if train_end < part_frames or train_end >= end:
        raise ValueError(f"{end} frames: less than one {part_frames}-frame train part + test")
    return max(train_end, last_start)


# ------------------------------------------------------------------------------------------------ decoding
def decode_frames(path: Path, counters: dict[str, int]) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, RGB frame) of every decodable frame; numbers come from timestamps (a lost frame leaves a gap).
    counters['corrupt'] counts packets the decoder rejected. Raises av.error.FFmpegError when the file is unreadable."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        base = stream.time_base
        first_pts = None
        counter = 0
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                counters["corrupt"] = counters.get("corrupt", 0) + 1
                continue
            for frame in decoded:
                if frame.pts is not None and base is not None:
                    first_pts = frame.pts if first_pts is None else first_pts
                    number = round(float((frame.pts - first_pts) * base) * rate)
                else:
                    number = counter
                counter = number + 1
                yield number, frame.to_ndarray(format="rgb24")


def decode_parts(
    paths: list[Path], counters: dict[str, int], offsets: list[int]
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(part, global frame number, RGB frame) over the parts of one identity, numbered by one global counter (the
    original's). `offsets` (global number of each part's first frame) is filled on the first pass and reused on the
    next, so both passes number frames alike. Raises av.error.FFmpegError naming nothing: the caller reports it."""
    fill = not offsets
    start = 0
    for part, path in enumerate(paths):
        if fill:
            offsets.append(start)
        last = -1
        for number, frame in decode_frames(path, counters):
            last = number
            yield part, offsets[part] + number, frame
        start = offsets[part] + last + 1


# ------------------------------------------------------------------------------------------------ boxes
def fixed_square_box(
    boxes: np.ndarray, window: int, order: int, scale: float, shift_y: float = 0.0
) -> tuple[int, int, int]:
    """(x0, y0, side) in whole pixels: one square for the whole video from per-frame (x0, y0, x1, y1) boxes (NaN
    rows: no face).

    Missing boxes are interpolated linearly in time (nearest at the ends), all are smoothed with Savitzky-Golay
    (window shrunk to the odd length of the video; none for very short videos), and the square covers the union of
    the smoothed boxes, `scale` times its longer side, centred on it (moved down by shift_y * side)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    present = np.all(np.isfinite(boxes), axis=1)
    if not present.any():
        raise ValueError("no face box in any frame")
    t = np.arange(len(boxes))
    filled = np.stack([np.interp(t, t[present], boxes[present, c]) for c in range(4)], axis=1)
    win = min(window, len(filled) if len(filled) % 2 else len(filled) - 1)
    if win > order:
        filled = savgol_filter(filled, win, order, axis=0)
    lo, hi = filled[:, :2].min(0), filled[:, 2:].max(0)
    side = max(2, round(scale * max(hi - lo)))
    centre = 0.5 * (lo + hi) + np.array([0.0, shift_y * side])
    return round(centre[0] - side / 2), round(centre[1] - side / 2), side


def crop_square(frame: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """The square (x0, y0, side) of `frame` (black outside the frame) resized to size x size: area averaging when
    shrinking, bicubic when enlarging. Crop pixel u shows frame x = x0 + (u + 0.5) * side / size - 0.5."""
    x0, y0, side = (int(v) for v in box)
    height, width = frame.shape[:2]
    patch = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def frame_to_crop(points: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """Frame pixel coordinates -> crop pixel coordinates of crop_square (pixel centres at integers)."""
    x0, y0, side = box
    return (np.asarray(points, dtype=np.float64) - np.array([x0, y0]) + 0.5) * (size / side) - 0.5


# ------------------------------------------------------------------------------------------------ landmarks
def centre_of_mass_pupils(image_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The original's pupils: the centre of mass of inverse grey intensity inside each eye's 6-point polygon."""
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    out = np.array(landmarks, dtype=np.float64, copy=True)
    for eye, row in (((36, 42), 68), ((42, 48), 69)):
        polygon = np.round(out[eye[0] : eye[1]]).astype(np.int32)
        mask = np.zeros(gray.shape, np.uint8)
        cv2.fillPoly(mask, [polygon], 1)
        ys, xs = np.nonzero(mask)
        weights = 255.0 - gray[ys, xs]
        if weights.sum() > 0:
            out[row] = [np.sum(xs * weights) / weights.sum(), np.sum(ys * weights) / weights.sum()]
    return out


def _build_landmark_detector(spec: Mapping[str, Any]):
    from src.landmarks.detectors.base import build_detector

    kwargs = {k: v for k, v in spec.items() if k not in ("name", "_target_")}
    if "_target_" in spec:
        module, _, cls = str(spec["_target_"]).rpartition(".")
        return build_detector(f"{module}:{cls}", **kwargs)
    return build_detector(str(spec["name"]), **kwargs)


# ------------------------------------------------------------------------------------------------ one video
def _clear_video_outputs(output: Path, name: str) -> None:
    """Remove whatever an interrupted run left of this video (its sequence folders and id_coeffs)."""
    for split in ("train", "test"):
        split_root = output / "dataset" / split
        for kind in (*LAYOUT_KINDS, EYE_KIND):
            folder = split_root / kind
            if folder.is_dir():
                for seq in folder.iterdir():
                    if seq.name == name or (seq.name.startswith(f"{name}_") and seq.name[len(name) + 1 :].isdigit()):
                        shutil.rmtree(seq, ignore_errors=True)
        (split_root / "id_coeffs" / f"{name}.txt").unlink(missing_ok=True)


class _Clock:
    """CPU seconds per stage of this process (threads of mediapipe included)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.process_time()

    def lap(self, stage: str) -> None:
        now = time.process_time()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def convert_one_video(
    paths: Path | list[Path], name: str, output: Path, settings: VideoSettings, progress: Any = None
) -> tuple[VideoReport, dict[str, Any]]:
    """Convert one identity's video (one .mp4, or its parts in order) into `output` (see the module docstring);
    never raises for a bad video.

    Returns the report and the in-memory results the benchmark compares with the truth: 'box', 'frames' (kept frame
    numbers), 'landmarks' (N, 70, 2) crop pixels, 'fit' (SequenceFit), 'nmfc_paths' (the NMFC file of each)."""
    from src.capture.face_count import FaceCounter
    from src.faceworld.writers.common import world_for
    from src.geometry.nmfc import orthographic_camera_from_misc, render_nmfc
    from src.geometry.sequence_fitting import fit_sequence

    paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    report = VideoReport(name=name, path=", ".join(str(p) for p in paths))
    offsets: list[int] = []
    parts: list[int] = []
    details: dict[str, Any] = {}
    clock = _Clock()
    counters: dict[str, int] = {}
    try:
        # ---- pass 1: face boxes
        numbers, boxes = [], []
        width = height = 0
        try:
            counter: FaceCounter | None = None
            for part, number, frame in decode_parts(paths, counters, offsets):
                clock.lap("decode")
                height, width = frame.shape[:2]
                if counter is None:
                    min_face = settings.min_face_px or math.ceil(0.13 * max(height, width)) + 1
                    counter = FaceCounter(min_face_px=min_face, min_confidence=settings.face_confidence)
                found = counter.find(frame)
                numbers.append(number)
                parts.append(part)
                boxes.append([found[0].x, found[0].y, found[0].x + found[0].width, found[0].y + found[0].height]
                             if found else [np.nan] * 4)  # fmt: skip
                clock.lap("detect")
                if progress is not None:
                    progress(0.5)
            if counter is not None:
                counter.close()
        except av.error.FFmpegError as err:
            if not numbers:
                report.status, report.message = "unreadable", f"{type(err).__name__}: {err}".splitlines()[0][:200]
                return report, details
            counters["corrupt"] = counters.get("corrupt", 0) + 1  # the rest of the file is lost
        report.frames = len(numbers)
        report.corrupt_frames = counters.get("corrupt", 0)
        if not numbers:
            report.status, report.message = "unreadable", "no decodable frame"
            return report, details
        boxes_array = np.array(boxes, dtype=np.float64)
        report.missing_boxes = int(np.isnan(boxes_array[:, 0]).sum())
        if report.missing_boxes == len(numbers) or report.missing_boxes > settings.max_missing_fraction * len(numbers):
            report.status = "no_face"
            report.message = f"a face box in {len(numbers) - report.missing_boxes} of {len(numbers)} frames"
            return report, details
        last_part = len(offsets) - 1
        if settings.split == "train":
            try:
                first_test = first_test_frame(
                    offsets[last_part], max(numbers) + 1 - offsets[last_part], settings.test_fraction,
                    settings.part_frames,
                )  # fmt: skip
            except ValueError as err:
                report.status, report.message = "too_short", str(err)
                return report, details
        else:
            first_test = 0
        box = fixed_square_box(
            boxes_array, settings.smooth_window, settings.smooth_order, settings.box_scale, settings.box_shift_y
        )
        report.box = box
        details["box"] = box
        clock.lap("boxes")

        # ---- pass 2: crops and landmarks
        detector = _build_landmark_detector(settings.landmarks)
        crops: list[np.ndarray] = []
        kept: list[int] = []
        kept_parts: list[int] = []
        landmarks: list[np.ndarray] = []
        second = {"corrupt": 0}
        try:
            for part, number, frame in decode_parts(paths, second, offsets):
                clock.lap("decode")
                crop = crop_square(frame, box, settings.size)
                clock.lap("crop")
                faces = detector.detect(crop)
                clock.lap("landmarks")
                if progress is not None:
                    progress(0.5)
                if not faces:
                    continue
                points = faces[0].landmarks.astype(np.float64)
                if settings.pupils == "centre_of_mass":
                    points = centre_of_mass_pupils(crop, points)
                crops.append(crop)
                kept.append(number)
                kept_parts.append(part)
                landmarks.append(points)
        except av.error.FFmpegError:
            pass  # the same truncation pass 1 met and counted
        finally:
            detector.close()
        report.faceless_frames = report.frames - len(kept)
        if len(kept) == 0:
            report.status, report.message = "no_face", "no landmarks in any frame"
            return report, details
        points = np.stack(landmarks)
        details["frames"], details["landmarks"] = np.array(kept), points

        # ---- fitting
        world = world_for()
        mm = world.model
        fit = fit_sequence(
            mm, points, identity_frames=settings.identity_frames, iterations=settings.fit_iterations,
            expression_iterations=settings.expression_iterations, smooth_window=settings.coefficient_smoothing,
            used_points=np.arange(68) >= (0 if settings.fit_jaw else 17),
        )  # fmt: skip
        details["fit"] = fit
        report.fit_error_px = float(fit.reprojection_error_px.mean())
        clock.lap("fit")

        # ---- write
        _clear_video_outputs(output, name)
        dataset = output / "dataset"
        identity_shape = mm.identity_shape(fit.identity).astype(np.float64)
        colors = world.nmfc_colors
        details["nmfc_paths"] = []
        for k, number in enumerate(kept):
            split = "test" if kept_parts[k] == last_part and number >= first_test else "train"
            seq = name if split == "test" else train_sequence_name(name, number // settings.part_frames)
            stem = f"{number:06d}"
            translation = np.array([fit.offset[k, 0], fit.offset[k, 1], NOMINAL_DEPTH_MM])
            camera = orthographic_camera_from_misc(
                fit.scale[k], fit.rotation[k], translation, settings.size, settings.size
            )
            vertices = identity_shape + mm.expression_offsets(fit.expression[k])
            nmfc = render_nmfc(vertices, mm.triangles, colors, camera)
            clock.lap("nmfc")
            root = dataset / split
            write_image_atomic(root / "images" / seq / f"{stem}.png", cv2.cvtColor(crops[k], cv2.COLOR_RGB2BGR))
            write_image_atomic(root / "nmfcs" / seq / f"{stem}.png", cv2.cvtColor(nmfc, cv2.COLOR_RGB2BGR))
            details["nmfc_paths"].append(root / "nmfcs" / seq / f"{stem}.png")
            write_text_atomic(root / "landmarks70" / seq / f"{stem}.txt", savetxt_text(points[k]))
            write_text_atomic(
                root / "misc" / seq / f"{stem}.txt", _misc_text(fit.scale[k], fit.rotation[k], translation)
            )
            write_text_atomic(root / "exp_coeffs" / seq / f"{stem}.txt", savetxt_text(fit.expression[k]))
            if settings.eye_gaze:
                eyes = draw_eye_image(points[k], settings.size)
                write_image_atomic(root / EYE_KIND / seq / f"{stem}.png", cv2.cvtColor(eyes, cv2.COLOR_RGB2BGR))
            if split == "train":
                report.train_frames += 1
            else:
                report.test_frames += 1
            clock.lap("write")
        for split in ("train", "test"):
            write_text_atomic(dataset / split / "id_coeffs" / f"{name}.txt", savetxt_text(fit.identity))
        report.status = "ok"
    except Exception as err:  # one bad video must not stop a batch; it is reported instead
        report.status = "failed"
        report.message = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        log.exception(f"{report.path}: conversion failed")
    finally:
        clock.lap("write")
        report.seconds = {k: round(v, 4) for k, v in clock.seconds.items()}
    return report, details


def _misc_text(scale: float, rotation: np.ndarray, translation: np.ndarray) -> str:
    return savetxt_text([scale]) + savetxt_text(rotation) + savetxt_text(translation)


# ------------------------------------------------------------------------------------------------ many videos
_PROGRESS_QUEUE: Any = None


def _worker_init(queue: Any) -> None:
    global _PROGRESS_QUEUE
    cv2.setNumThreads(1)
    _PROGRESS_QUEUE = queue


def _worker(task: tuple[str, list[str], str, VideoSettings]) -> VideoReport:
    name, parts, output, settings = task
    pending = [0.0]

    def progress(amount: float) -> None:
        pending[0] += amount
        if pending[0] >= 10 and _PROGRESS_QUEUE is not None:
            _PROGRESS_QUEUE.put((name, pending[0]))
            pending[0] = 0.0

    report, _ = convert_one_video([Path(p) for p in parts], name, Path(output), settings, progress)
    _mark_done(Path(output), report)
    return report


def _state(output: Path) -> Path:
    return output / STATE_DIR


def _mark_done(output: Path, report: VideoReport) -> None:
    write_text_atomic(_state(output) / "done" / f"{report.name}.json", json.dumps(asdict(report)) + "\n")


def _load_done(output: Path, name: str) -> VideoReport | None:
    try:
        data = json.loads((_state(output) / "done" / f"{name}.json").read_text())
        data["box"] = tuple(data.get("box", (0, 0, 0)))
        return VideoReport(**data)
    except (OSError, ValueError, TypeError):
        return None


def _estimated_frames(path: Path) -> int:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.time_base and stream.average_rate:
                return int(float(stream.duration * stream.time_base) * float(stream.average_rate))
    except (av.error.FFmpegError, IndexError):
        pass
    return 0


def _begin(output: Path, settings: VideoSettings, overwrite: bool) -> None:
    """Record the settings before any work, or check them when resuming (UserError, touching nothing)."""
    if output.exists() and not output.is_dir():
        raise UserError(f"output: {output} exists and is not a folder")
    record_path = _state(output) / "settings.json"
    record = settings.record()
    if overwrite and output.is_dir():
        shutil.rmtree(_state(output), ignore_errors=True)
        shutil.rmtree(output / "dataset", ignore_errors=True)
    elif output.is_dir() and any(output.iterdir()):
        try:
            previous = json.loads(record_path.read_text())
        except (OSError, ValueError):
            raise UserError(
                f"output: {output} is not empty and holds no video conversion ({STATE_DIR}/settings.json); choose "
                "another folder or set overwrite=true"
            ) from None
        differing = sorted(k for k in set(previous) | set(record) if previous.get(k) != record.get(k))
        if differing:
            raise UserError(
                f"output: {output} was converted with other settings ({', '.join(differing)}); rerun with the same "
                "settings to resume, or set overwrite=true"
            )
        return
    write_text_atomic(record_path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def run_video_conversion(
    input: str | os.PathLike,
    output: str | os.PathLike,
    settings: VideoSettings,
    *,
    compression: str | None = None,
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> ConversionReport:
    """Convert every video of `input` into the Head2Head layout under `output`; see the module docstring."""
    settings.check()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise UserError(f"workers must be an integer >= 0, got {workers!r}")
    videos = find_videos(input, compression)
    output = Path(output)
    _begin(output, settings, overwrite)
    reports: dict[str, VideoReport] = {}
    todo = []
    for name, path in videos.items():
        done = _load_done(output, name)
        if done is not None:
            reports[name] = done
        else:
            todo.append((name, [str(p) for p in path], str(output), settings))
    expected = {name: sum(_estimated_frames(Path(p)) for p in paths) for name, paths, _, _ in todo}
    shown = dict.fromkeys(expected, 0.0)  # progress shown per video (a finished video completes its share)
    bar = tqdm(total=sum(expected.values()), desc="videos -> Head2Head", unit="frame", disable=not progress)
    bar.set_postfix(videos=f"{len(reports)}/{len(videos)}")

    def advance(name: str, amount: float) -> None:
        amount = min(amount, expected[name] - shown[name])
        if amount > 0:
            shown[name] += amount
            bar.update(amount)

    def finished(report: VideoReport) -> None:
        reports[report.name] = report
        advance(report.name, expected[report.name])
        bar.set_postfix(videos=f"{len(reports)}/{len(videos)}")

    if workers <= 1 or len(todo) <= 1:
        _worker_init(None)

        for name, path, out, video_settings in todo:
            report, _ = convert_one_video(
                [Path(p) for p in path],
                name,
                Path(out),
                video_settings,
                lambda amount, name=name: advance(name, amount),
            )
            _mark_done(Path(out), report)
            finished(report)
    else:
        # spawn, not fork: this process may already run threads (the progress drain, tqdm, codec or BLAS pools), and
        # a child forked while one of them holds a lock waits for it forever.
        context = mp.get_context("spawn")
        queue = context.Queue()
        stop = threading.Event()

        def drain() -> None:
            while not stop.is_set() or not queue.empty():
                try:
                    advance(*queue.get(timeout=0.2))
                except Exception:  # queue.Empty (and a closed queue at shutdown)
                    continue

        thread = threading.Thread(target=drain, daemon=True)
        thread.start()
        try:
            with context.Pool(processes=min(workers, len(todo)), initializer=_worker_init, initargs=(queue,)) as pool:
                for report in pool.imap_unordered(_worker, todo):
                    finished(report)
        finally:
            stop.set()
            thread.join(timeout=5)
    bar.close()
    result = ConversionReport(str(output), [reports[name] for name in videos])
    write_text_atomic(output / REPORT_FILE, json.dumps(result.to_json(), indent=2) + "\n")
    return result
