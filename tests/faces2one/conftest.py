"""Small FaceWorld videos for the faces2one tests (PyAV + FaceWorld's talking-head writer) and a stand-in network.

The stand-in network answers every crop with the position map of FaceWorld's neutral face framed by PRNet's crop
rule (what a network that learned only the mean face would say): the app's mechanics (tracking, rendering, videos,
audio, statistics) run for real without a trained model."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from src.apps.faces2one.network import mean_face_position_map
from src.faceworld.writers.videos import write_talking_head_video

MAP_SIZE = 64
VIDEO_SIZE = (256, 192)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):  # tests/conftest.py
    yield


class MeanFaceNetwork:
    """PositionMapNetwork's interface: (B,S,S,3) crops -> (B,S,S,3) the neutral face's crop position map."""

    def __init__(self, size: int = MAP_SIZE) -> None:
        self.map, self.uv = mean_face_position_map(size)
        self.size = size
        self.calls = 0

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.repeat(self.map[None], len(crops), 0)


def add_audio(video: Path, output: Path, seconds: float) -> Path:
    """`video` re-muxed with a 440 Hz AAC tone of `seconds` (stereo, 44.1 kHz)."""
    with av.open(str(video)) as source, av.open(str(output), "w", format="mp4") as out:
        out_video = out.add_stream_from_template(source.streams.video[0])
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "stereo"
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out_video
                out.mux(packet)
        samples = int(seconds * 44100)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = np.ascontiguousarray(np.stack([tone[start : start + 1024]] * 2))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = 44100
            frame.pts = start
            frame.time_base = Fraction(1, 44100)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return output


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faces2one_videos")
    out = {}
    write_talking_head_video(folder / "a.mp4", 11, 6, size=VIDEO_SIZE, fps=25, seed=0)
    write_talking_head_video(folder / "b_silent.mp4", 12, 8, size=VIDEO_SIZE, fps=25, seed=1)
    out["source"] = folder / "a.mp4"
    out["reference"] = add_audio(folder / "b_silent.mp4", folder / "b.mp4", 8 / 25)
    # (12.5 fps would be the classic half rate, but videos.py cannot write a non-integer rate today)
    write_talking_head_video(folder / "slow.mp4", 13, 3, size=VIDEO_SIZE, fps=12, seed=2)
    out["slow"] = folder / "slow.mp4"
    write_talking_head_video(folder / "empty_room.mp4", 14, 3, size=VIDEO_SIZE, fps=25, seed=3, absent_frames=(0, 1, 2))
    out["no_face"] = folder / "empty_room.mp4"
    return out


@pytest.fixture(scope="session")
def mean_face_network() -> MeanFaceNetwork:
    return MeanFaceNetwork()
