"""Video in and out through PyAV: probing (one clear error for an unreadable or empty file), frames by index
(sequential decoding, reopened only when a looped index goes backwards), H.264 writing and audio copying.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from src.utils.errors import UserError


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    has_audio: bool


def _open(path: Path, what: str) -> av.container.InputContainer:
    if not path.is_file():
        raise UserError(f"{what}={path}: file not found")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise UserError(f"{what}={path}: not a readable video ({err})") from None


def probe_video(path: str | os.PathLike, what: str) -> VideoInfo:
    """Size, frame rate, decodable frame count and audio presence; a UserError naming `what` (the config key) for a
    missing, unreadable or zero-length video. Counting decodes the whole video once (container frame counts lie)."""
    path = Path(path)
    container = _open(path, what)
    try:
        if not container.streams.video:
            raise UserError(f"{what}={path}: has no video frames (no video stream)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        count = 0
        try:
            for _ in container.decode(stream):
                count += 1
        except av.error.FFmpegError as err:
            if count == 0:
                raise UserError(f"{what}={path}: not a readable video ({err})") from None
        if count == 0:
            raise UserError(f"{what}={path}: has no video frames (a zero-length video)")
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = float(rate) if rate else 25.0
        return VideoInfo(path, int(width), int(height), fps, count, bool(container.streams.audio))
    finally:
        container.close()


class FrameReader:
    """RGB frames of a video by index; sequential reads decode once, a smaller index reopens the file."""

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._next = 0

    def _restart(self) -> None:
        self.close()
        self._container = av.open(str(self.info.path))
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)
        self._next = 0

    def frame(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame `index` (0 <= index < num_frames)."""
        if not 0 <= index < self.info.num_frames:
            raise IndexError(f"{self.info.path}: frame {index} outside [0, {self.info.num_frames})")
        if self._frames is None or index < self._next:
            self._restart()
        assert self._frames is not None
        while True:
            frame = next(self._frames)
            self._next += 1
            if self._next - 1 == index:
                return frame.to_ndarray(format="rgb24")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames = None, None


def fps_fraction(fps: float) -> Fraction:
    """An exact frame rate for the encoder (25 -> 25/1, 29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """H.264 (yuv420p) .mp4 writer of RGB frames at a constant frame rate; sizes are rounded down to even."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float, crf: int = 18) -> None:
        self.path = Path(path)
        self.width, self.height = width - width % 2, height - height % 2
        self.container = av.open(str(self.path), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=fps_fraction(fps))
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.stream.codec_context.options = {"crf": str(int(crf)), "preset": "ultrafast", "threads": "1"}
        self.count = 0

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24")
        frame.pts = self.count
        self.count += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def mux_audio(video_path: Path, audio_source: Path, output: Path) -> bool:
    """Copy `video_path`'s video and `audio_source`'s first audio stream (packets as they are, no re-encoding) into
    `output`; the audio is cut at the video's duration. Returns False (and writes nothing) when there is no audio."""
    with av.open(str(audio_source)) as source:
        if not source.streams.audio:
            return False
        with av.open(str(video_path)) as video, av.open(str(output), mode="w", format="mp4") as out:
            in_video, in_audio = video.streams.video[0], source.streams.audio[0]
            out_video = out.add_stream_from_template(in_video)
            out_audio = out.add_stream_from_template(in_audio)
            duration = float(in_video.duration * in_video.time_base) if in_video.duration else None
            for packet in video.demux(in_video):
                if packet.dts is None:
                    continue
                packet.stream = out_video
                out.mux(packet)
            for packet in source.demux(in_audio):
                if packet.dts is None:
                    continue
                if duration is not None and packet.pts is not None and packet.pts * in_audio.time_base > duration:
                    break
                packet.stream = out_audio
                out.mux(packet)
    return True
