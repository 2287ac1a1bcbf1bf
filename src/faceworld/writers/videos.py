"""FaceWorld talking-head videos as real H.264 .mp4 files with their per-frame truth; FaceForensics++'s raw layout.

These are the default data and the test inputs of the video preprocessing (src/convert/video), of head2head and of
faces2one: a real decoder reads them, compression artefacts and all, while the truth says what every frame shows.

    write_talking_head_video(path, identity_seed, num_frames, size=(640, 360), fps=25, seed=0) -> VideoTruth
    write_faceforensics_raw(root, num_videos, ...) -> root
    read_video_truth(path) -> VideoTruth          (path: the truth folder, or the .mp4 it belongs to)

The video: one FaceWorld identity talking (src.faceworld.sequences.talking_head: head sway, visemes, blinks, gaze
saccades), filmed by a webcam-like pinhole camera at the image centre (focal = 1000 * H / 720 px, the field of view
of a 1280x720 webcam at f = 1000, so the face is about 0.3 H wide at the default 700 mm), encoded by libx264 through
PyAV, yuv420p, constant frame rate `fps` (frame k has pts k in time base 1/fps), `crf` 0 (lossless luma) to 51.
`absent_frames` lists frames where the person has left the picture (only the backdrop is filmed).

Truth folder (default: `<video dir>/<stem>.truth/`; FaceForensics++: `.../<c>/faceworld_truth/<id>/`):

    truth.npz            arrays below (np.load; no pickles); T = frames, K_id / K_exp = model coefficients
    nmfc/000123.png      the true NMFC image of frame 123 at the video's size (RGB PNG; all black when the face is
                         absent): the posed FaceWorld mesh coloured by its normalised mean-face coordinate, seen by
                         the orthographic camera matching the pinhole at the head's depth (src.geometry.nmfc)

    truth.npz keys
        format              1 (int)
        fps                 frames per second (float)
        size                (2,) int: width, height in pixels
        camera              (4,) float: fx, fy, cx, cy of the pinhole camera (pixel centres at integers)
        identity_seed, seed the talking_head arguments (int)
        identity            (K_id,) identity coefficients in std units (constant over the video)
        expression          (T, K_exp) expression coefficients (FaceWorld's 9, each in [0, 1])
        expression_names    (K_exp,) str
        rotation_deg        (T, 3) head yaw, pitch, roll in degrees (src.geometry.pose conventions)
        rotation            (T, 3, 3) head rotation in camera coordinates (x right, y down, z forward)
        translation         (T, 3) head origin in camera coordinates, mm
        gaze                (T, 2) eye yaw, pitch in degrees relative to the head
        landmarks           (T, 70, 2) 68 iBUG points + pupils 68, 69 in video pixels (NaN when the face is absent)
        landmarks_visible   (T, 70) bool: not hidden by the face itself
        face_present        (T,) bool
        ortho_scale         (T,) and ortho_translation (T, 3): each frame's orthographic camera in Head2Head's misc
                            form: a model-space point X (mm) lands at pixel ortho_scale * (rotation @ X)[:2]
                            + ortho_translation[:2]; ortho_translation[2] is the head depth in mm (as the NMFC)

FaceForensics++ raw layout (what its download script leaves, for the original sequences):
`<root>/original_sequences/youtube/<c0|c23|c40>/videos/<id>.mp4`, ids `000`, `001`, ... (c0: crf 0, c23: crf 23,
c40: crf 40, as FaceForensics++ compressed with H.264). Video k shows FaceWorld identity k of `seed`
(src.faceworld.writers.common.identity_seed), so it is the same person as identity k of every other layout.
Every file is written atomically (a temporary name, then a rename), so an interrupted write never leaves a video that
later runs would trust; `write_faceforensics_raw` resumes where it stopped (common.begin_write / run_jobs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import (
    begin_write,
    check_workers,
    identity_seed,
    rgb_to_bgr,
    run_jobs,
    world_for,
    write_json_atomic,
)
from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.pose import euler_to_rotation
from src.io.atomic import atomic_path, write_image_atomic
from src.io.images import read_image
from src.utils.errors import DatasetError

__all__ = [
    "COMPRESSIONS",
    "TRUTH_FILE",
    "VideoTruth",
    "faceforensics_video_path",
    "read_video_truth",
    "truth_dir_for",
    "video_camera_for",
    "write_faceforensics_raw",
    "write_talking_head_video",
]

TRUTH_FORMAT = 1
TRUTH_FILE = "truth.npz"
NMFC_DIR = "nmfc"
COMPRESSIONS = {"c0": 0, "c23": 23, "c40": 40}  # FaceForensics++ compression name -> x264 constant rate factor
FFPP_VIDEOS = Path("original_sequences") / "youtube"
FFPP_TRUTH_DIR = "faceworld_truth"
# The webcam whose field of view every video keeps: f = 1000 px at 720 px height.
REFERENCE_FOCAL, REFERENCE_HEIGHT = 1000.0, 720


@dataclass
class VideoTruth:
    """The per-frame truth of one FaceWorld video (see the module docstring for every field)."""

    folder: Path
    fps: float
    size: tuple[int, int]
    camera: PinholeCamera
    identity_seed: int
    seed: int
    identity: np.ndarray
    expression: np.ndarray
    expression_names: tuple[str, ...]
    rotation_deg: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    gaze: np.ndarray
    landmarks: np.ndarray
    landmarks_visible: np.ndarray
    face_present: np.ndarray
    ortho_scale: np.ndarray
    ortho_translation: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.face_present)

    def nmfc_path(self, index: int) -> Path:
        return self.folder / NMFC_DIR / f"{index:06d}.png"

    def nmfc(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB true NMFC image of frame `index`."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.folder}: frame {index} is outside [0, {self.num_frames})")
        return read_image(self.nmfc_path(index))[..., ::-1].copy()


def truth_dir_for(video_path: str | os.PathLike) -> Path:
    """The default truth folder of a video: `<dir>/<stem>.truth/`."""
    path = Path(video_path)
    return path.with_name(f"{path.stem}.truth")


def video_camera_for(width: int, height: int) -> PinholeCamera:
    """The pinhole camera of a width x height video (see the module docstring)."""
    focal = REFERENCE_FOCAL * height / REFERENCE_HEIGHT
    return PinholeCamera(fx=focal, fy=focal, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, width=width, height=height)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 32x32 (H.264 4:2:0), got {width}x{height}")
    return width, height


def _orthographic_misc(translation: np.ndarray, camera: PinholeCamera) -> tuple[float, np.ndarray]:
    """(scale, translation(3,)) of the orthographic camera matching `camera` at the head depth (misc form)."""
    ortho = OrthographicCamera.matching(camera, float(translation[2]))
    return ortho.scale, np.array(
        [ortho.scale * translation[0] + ortho.cx, ortho.scale * translation[1] + ortho.cy, translation[2]]
    )


def write_talking_head_video(
    path: str | os.PathLike,
    identity_seed: int,
    num_frames: int,
    size: tuple[int, int] = (640, 360),
    fps: float = 25.0,
    seed: int = 0,
    *,
    crf: int = 18,
    absent_frames: tuple[int, ...] | list[int] = (),
    camera_shake: bool = False,
    pose_amplitude_deg: float = 10.0,
    distance_mm: float = 700.0,
    truth_dir: str | os.PathLike | None = None,
) -> VideoTruth:
    """Render and encode one talking-head video to `path` (.mp4) and its truth to `truth_dir`; returns the truth.

    Deterministic in (identity_seed, num_frames, size, fps, seed, crf, absent_frames, ...). The .mp4 and truth.npz
    appear atomically (the NMFC PNGs are written first), so a complete truth.npz means a complete video."""
    width, height = _check_size(size)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0 <= int(crf) <= 51:
        raise ValueError(f"crf must be in [0, 51], got {crf}")
    absent = {int(k) for k in absent_frames}
    if any(not 0 <= k < num_frames for k in absent):
        raise ValueError(f"absent_frames must lie in [0, {num_frames}), got {sorted(absent)}")
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{path}: the video must be an .mp4 file")
    truth_dir = Path(truth_dir) if truth_dir is not None else truth_dir_for(path)
    world = world_for()
    camera = video_camera_for(width, height)
    motion = talking_head(
        world, int(identity_seed), num_frames, fps=float(fps), seed=int(seed), camera_shake=camera_shake,
        pose_amplitude_deg=pose_amplitude_deg, distance_mm=distance_mm,
    )  # fmt: skip
    landmarks = np.full((num_frames, 70, 2), np.nan, np.float32)
    visible = np.zeros((num_frames, 70), bool)
    rotation = np.stack([camera.rotation @ euler_to_rotation(*p.head_rotation_deg) for p in motion])
    translation = np.stack([camera.to_camera(np.asarray(p.translation)[None])[0] for p in motion])
    ortho = [_orthographic_misc(t, camera) for t in translation]
    black = np.zeros((height, width, 3), np.uint8)

    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.options = {"crf": str(int(crf)), "preset": "veryfast", "threads": "1"}
            for index, params in enumerate(motion):
                if index in absent:
                    rgb = world.background(params.background, width, height).copy()
                    nmfc = black
                else:
                    frame = world.render(params, camera, ("rgb", "landmarks", "nmfc"))
                    rgb, nmfc = frame["rgb"], frame["nmfc"]
                    landmarks[index] = frame["landmarks2d"]
                    visible[index] = frame["landmarks_visible"]
                write_image_atomic(truth_dir / NMFC_DIR / f"{index:06d}.png", rgb_to_bgr(nmfc))
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                video_frame.pts = index
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()

    arrays = {
        "format": np.array(TRUTH_FORMAT),
        "fps": np.array(float(fps)),
        "size": np.array([width, height]),
        "camera": np.array([camera.fx, camera.fy, camera.cx, camera.cy]),
        "identity_seed": np.array(int(identity_seed)),
        "seed": np.array(int(seed)),
        "identity": motion[0].identity,
        "expression": np.stack([p.expression for p in motion]),
        "expression_names": np.array(world.expression_names),
        "rotation_deg": np.array([p.head_rotation_deg for p in motion]),
        "rotation": rotation,
        "translation": translation,
        "gaze": np.stack([p.gaze for p in motion]),
        "landmarks": landmarks,
        "landmarks_visible": visible,
        "face_present": np.array([k not in absent for k in range(num_frames)]),
        "ortho_scale": np.array([s for s, _ in ortho]),
        "ortho_translation": np.stack([t for _, t in ortho]),
    }
    with atomic_path(truth_dir / TRUTH_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return read_video_truth(truth_dir)


def read_video_truth(path: str | os.PathLike) -> VideoTruth:
    """The truth of a video: `path` is its truth folder, its truth.npz, or the .mp4 (its truth is looked for in
    `<stem>.truth/` beside it, then in FaceForensics++'s `../faceworld_truth/<stem>/`). DatasetError when absent."""
    path = Path(path)
    candidates = [path / TRUTH_FILE, path] if path.suffix != ".mp4" else []
    if path.suffix == ".mp4":
        candidates = [truth_dir_for(path) / TRUTH_FILE, path.parent.parent / FFPP_TRUTH_DIR / path.stem / TRUTH_FILE]
    found = next((c for c in candidates if c.is_file() and c.suffix == ".npz"), None)
    if found is None:
        raise DatasetError(f"{path}: no FaceWorld video truth found (looked for {', '.join(map(str, candidates))})")
    try:
        with np.load(found, allow_pickle=False) as data:
            if int(data["format"]) != TRUTH_FORMAT:
                raise DatasetError(f"{found}: truth format {int(data['format'])}, this reader knows {TRUTH_FORMAT}")
            fx, fy, cx, cy = (float(v) for v in data["camera"])
            width, height = (int(v) for v in data["size"])
            return VideoTruth(
                folder=found.parent,
                fps=float(data["fps"]),
                size=(width, height),
                camera=PinholeCamera(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height),
                identity_seed=int(data["identity_seed"]),
                seed=int(data["seed"]),
                identity=data["identity"],
                expression=data["expression"],
                expression_names=tuple(str(v) for v in data["expression_names"]),
                rotation_deg=data["rotation_deg"],
                rotation=data["rotation"],
                translation=data["translation"],
                gaze=data["gaze"],
                landmarks=data["landmarks"],
                landmarks_visible=data["landmarks_visible"],
                face_present=data["face_present"],
                ortho_scale=data["ortho_scale"],
                ortho_translation=data["ortho_translation"],
            )
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(f"{found}: unreadable FaceWorld video truth ({err})") from None


# ---------------------------------------------------------------------------------------------------- FaceForensics++
def faceforensics_video_path(root: str | os.PathLike, compression: str, video_id: str) -> Path:
    """`<root>/original_sequences/youtube/<compression>/videos/<id>.mp4`."""
    return Path(root) / FFPP_VIDEOS / compression / "videos" / f"{video_id}.mp4"


def _ffpp_truth_dir(root: str | os.PathLike, compression: str, video_id: str) -> Path:
    return Path(root) / FFPP_VIDEOS / compression / FFPP_TRUTH_DIR / video_id


@dataclass(frozen=True)
class _FFPPJob:
    root: str
    index: int
    compression: str
    num_frames: int
    size: tuple[int, int]
    fps: float
    seed: int


def _ffpp_frames(index: int, num_frames: int | tuple[int, int], seed: int) -> int:
    """Video `index`'s length: fixed, or drawn in [lo, hi] from its own stream (FF++ videos differ in length)."""
    if isinstance(num_frames, int):
        return num_frames
    lo, hi = num_frames
    return int(np.random.default_rng([int(seed), int(index), 31]).integers(lo, hi + 1))


def _write_ffpp_video(job: _FFPPJob) -> int:
    video_id = f"{job.index:03d}"
    write_talking_head_video(
        faceforensics_video_path(job.root, job.compression, video_id),
        identity_seed(job.seed, job.index),
        job.num_frames,
        size=job.size,
        fps=job.fps,
        seed=job.seed,
        crf=COMPRESSIONS[job.compression],
        truth_dir=_ffpp_truth_dir(job.root, job.compression, video_id),
    )
    return job.num_frames


def write_faceforensics_raw(
    root: str | os.PathLike,
    num_videos: int,
    *,
    num_frames: int | tuple[int, int] = 100,
    size: tuple[int, int] = (640, 360),
    compressions: tuple[str, ...] | list[str] = ("c23",),
    fps: float = 25.0,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """FaceForensics++'s raw layout filled with FaceWorld videos (see the module docstring); resumable.

    `num_frames`: every video's length, or a (min, max) range each video draws its length from."""
    if num_videos < 1 or num_videos > 1000:
        raise ValueError(f"num_videos must be in [1, 1000] (FaceForensics++ ids are 000-999), got {num_videos}")
    unknown = [c for c in compressions if c not in COMPRESSIONS]
    if unknown or not compressions:
        raise ValueError(f"compressions must be a non-empty subset of {sorted(COMPRESSIONS)}, got {list(compressions)}")
    if isinstance(num_frames, int):
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    else:
        num_frames = tuple(int(v) for v in num_frames)
        if len(num_frames) != 2 or not 1 <= num_frames[0] <= num_frames[1]:
            raise ValueError(f"num_frames must be an int or (min, max) with 1 <= min <= max, got {num_frames}")
    size = _check_size(size)
    check_workers(workers)
    root = Path(root)
    settings = {
        "num_videos": num_videos, "num_frames": num_frames, "size": list(size), "compressions": list(compressions),
        "fps": fps, "seed": seed,
    }  # fmt: skip
    state = begin_write(root, "faceforensics-raw", settings)
    jobs = [
        _FFPPJob(str(root), k, c, _ffpp_frames(k, num_frames, seed), size, float(fps), int(seed))
        for c in compressions
        for k in range(num_videos)
    ]
    total = sum(job.num_frames for job in jobs)
    run_jobs(_write_ffpp_video, jobs, workers, "FaceWorld FaceForensics++", total, progress, state)
    write_json_atomic(
        root / "faceworld.json",
        {"layout": "faceforensics-raw", "settings": state.settings, "source": "faceworld", "truth": FFPP_TRUTH_DIR},
    )
    state.finish()
    return root
