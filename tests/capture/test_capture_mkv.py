"""Recordings in the Azure Kinect recorder's layout: our EBML writer, read back through FFmpeg (PyAV)."""

from __future__ import annotations

import struct

import av
import numpy as np
import pytest

from src.capture.calibration import kinect_like_calibration
from src.capture.mkv import KinectRecordingConfig, KinectRecordingReader, KinectRecordingWriter, read_recording


def _frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:64]
    for i in range(n):
        colour = np.stack([(x * 4 + i * 10) % 256, (y * 5) % 256, np.full_like(x, 90 + i)], -1).astype(np.uint8)
        depth = rng.integers(0, 65536, (24, 32), dtype=np.uint16)  # full 16-bit range: byte order must survive
        ir = rng.integers(0, 65536, (24, 32), dtype=np.uint16)
        yield colour, depth, ir


@pytest.fixture()
def recording(tmp_path):
    calibration = kinect_like_calibration((64, 48), (32, 24))
    path = tmp_path / "take.mkv"
    frames = list(_frames(4))
    config = KinectRecordingConfig(color_mode="CUSTOM", depth_mode="CUSTOM", depth_delay_ns=0)
    with KinectRecordingWriter(path, calibration, config) as writer:
        for colour, depth, ir in frames:
            writer.write_capture(colour, depth, ir)
    return path, calibration, frames


def test_round_trip_is_bit_exact_for_depth_and_ir(recording):
    path, calibration, frames = recording
    read_calibration, captures = read_recording(path)
    assert read_calibration.allclose(calibration)
    assert [c.index for c in captures] == [0, 1, 2, 3]
    assert [c.timestamp_us for c in captures] == [0, 66667, 133333, 200000]
    for (colour, depth, ir), capture in zip(frames, captures):
        np.testing.assert_array_equal(capture.depth, depth)
        np.testing.assert_array_equal(capture.ir, ir)
        assert capture.color.shape == colour.shape
        assert np.abs(capture.color.astype(int) - colour).mean() < 6  # lossy MJPEG (q 95, 4:2:0 chroma)


def test_file_has_the_recorder_track_layout(recording):
    path = recording[0]
    data = path.read_bytes()
    assert data.count(b"V_MS/VFW/FOURCC") == 3  # all tracks in VFW mode, like k4arecorder
    header = data[data.index(b"b16g") - 16 : data.index(b"b16g") + 20]
    size, width, height, planes, bits, fourcc = struct.unpack("<IiiHH4s", header[:20])
    assert (size, width, height, planes, bits, fourcc) == (40, 32, 24, 1, 16, b"b16g")
    assert b"MJPG" in data
    with av.open(str(path)) as container:
        names = [s.metadata.get("title") for s in container.streams.video]
        assert names == ["COLOR", "DEPTH", "IR"]
        assert container.streams.video[1].codec_context.format.name == "gray16be"  # b16g = big-endian
        assert container.streams.video[1].metadata["K4A_DEPTH_MODE"] == "CUSTOM"
        assert container.streams.video[2].metadata["K4A_IR_MODE"] == "ACTIVE"
        assert container.metadata["K4A_WIRED_SYNC_MODE"] == "STANDALONE"
        attachment = container.streams.attachments[0]
        assert (
            attachment.name == "calibration.json" and attachment.metadata["K4A_CALIBRATION_FILE"] == "calibration.json"
        )


def test_depth_delay_is_undone_when_pairing_images(tmp_path):
    calibration = kinect_like_calibration((64, 48), (32, 24))
    path = tmp_path / "delayed.mkv"
    config = KinectRecordingConfig(color_mode="CUSTOM", depth_mode="CUSTOM", depth_delay_ns=20_000_000)
    frames = list(_frames(3, seed=3))
    with KinectRecordingWriter(path, calibration, config) as writer:
        for colour, depth, ir in frames:
            writer.write_capture(colour, depth, ir)
    _, captures = read_recording(path)
    assert len(captures) == 3
    for (_, depth, _), capture in zip(frames, captures):
        np.testing.assert_array_equal(capture.depth, depth)


def test_aborted_writer_leaves_no_file(tmp_path):
    calibration = kinect_like_calibration((64, 48), (32, 24))
    path = tmp_path / "broken.mkv"
    with (
        pytest.raises(RuntimeError),
        KinectRecordingWriter(path, calibration, KinectRecordingConfig("CUSTOM", "CUSTOM")) as w,
    ):
        colour, depth, ir = next(_frames(1))
        w.write_capture(colour, depth, ir)
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_images(tmp_path):
    calibration = kinect_like_calibration((64, 48), (32, 24))
    with KinectRecordingWriter(tmp_path / "x.mkv", calibration, KinectRecordingConfig("CUSTOM", "CUSTOM")) as writer:
        colour, depth, ir = next(_frames(1))
        with pytest.raises(ValueError, match="depth must be 24x32 uint16"):
            writer.write_capture(colour, depth.astype(np.int32), ir)
        writer.write_capture(colour, depth, ir)


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.mkv"):
        KinectRecordingReader(tmp_path / "missing.mkv")
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"not a matroska file at all")
    with pytest.raises(ValueError, match=r"junk\.mkv"):
        KinectRecordingReader(junk)
    # A plain video without the Kinect tracks
    plain = tmp_path / "plain.mkv"
    with av.open(str(plain), "w") as container:
        stream = container.add_stream("mjpeg", rate=15)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ValueError, match=r"plain.mkv: missing Azure Kinect track"):
        KinectRecordingReader(plain)
