"""Azure Kinect recordings (.mkv): a writer in the official recorder's track layout and readers for it.

Layout (as k4arecorder writes it, see the Azure Kinect "recording file format" docs): a Matroska file with
video tracks named COLOR, DEPTH and IR, all stored in VFW mode (CodecID V_MS/VFW/FOURCC, a BITMAPINFOHEADER as
CodecPrivate): COLOR with FOURCC 'MJPG' (one JPEG per frame), DEPTH and IR with 'b16g' (raw 16-bit grayscale,
big-endian; depth in mm). Tags: K4A_COLOR_TRACK / K4A_DEPTH_TRACK / K4A_IR_TRACK (targeted at the track, value =
its TrackUID), K4A_COLOR_MODE ('MJPG_3072P'), K4A_DEPTH_MODE ('NFOV_UNBINNED'), K4A_IR_MODE ('ACTIVE'),
K4A_DEPTH_DELAY_NS, K4A_WIRED_SYNC_MODE, K4A_START_OFFSET_NS, K4A_CALIBRATION_FILE (targeted at the attachment);
the device's raw calibration is attached as `calibration.json`. Block timestamps are microseconds since the
start offset.

Why our own EBML writer: FFmpeg (and so PyAV) refuses to mux a 'b16g' FOURCC for raw video in Matroska and
writes MJPEG as native V_MJPEG, not the recorder's VFW track. Writing the few Matroska elements ourselves keeps
the exact layout; reading goes through FFmpeg's demuxer (PyAV), an independent parser, or pyk4a (the SDK)
when it is installed.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from src.capture.calibration import DeviceCalibration
from src.io.atomic import atomic_path
from src.utils.errors import UserError

TRACK_NAMES = ("COLOR", "DEPTH", "IR")
CALIBRATION_ATTACHMENT = "calibration.json"
TIMESTAMP_SCALE_NS = 1000  # block timestamps in microseconds, like the recorder

# Matroska element IDs (the subset the recorder's layout needs).
EBML, EBML_VERSION, EBML_READ_VERSION, EBML_MAX_ID, EBML_MAX_SIZE = 0x1A45DFA3, 0x4286, 0x42F7, 0x42F2, 0x42F3
DOC_TYPE, DOC_TYPE_VERSION, DOC_TYPE_READ_VERSION = 0x4282, 0x4287, 0x4285
SEGMENT, SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION, VOID = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC, 0xEC
INFO, TIMESTAMP_SCALE, MUXING_APP, WRITING_APP, TITLE, DURATION = 0x1549A966, 0x2AD7B1, 0x4D80, 0x5741, 0x7BA9, 0x4489
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_UID, TRACK_TYPE, FLAG_LACING = 0x1654AE6B, 0xAE, 0xD7, 0x73C5, 0x83, 0x9C
TRACK_NAME, CODEC_ID, CODEC_PRIVATE, DEFAULT_DURATION = 0x536E, 0x86, 0x63A2, 0x23E383
VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT = 0xE0, 0xB0, 0xBA
ATTACHMENTS, ATTACHED_FILE, FILE_NAME, FILE_MIME, FILE_DATA, FILE_UID = (
    0x1941A469,
    0x61A7,
    0x466E,
    0x4660,
    0x465C,
    0x46AE,
)
TAGS, TAG, TARGETS, TARGET_TYPE_VALUE, TAG_TRACK_UID, TAG_ATTACHMENT_UID = (
    0x1254C367,
    0x7373,
    0x63C0,
    0x68CA,
    0x63C5,
    0x63C6,
)
SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x67C8, 0x45A3, 0x4487
CLUSTER, CLUSTER_TIMESTAMP, SIMPLE_BLOCK = 0x1F43B675, 0xE7, 0xA3
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS, CUE_TRACK, CUE_CLUSTER_POSITION = (
    0x1C53BB6B,
    0xBB,
    0xB3,
    0xB7,
    0xF7,
    0xF1,
)


# --- EBML encoding ----------------------------------------------------------------------------------------------
def _id_bytes(element_id: int) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")


def _size_bytes(size: int, width: int | None = None) -> bytes:
    """EBML variable-length size; `width` forces a fixed length (for sizes patched in later)."""
    if width is None:
        width = next(n for n in range(1, 9) if size < (1 << (7 * n)) - 1)
    return ((1 << (7 * width)) | size).to_bytes(width, "big")


def element(element_id: int, payload: bytes) -> bytes:
    return _id_bytes(element_id) + _size_bytes(len(payload)) + payload


def uint_element(element_id: int, value: int) -> bytes:
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def str_element(element_id: int, value: str) -> bytes:
    return element(element_id, value.encode("utf-8"))


def float_element(element_id: int, value: float) -> bytes:
    return element(element_id, struct.pack(">d", value))


def bitmap_info_header(width: int, height: int, fourcc: str, bit_count: int, image_size: int) -> bytes:
    """The 40-byte Windows BITMAPINFOHEADER the recorder stores as each track's CodecPrivate."""
    return struct.pack("<IiiHH4sIiiII", 40, width, height, 1, bit_count, fourcc.encode("ascii"), image_size, 0, 0, 0, 0)


@dataclass
class _Track:
    number: int
    uid: int
    name: str
    width: int
    height: int
    fourcc: str
    bit_count: int


@dataclass
class KinectRecordingConfig:
    """What the recorder stores about the capture configuration (tags)."""

    color_mode: str = "MJPG_3072P"
    depth_mode: str = "NFOV_UNBINNED"
    fps: int = 15
    depth_delay_ns: int = 0
    wired_sync_mode: str = "STANDALONE"
    extra_tags: dict[str, str] = field(default_factory=dict)


class KinectRecordingWriter:
    """Write an Azure Kinect style .mkv (COLOR MJPG + DEPTH/IR b16g + calibration.json), one capture at a time.

    The file appears at `path` only when `close()` succeeds (temporary name, then rename), so a killed writer
    never leaves a truncated recording behind.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        calibration: DeviceCalibration,
        config: KinectRecordingConfig | None = None,
        jpeg_quality: int = 95,
        start_offset_us: int = 200_000,
    ) -> None:
        self.path = Path(path)
        self.calibration = calibration
        self.config = config or KinectRecordingConfig()
        if not 0 <= self.config.depth_delay_ns < 32_768_000:
            # depth / IR blocks sit at the colour time + delay inside one cluster: a signed 16-bit microsecond offset
            raise ValueError(f"depth_delay_ns must be in [0, 32.768 ms), got {self.config.depth_delay_ns} ns")
        self.jpeg_quality = int(jpeg_quality)
        self.start_offset_us = int(start_offset_us)
        cw, ch, dw, dh = (
            calibration.color.width,
            calibration.color.height,
            calibration.depth.width,
            calibration.depth.height,
        )
        # Deterministic UIDs: a function of the track number (the recorder uses random 64-bit ones).
        self._tracks = [
            _Track(1, 0x4B34415F434F4C31, "COLOR", cw, ch, "MJPG", 24),
            _Track(2, 0x4B34415F44455031, "DEPTH", dw, dh, "b16g", 16),
            _Track(3, 0x4B34415F49523031, "IR", dw, dh, "b16g", 16),
        ]
        self._attachment_uid = 0x4B34415F43414C31
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._file = open(self._tmp, "w+b")  # noqa: SIM115 - kept open across write_capture calls
        self._cues: list[tuple[int, int]] = []
        self._last_timestamp_us = 0
        self._count = 0
        self._write_header()

    def _write_header(self) -> None:
        f = self._file
        f.write(
            element(
                EBML,
                uint_element(EBML_VERSION, 1) + uint_element(EBML_READ_VERSION, 1) + uint_element(EBML_MAX_ID, 4)
                + uint_element(EBML_MAX_SIZE, 8) + str_element(DOC_TYPE, "matroska")
                + uint_element(DOC_TYPE_VERSION, 4) + uint_element(DOC_TYPE_READ_VERSION, 2),
            )
        )  # fmt: skip
        f.write(_id_bytes(SEGMENT))
        self._segment_size_at = f.tell()
        f.write(_size_bytes(0, width=8))  # patched in close()
        self._segment_start = f.tell()
        self._seek_head_at = f.tell()
        f.write(element(VOID, bytes(120)))  # room for the SeekHead written in close()
        self._positions: dict[int, int] = {}
        self._positions[INFO] = f.tell() - self._segment_start
        self._duration_at = None
        info = uint_element(TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS) + str_element(MUXING_APP, "facesynth-ebml")
        info += str_element(WRITING_APP, "facesynth capture (k4arecorder layout)") + str_element(TITLE, "Azure Kinect")
        f.write(element(INFO, info))
        self._positions[TRACKS] = f.tell() - self._segment_start
        f.write(element(TRACKS, b"".join(self._track_entry(t) for t in self._tracks)))
        self._positions[ATTACHMENTS] = f.tell() - self._segment_start
        attached = (
            str_element(FILE_NAME, CALIBRATION_ATTACHMENT) + str_element(FILE_MIME, "application/octet-stream")
            + element(FILE_DATA, self.calibration.to_kinect_json().encode("utf-8"))
            + uint_element(FILE_UID, self._attachment_uid)
        )  # fmt: skip
        f.write(element(ATTACHMENTS, element(ATTACHED_FILE, attached)))
        self._positions[TAGS] = f.tell() - self._segment_start
        f.write(element(TAGS, self._tags()))

    def _track_entry(self, track: _Track) -> bytes:
        image_size = track.width * track.height * track.bit_count // 8
        body = (
            uint_element(TRACK_NUMBER, track.number) + uint_element(TRACK_UID, track.uid) + uint_element(TRACK_TYPE, 1)
            + uint_element(FLAG_LACING, 0) + str_element(TRACK_NAME, track.name)
            + str_element(CODEC_ID, "V_MS/VFW/FOURCC")
            + element(CODEC_PRIVATE, bitmap_info_header(track.width, track.height, track.fourcc, track.bit_count,
                                                        image_size))
            + uint_element(DEFAULT_DURATION, 1_000_000_000 // self.config.fps)
            + element(VIDEO, uint_element(PIXEL_WIDTH, track.width) + uint_element(PIXEL_HEIGHT, track.height))
        )  # fmt: skip
        return element(TRACK_ENTRY, body)

    def _tags(self) -> bytes:
        def tag(name: str, value: str, target: tuple[int, int] | None = None) -> bytes:
            targets = uint_element(TARGET_TYPE_VALUE, 50)
            if target is not None:
                targets += uint_element(*target)
            return element(
                TAG,
                element(TARGETS, targets)
                + element(SIMPLE_TAG, str_element(TAG_NAME, name) + str_element(TAG_STRING, value)),
            )

        color, depth, ir = self._tracks
        parts = [
            tag("K4A_COLOR_TRACK", str(color.uid), (TAG_TRACK_UID, color.uid)),
            tag("K4A_COLOR_MODE", self.config.color_mode, (TAG_TRACK_UID, color.uid)),
            tag("K4A_DEPTH_TRACK", str(depth.uid), (TAG_TRACK_UID, depth.uid)),
            tag("K4A_DEPTH_MODE", self.config.depth_mode, (TAG_TRACK_UID, depth.uid)),
            tag("K4A_IR_TRACK", str(ir.uid), (TAG_TRACK_UID, ir.uid)),
            tag("K4A_IR_MODE", "ACTIVE", (TAG_TRACK_UID, ir.uid)),
            tag("K4A_DEPTH_DELAY_NS", str(self.config.depth_delay_ns)),
            tag("K4A_WIRED_SYNC_MODE", self.config.wired_sync_mode),
            tag("K4A_START_OFFSET_NS", str(self.start_offset_us * 1000)),
            tag("K4A_CALIBRATION_FILE", CALIBRATION_ATTACHMENT, (TAG_ATTACHMENT_UID, self._attachment_uid)),
        ]
        parts += [tag(k, str(v)) for k, v in self.config.extra_tags.items()]
        return b"".join(parts)

    def write_capture(
        self, color_rgb: np.ndarray, depth_mm: np.ndarray, ir: np.ndarray, timestamp_us: int | None = None
    ) -> None:
        """Append one synchronized capture (colour RGB uint8, depth and IR uint16) at `timestamp_us` (device time)."""
        color_track, depth_track, _ = self._tracks
        if color_rgb.shape != (color_track.height, color_track.width, 3) or color_rgb.dtype != np.uint8:
            raise ValueError(
                f"colour must be {color_track.height}x{color_track.width}x3 uint8, "
                f"got {color_rgb.dtype} {color_rgb.shape}"
            )
        for name, image in (("depth", depth_mm), ("IR", ir)):
            if image.shape != (depth_track.height, depth_track.width) or image.dtype != np.uint16:
                raise ValueError(
                    f"{name} must be {depth_track.height}x{depth_track.width} uint16, got {image.dtype} {image.shape}"
                )
        if timestamp_us is None:
            timestamp_us = self.start_offset_us + round(self._count * 1_000_000 / self.config.fps)
        relative = int(timestamp_us) - self.start_offset_us
        if relative < 0 or (self._count and relative <= self._last_timestamp_us):
            raise ValueError(
                f"capture timestamps must increase and not precede the start offset, got {timestamp_us} us"
            )
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(color_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        )
        if not ok:
            raise OSError(f"{self.path}: OpenCV could not JPEG-encode a colour frame")
        payloads = [jpeg.tobytes(), depth_mm.astype(">u2").tobytes(), ir.astype(">u2").tobytes()]
        depth_offset = self.config.depth_delay_ns // 1000
        blocks = b""
        for track, payload in zip(self._tracks, payloads):
            # Depth and IR are exposed `depth_delay` after colour; SimpleBlock time is relative to the cluster.
            offset = 0 if track.name == "COLOR" else depth_offset
            header = _size_bytes(track.number) + struct.pack(">hB", offset, 0x80)  # 0x80: keyframe
            blocks += element(SIMPLE_BLOCK, header + payload)
        cluster_position = self._file.tell() - self._segment_start
        self._file.write(element(CLUSTER, uint_element(CLUSTER_TIMESTAMP, relative) + blocks))
        self._cues.append((relative, cluster_position))
        self._last_timestamp_us = relative
        self._count += 1

    def close(self) -> None:
        """Write cues and the seek head, fix the segment size and move the file into place."""
        if self._file is None:
            return
        f = self._file
        self._positions[CUES] = f.tell() - self._segment_start
        cue_points = b"".join(
            element(
                CUE_POINT,
                uint_element(CUE_TIME, t)
                + element(CUE_TRACK_POSITIONS, uint_element(CUE_TRACK, 1) + uint_element(CUE_CLUSTER_POSITION, pos)),
            )
            for t, pos in self._cues
        )
        f.write(element(CUES, cue_points))
        end = f.tell()
        seeks = b"".join(
            element(SEEK, element(SEEK_ID, _id_bytes(eid)) + uint_element(SEEK_POSITION, pos))
            for eid, pos in self._positions.items()
        )
        seek_head = element(SEEK_HEAD, seeks)
        reserved = len(element(VOID, bytes(120)))
        if len(seek_head) + 2 > reserved:
            raise RuntimeError("seek head does not fit its reserved space")  # cannot happen with 5 entries
        filler = reserved - len(seek_head)
        f.seek(self._seek_head_at)
        f.write(seek_head + _id_bytes(VOID) + _size_bytes(filler - 2, width=1) + bytes(filler - 2))
        f.seek(self._segment_size_at)
        f.write(_size_bytes(end - self._segment_start, width=8))
        f.close()
        self._file = None
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the partial recording (nothing appears at `path`)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> KinectRecordingWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --- reading -------------------------------------------------------------------------------------------------------
@dataclass
class KinectCapture:
    """One synchronized capture: colour RGB uint8, depth mm uint16 and IR uint16 in the depth camera."""

    index: int
    timestamp_us: int
    color: np.ndarray
    depth: np.ndarray
    ir: np.ndarray


class RecordingError(UserError, ValueError):
    """A recording or video that cannot be played back (empty, truncated, not Matroska, not the Kinect's tracks).

    A UserError, so the capture app shows its message as one line naming the file (a ValueError as well, which
    callers caught before it existed).
    """


class KinectRecordingReader:
    """Read a recording through FFmpeg's Matroska demuxer (PyAV): synchronized captures + the calibration."""

    def __init__(self, path: str | os.PathLike) -> None:
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: recording not found")
        try:
            self._container = av.open(str(self.path))
        except av.FFmpegError as err:
            raise RecordingError(f"{self.path}: not a readable Matroska recording ({err})") from None
        self.tags = {k.upper(): v for k, v in self._container.metadata.items()}
        streams = {}
        for stream in self._container.streams.video:
            name = stream.metadata.get("title") or stream.metadata.get("TITLE")
            if name in TRACK_NAMES:
                streams[name] = stream
                self.tags.update({k.upper(): v for k, v in stream.metadata.items() if k.upper().startswith("K4A_")})
        missing = [n for n in TRACK_NAMES if n not in streams]
        if missing:
            self._container.close()
            raise RecordingError(
                f"{self.path}: missing Azure Kinect track(s) {missing} (tracks must be named COLOR, DEPTH, IR)"
            )
        self._streams = streams
        calibration_json = None
        for attachment in self._container.streams.attachments:
            if attachment.name == CALIBRATION_ATTACHMENT:
                calibration_json = bytes(attachment.data)
        if calibration_json is None:
            self._container.close()
            raise RecordingError(
                f"{self.path}: no {CALIBRATION_ATTACHMENT} attachment (not written by the Azure Kinect recorder?)"
            )
        color_mode = self.tags.get("K4A_COLOR_MODE", "CUSTOM")
        depth_mode = self.tags.get("K4A_DEPTH_MODE", "CUSTOM")
        self.calibration = DeviceCalibration.from_kinect_json(
            calibration_json, color_mode, depth_mode, source=f"{self.path}:{CALIBRATION_ATTACHMENT}"
        )
        self.depth_delay_us = int(self.tags.get("K4A_DEPTH_DELAY_NS", "0")) // 1000
        rate = streams["DEPTH"].average_rate or streams["DEPTH"].guessed_rate or Fraction(15)
        self.frame_period_us = int(1_000_000 / float(rate))

    def __iter__(self) -> Iterator[KinectCapture]:
        """Captures in time order; like the SDK with synchronized_images_only, incomplete captures are skipped."""
        by_stream = {stream.index: name for name, stream in self._streams.items()}
        pending: dict[int, dict[str, np.ndarray]] = {}
        index = 0
        self._container.seek(0)
        for packet in self._container.demux(list(self._streams.values())):
            if packet.pts is None or packet.size == 0:
                continue
            name = by_stream[packet.stream.index]
            timestamp = round(float(packet.pts * packet.time_base) * 1_000_000)
            if name != "COLOR":
                timestamp -= self.depth_delay_us
            for frame in packet.decode():
                key = self._slot(pending, timestamp)
                pending.setdefault(key, {})[name] = _frame_to_array(frame, name)
            # Captures older than one frame period can no longer be completed.
            for key in sorted(pending):
                if len(pending[key]) == len(TRACK_NAMES):
                    images = pending.pop(key)
                    yield KinectCapture(index, key, images["COLOR"], images["DEPTH"], images["IR"])
                    index += 1
                elif key < timestamp - 2 * self.frame_period_us:
                    pending.pop(key)
        for key in sorted(pending):
            if len(pending[key]) == len(TRACK_NAMES):
                images = pending.pop(key)
                yield KinectCapture(index, key, images["COLOR"], images["DEPTH"], images["IR"])
                index += 1

    def _slot(self, pending: dict[int, dict], timestamp: int) -> int:
        """Images within half a frame period of each other belong to one capture."""
        for key in pending:
            if abs(key - timestamp) <= self.frame_period_us // 2:
                return key
        return timestamp

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> KinectRecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frame_to_array(frame: Any, name: str) -> np.ndarray:  # frame: av.VideoFrame
    if name == "COLOR":
        return frame.to_ndarray(format="rgb24")
    if frame.format.name not in ("gray16be", "gray16le"):
        raise ValueError(f"{name} track decodes as {frame.format.name}, expected 16-bit grayscale (b16g)")
    return frame.to_ndarray().astype(np.uint16)  # native byte order whatever the stored one


def read_recording(path: str | os.PathLike) -> tuple[DeviceCalibration, list[KinectCapture]]:
    """Whole recording in memory (for tests and small files)."""
    with KinectRecordingReader(path) as reader:
        return reader.calibration, list(reader)
