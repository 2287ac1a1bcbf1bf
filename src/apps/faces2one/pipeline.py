"""faces2one: one video keeps its pose, expression, background, frame rate, length and audio; the other gives its
face texture. Per output frame (kept frame i, texture frame j):

    detect / track (CropTracker) -> PRNet's crop -> position maps (one network call for both frames) -> temporal
    smoothing of the vertices -> texture of frame j remapped into UV -> z-buffer render onto frame i's surface ->
    mask erosion -> Poisson blending -> (optional exposure adjustment helps detection and the network only)

Lengths and frame rates: the output has the kept video's frames, frame rate, duration and audio. Kept frame i (time
i / fps_kept) takes texture frame j = floor(i x fps_texture / fps_kept), looped (modulo the texture video's frame
count) when the texture video is shorter. A texture frame's UV texture is computed once and reused.
Failures: a kept frame whose face is not found (no detection yet, or tracking lost and no re-detection) is written
unchanged and counted; a texture frame without a face reuses the last good texture (counted), and before any good
texture the kept frame passes through. Both videos are probed first: a missing, unreadable or zero-length file, or
a video in which the detector finds no face on any of `probe_frames` evenly spread frames, is one error before any
output is written. Outputs go to temporary names and are renamed only when complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from src.apps.faces2one.network import PositionMapNetwork
from src.apps.faces2one.transfer import (
    CropTracker,
    UVSurface,
    VertexSmoother,
    blend,
    exposure_adjusted,
    render_texture,
    take_texture,
)
from src.apps.faces2one.video import FrameReader, VideoInfo, VideoWriter, mux_audio, probe_video
from src.utils.errors import UserError

log = logging.getLogger(__name__)
KEEP_CHOICES = ("reference", "source")


@dataclass
class TransferSettings:
    """The app's settings (conf/faces2one.yaml documents each)."""

    source: str
    reference: str
    output: str
    prnet: str
    keep: str = "reference"
    uv_data: str | None = None
    detector: str = "mediapipe"
    redetect_every: int = 10
    probe_frames: int = 5
    smoothing_window: int = 3
    smoothing_decay: float = 0.5
    smooth_texture_geometry: bool = True
    erosion: float = 0.03
    poisson: bool = True
    exposure: bool = False
    preview: bool = True
    crf: int = 18
    threads: int = 1
    max_frames: int | None = None

    def check(self) -> None:
        if self.keep not in KEEP_CHOICES:
            raise UserError(f"keep must be one of {KEEP_CHOICES}, got {self.keep!r}")
        if Path(self.output).suffix.lower() != ".mp4":
            raise UserError(f"output={self.output}: the output must be an .mp4 file")
        if self.smoothing_window < 1 or not 0.0 < self.smoothing_decay <= 1.0:
            raise UserError("smoothing.window must be >= 1 and smoothing.decay in (0, 1]")
        if not 0.0 <= self.erosion < 0.5:
            raise UserError(f"erosion must be in [0, 0.5) (a fraction of the face size), got {self.erosion}")
        if self.redetect_every < 1 or self.probe_frames < 1:
            raise UserError("redetect_every and probe_frames must be >= 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise UserError(f"max_frames must be >= 1 or null, got {self.max_frames}")


@dataclass
class TransferStats:
    frames: int = 0
    transferred: int = 0
    passed_through: int = 0
    texture_failures: int = 0
    reused_textures: int = 0
    detections: dict[str, int] = field(default_factory=dict)
    fps_kept: float = 0.0
    fps_texture: float = 0.0
    audio: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    frames_per_s_wall: float = 0.0
    cpu_ms_per_frame: dict[str, float] = field(default_factory=dict)


def texture_index(kept_index: int, fps_kept: float, fps_texture: float, texture_frames: int) -> int:
    """The texture frame shown with kept frame `kept_index` (module docstring: same time, looped)."""
    return math.floor(kept_index * fps_texture / fps_kept + 1e-6) % texture_frames


class _Timer:
    """CPU seconds per stage (time.process_time: what the stage cost, whatever else the machine runs)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self._stage: str | None = None
        self._start = 0.0

    def __call__(self, stage: str) -> _Timer:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._start = time.process_time()

    def __exit__(self, *exc: object) -> None:
        assert self._stage is not None
        self.cpu[self._stage] += time.process_time() - self._start


def _has_face(detector, reader: FrameReader, count: int, exposure: bool) -> bool:
    total = reader.info.num_frames
    for index in sorted({int(i) for i in np.linspace(0, total - 1, min(count, total))}):
        frame = reader.frame(index)
        if detector.detect(exposure_adjusted(frame) if exposure else frame):
            return True
    return False


class _VideoSide:
    """One input video's tracker and smoother."""

    def __init__(self, info: VideoInfo, detector, size: int, settings: TransferSettings, smooth: bool) -> None:
        self.reader = FrameReader(info)
        self.tracker = CropTracker(detector, size, settings.redetect_every)
        window = settings.smoothing_window if smooth else 1
        self.smoother = VertexSmoother(window, settings.smoothing_decay)


def run_transfer(settings: TransferSettings, detector=None, network: PositionMapNetwork | None = None) -> dict:
    """Run the app (module docstring); returns the statistics also written to `<output stem>_stats.json`.
    `detector` / `network` may be given (tests, benchmarks); by default they are built from the settings."""
    settings.check()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    kept_key, taken_key = (settings.keep, "source" if settings.keep == "reference" else "reference")
    kept_info = probe_video(getattr(settings, kept_key), kept_key)
    taken_info = probe_video(getattr(settings, taken_key), taken_key)
    network = network or PositionMapNetwork(settings.prnet, settings.threads, settings.uv_data)
    if detector is None:
        from src.landmarks.detectors.base import build_detector

        try:
            detector = build_detector(settings.detector)
        except (ValueError, ImportError) as err:
            raise UserError(f"detector={settings.detector}: {err}") from None
    surface = UVSurface.from_uv(network.uv)
    kept = _VideoSide(kept_info, detector, network.size, settings, smooth=True)
    taken = _VideoSide(taken_info, detector, network.size, settings, smooth=settings.smooth_texture_geometry)
    for side, key in ((kept, kept_key), (taken, taken_key)):
        if not _has_face(detector, side.reader, settings.probe_frames, settings.exposure):
            checked = min(settings.probe_frames, side.reader.info.num_frames)
            raise UserError(f"{key}={side.reader.info.path}: no face found on {checked} evenly spread frames")
    output = Path(settings.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    stem = output.with_suffix("")
    finals = {"video": output, "stats": Path(f"{stem}_stats.json")}
    if settings.preview:
        finals["preview"] = Path(f"{stem}_preview.mp4")
    partial = {name: path.with_name(f".{path.name}.partial{path.suffix}") for name, path in finals.items()}
    partial["silent"] = output.with_name(f".{output.name}.silent.mp4")
    num_frames = min(kept_info.num_frames, settings.max_frames or kept_info.num_frames)
    stats = TransferStats(fps_kept=kept_info.fps, fps_texture=taken_info.fps)
    timer = _Timer()
    writer = preview = None
    try:
        writer = VideoWriter(partial["silent"], kept_info.width, kept_info.height, kept_info.fps, settings.crf)
        if settings.preview:
            half_w = (kept_info.width // 2) // 2 * 2
            half_h = (kept_info.height // 2) // 2 * 2
            preview = VideoWriter(partial["preview"], 3 * half_w, half_h, kept_info.fps, 23)
        textures: dict[int, np.ndarray] = {}
        for index in range(num_frames):
            j = texture_index(index, kept_info.fps, taken_info.fps, taken_info.num_frames)
            with timer("decode"):
                frame = kept.reader.frame(index)
                other = taken.reader.frame(j) if j not in textures else None
            out = _one_frame(frame, other, j, kept, taken, textures, network, surface, settings, timer, stats)
            stats.frames += 1
            with timer("encode"):
                writer.write(out if out is not None else frame)
                if preview is not None:
                    shown = taken.reader.frame(j) if other is None else other
                    row = [frame, shown, out if out is not None else frame]
                    cell = (preview.width // 3, preview.height)
                    preview.write(np.concatenate([cv2.resize(im, cell, interpolation=cv2.INTER_AREA) for im in row], 1))
        writer.close()
        writer = None
        if preview is not None:
            preview.close()
            preview = None
        with timer("encode"):
            stats.audio = mux_audio(partial["silent"], kept_info.path, partial["video"])
        if not stats.audio:
            os.replace(partial["silent"], partial["video"])
        stats.detections = {kept_key: kept.tracker.detections, taken_key: taken.tracker.detections}
        stats.wall_s = time.perf_counter() - wall0
        stats.cpu_s = time.process_time() - cpu0
        stats.frames_per_s_wall = stats.frames / max(stats.wall_s, 1e-9)
        stats.cpu_ms_per_frame = {k: 1000.0 * v / max(stats.frames, 1) for k, v in timer.cpu.items()}
        record = {
            "kept": kept_key,
            "kept_video": str(kept_info.path),
            "texture_video": str(taken_info.path),
            "rule": "output = kept video's frames, fps, duration and audio; texture frame floor(i * fps_texture / "
            "fps_kept), looped",
            **asdict(stats),
        }
        partial["stats"].write_text(json.dumps(record, indent=2) + "\n")
        for name, path in finals.items():
            os.replace(partial[name], path)
        return record
    finally:
        for handle in (writer, preview):
            if handle is not None:
                with contextlib.suppress(Exception):  # already failing: the original error matters
                    handle.close()
        for path in partial.values():
            if path.exists():
                path.unlink()
        kept.reader.close()
        taken.reader.close()


def _position_maps(frames: list[tuple[_VideoSide, np.ndarray]], network, surface, settings, timer) -> list:
    """Frame-pixel position maps (or None) of several frames: crops found by their trackers, one network call."""
    boxes, crops = [], []
    for side, frame in frames:
        with timer("detect_track"):
            seen = exposure_adjusted(frame) if settings.exposure else frame
            box = side.tracker.crop_box(seen)
        if box is not None:
            with timer("crop"):
                crops.append(side.tracker.crop(seen, box))
        boxes.append(box)
    maps: list[np.ndarray | None] = [None] * len(frames)
    if crops:
        with timer("prnet"):
            predicted = network(np.stack(crops))
        k = 0
        for i, ((side, _), box) in enumerate(zip(frames, boxes)):
            if box is None:
                side.smoother.reset()
                continue
            with timer("crop"):
                frame_map = side.tracker.update(predicted[k], box, surface)
            k += 1
            if frame_map is None:
                side.smoother.reset()
                continue
            with timer("smooth"):
                maps[i] = side.smoother(frame_map)
    else:
        for side, _ in frames:
            side.smoother.reset()
    return maps


def _one_frame(frame, other, j, kept, taken, textures, network, surface, settings, timer, stats) -> np.ndarray | None:
    """The output frame, or None when the kept frame passes through."""
    pairs = [(kept, frame)] + ([(taken, other)] if other is not None else [])
    maps = _position_maps(pairs, network, surface, settings, timer)
    if other is not None:
        if maps[1] is not None:
            with timer("texture"):
                textures[j], _ = take_texture(other, maps[1], surface)
        else:
            stats.texture_failures += 1
    use = textures.get(j)
    if use is None and textures:
        use = textures[next(reversed(textures))]  # the last good texture
        stats.reused_textures += 1
    if maps[0] is None or use is None:
        stats.passed_through += 1
        return None
    out = compose_frame(frame, use, maps[0], surface, settings, timer)
    stats.transferred += 1
    return out


def compose_frame(
    frame: np.ndarray,
    texture: np.ndarray,
    frame_map: np.ndarray,
    surface: UVSurface,
    settings: TransferSettings,
    timer: _Timer | None = None,
) -> np.ndarray:
    """The last steps of a frame: the UV texture rendered (z-buffer) on the kept frame's position map (frame
    pixels), mask erosion, Poisson blending or a paste. Public so a benchmark can feed it TRUE position maps and
    separate the network's error from these steps' own."""
    timer = timer or _Timer()
    with timer("render"):
        height, width = frame.shape[:2]
        rendered, covered, origin = render_texture(texture, frame_map, surface, width, height)
    with timer("blend"):
        erosion = round(settings.erosion * surface.face_size(frame_map))
        out, _ = blend(frame, rendered, covered, origin, erosion, settings.poisson)
    return out
