"""The per-frame steps of the RGBD conversion, in the original's order (see shared/reference/rgbd-face.md).

Pass 1 (`measure_frame`, per frame, independent): the capture's frame gate (src/capture/gate.py: exactly one
face, its 70 landmarks, |yaw|, |pitch|, |roll| within the limit) -> depth hole filling in the face region ->
nose depth = the minimum non-zero depth in the nose box (x from landmark 32 to 34, y from 29 to 32).
Between passes (`plan_conversion`, once): desired nose depth = the first accepted frame's, per-frame depth
scale = nose / desired, global scale so the largest depth-scaled face box fits size - 2 * padding.
Pass 2 (`render_frame`, per frame, independent): scale by depth scale * global scale and crop size x size
centred on the landmark box -> shift depth so the nose sits at the desired depth -> map
[nose - depth_padding, nose + face_depth] to levels 1..max (0 = background) -> erode the foreground with a
(2 * floor(scale) + 1) square -> feature image (src/landmarks/drawing.py, the original's exact spec at 512).

Where we differ from the original, on purpose: holes are filled only on the face (landmark and forehead hull),
never in the background; the colour is low-pass filtered before it is shrunk (the original's cubic resize
aliases at scale ~0.3); depth is resampled by normalised interpolation that never mixes valid depth with holes
or across a silhouette (the original's cubic resize invents depth between face and background); the nose depth
after cropping ignores holes (the original's takes a plain minimum, so one hole in the nose box made it 0).
Coordinates follow OpenCV's pixel-centre convention exactly: source pixel x lands at scale * (x + 0.5) - 0.5 - crop_x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from src.capture.calibration import CameraIntrinsics
from src.capture.face_count import FaceCounter
from src.capture.gate import MULTIPLE_FACES, NO_FACE, POSE, POSE_FAILED, FrameGate, GateDecision
from src.convert.depth_fill import FillSettings, fill_depth
from src.convert.frames import FrameRejectedError
from src.convert.settings import ConvertSettings
from src.io.rgbd_layout import DepthEncoding, format_landmark_file
from src.landmarks.drawing import draw_feature_image
from src.landmarks.scheme import BROW_LEFT, BROW_RIGHT, NOSE_BOX_X, NOSE_BOX_Y

# Depth steps larger than this between neighbouring samples are silhouettes: never interpolated across.
SILHOUETTE_STEP_MM = 50.0
# How far behind the face's median depth a surface can still be the head (ears, jaw line); deeper is background.
FACE_EXTENT_MM = 150.0
# The fill region reaches this fraction of the landmark box height above the brows (the forehead).
FOREHEAD_FRACTION = 0.4


@dataclass(frozen=True)
class Measurement:
    """What pass 1 learns about an accepted frame (source-image pixels, mm)."""

    landmarks: np.ndarray  # (70, 2)
    box: tuple[float, float, float, float]  # x, y, width, height of the landmark box
    nose_depth_mm: float
    pose_deg: tuple[float, float, float] | None  # yaw, pitch, roll when the pose gate ran

    def to_json(self) -> dict:
        return {
            "landmarks": [[float(x), float(y)] for x, y in self.landmarks],
            "box": [float(v) for v in self.box],
            "nose_depth_mm": float(self.nose_depth_mm),
            "pose_deg": None if self.pose_deg is None else [float(v) for v in self.pose_deg],
        }

    @classmethod
    def from_json(cls, data: dict) -> Measurement:
        pose = data.get("pose_deg")
        return cls(
            landmarks=np.asarray(data["landmarks"], dtype=np.float64),
            box=tuple(float(v) for v in data["box"]),  # type: ignore[arg-type]
            nose_depth_mm=float(data["nose_depth_mm"]),
            pose_deg=None if pose is None else tuple(float(v) for v in pose),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ConversionPlan:
    """The dataset-wide quantities of the original's two-pass design."""

    desired_nose_depth_mm: float
    global_scale: float

    def frame_scale(self, measurement: Measurement) -> float:
        """Total image scale of one frame: its depth scale (nose / desired) times the global scale."""
        return measurement.nose_depth_mm / self.desired_nose_depth_mm * self.global_scale


def landmark_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = landmarks.min(0), landmarks.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


# ----------------------------------------------------------------------------------------------- pass 1


def build_face_counter(settings: ConvertSettings) -> FaceCounter | None:
    """The gate's face counter from the settings (None: the landmark model's own count)."""
    return FaceCounter(min_face_px=settings.min_face_px) if settings.face_counter == "tiled" else None


def detect_and_gate(
    colour_bgr: np.ndarray, gate: FrameGate, intrinsics: CameraIntrinsics | None, max_side: int | None
) -> tuple[GateDecision, np.ndarray | None]:
    """The capture's frame gate (exactly one face, pose limit) on a shrunken copy; landmarks in full resolution.

    Face landmarkers work on a fixed-size face crop (mediapipe: 192 px), so detecting on a copy whose longer side
    is `max_side` costs no accuracy while the face stays larger than that, and saves most of the time on
    1900x2270 frames. The intrinsics are scaled with the copy, so the pose is the same.
    """
    height, width = colour_bgr.shape[:2]
    small = colour_bgr
    if max_side is not None and max(height, width) > max_side:
        factor = max_side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(colour_bgr, size, interpolation=cv2.INTER_AREA)
    small_intrinsics = None if intrinsics is None else intrinsics.scaled(small.shape[1], small.shape[0])
    decision = gate(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), small_intrinsics)
    if decision.detection is None:
        return decision, None
    sx, sy = width / small.shape[1], height / small.shape[0]
    points = np.asarray(decision.detection.landmarks, dtype=np.float64)
    return decision, np.stack([(points[:, 0] + 0.5) * sx - 0.5, (points[:, 1] + 0.5) * sy - 0.5], axis=1)


def nose_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the nose box: x from landmark 32 to 34, y from 29 to 32 (original's rounding)."""
    x0, x1 = int(landmarks[NOSE_BOX_X[0], 0]), int(landmarks[NOSE_BOX_X[1], 0])
    y0, y1 = int(landmarks[NOSE_BOX_Y[0], 1]), int(landmarks[NOSE_BOX_Y[1], 1])
    return y0, max(y1, y0 + 1), x0, max(x1, x0 + 1)


def nose_depth(depth_mm: np.ndarray, landmarks: np.ndarray, origin: tuple[int, int] = (0, 0)) -> float | None:
    """Minimum non-zero depth in the nose box (the nose tip: nearest to the camera), or None."""
    r0, r1, c0, c1 = nose_box(landmarks)
    oy, ox = origin
    r0, r1, c0, c1 = r0 - oy, r1 - oy, c0 - ox, c1 - ox
    h, w = depth_mm.shape
    box = depth_mm[max(0, r0) : max(0, min(h, r1)), max(0, c0) : max(0, min(w, c1))]
    values = box[box > 0]
    return float(values.min()) if values.size else None


def face_fill_region(
    shape: tuple[int, int], landmarks: np.ndarray, margin_fraction: float, forehead_fraction: float = FOREHEAD_FRACTION
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The window (row0, row1, col0, col1) around the face and, inside it, the region whose holes are filled.

    The region is the convex hull of the landmarks and of the brows raised by `forehead_fraction` of the landmark
    box height (the forehead, which the landmarks do not cover), grown by `margin_fraction` of the face size.
    The jaw line is the face's outline: beyond it is neck, ear or background, where a fill would invent a skirt
    of depth around the head, so the margin stays small.
    """
    height, width = shape
    x, y, bw, bh = landmark_box(landmarks)
    brows = landmarks[list(BROW_RIGHT + BROW_LEFT)] - (0.0, forehead_fraction * bh)
    points = np.concatenate([landmarks, brows])
    margin = math.ceil(margin_fraction * max(bw, bh)) + 1
    # The window reaches beyond the region so holes on the region's border still have valid depth all around.
    reach = margin + math.ceil(0.05 * max(bw, bh)) + 8
    top = min(y, float(brows[:, 1].min()))
    x0, y0 = max(0, int(x) - reach), max(0, int(top) - reach)
    x1, y1 = min(width, math.ceil(x + bw) + reach + 1), min(height, math.ceil(y + bh) + reach + 1)
    region = np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.uint8)
    hull = cv2.convexHull(np.round(points - (x0, y0)).astype(np.int32))
    cv2.fillConvexPoly(region, hull, 1)
    if margin > 1:
        # Growing a convex polygon by a disk = drawing its outline with a round-capped pen of that diameter.
        cv2.polylines(region, [hull], True, 1, thickness=2 * (margin - 1) + 1, lineType=cv2.LINE_8)
    return (y0, y1, x0, x1), region.astype(bool)


def fill_face_depth(
    depth_u16: np.ndarray, landmarks: np.ndarray, fill: FillSettings, margin_fraction: float
) -> tuple[np.ndarray, tuple[int, int]]:
    """Fill depth holes inside the face region; returns (float32 mm window, its origin (row, col)).

    Holes outside the face (background, hair beyond the margin) stay holes: inventing depth there would put
    flying pixels into the training data. Depth far behind the face is background, not data for the fill.
    """
    (y0, y1, x0, x1), region = face_fill_region(depth_u16.shape, landmarks, margin_fraction)
    window = depth_u16[y0:y1, x0:x1].astype(np.float32)
    if fill.method == "none":
        return window, (y0, x0)
    face_depth = window[region & (window > 0)]
    far = float(np.median(face_depth)) + FACE_EXTENT_MM if face_depth.size else None
    return fill_depth(window, region, fill, far_mm=far), (y0, x0)


def measure_frame(
    colour_bgr: np.ndarray,
    depth_u16: np.ndarray,
    gate: FrameGate,
    intrinsics: CameraIntrinsics | None,
    settings: ConvertSettings,
) -> Measurement:
    """Pass 1 for one frame: the measurement, or FrameRejectedError naming why the frame cannot be used."""
    decision, landmarks = detect_and_gate(colour_bgr, gate, intrinsics, settings.detect_max_side)
    if decision.reason == NO_FACE:
        raise FrameRejectedError("no_face", "no face found")
    if decision.reason == MULTIPLE_FACES:
        raise FrameRejectedError("multiple_faces", f"{decision.num_faces} faces found, exactly one is needed")
    if decision.reason == POSE_FAILED:
        raise FrameRejectedError("pose_out_of_range", "no head pose could be estimated from the landmarks")
    if decision.reason == POSE:
        yaw, pitch, roll = decision.pose_deg  # type: ignore[misc]
        raise FrameRejectedError(
            "pose_out_of_range",
            f"head pose yaw {yaw:.1f}, pitch {pitch:.1f}, roll {roll:.1f} deg exceeds {gate.max_angle_deg} deg",
        )
    assert landmarks is not None and decision.accepted
    pose = decision.pose_deg
    box = landmark_box(landmarks)
    height, width = depth_u16.shape
    if box[0] < 0 or box[1] < 0 or box[0] + box[2] >= width or box[1] + box[3] >= height:
        shown = tuple(round(v, 1) for v in box)
        raise FrameRejectedError("face_out_of_image", f"landmark box {shown} leaves the image")
    filled, origin = fill_face_depth(depth_u16, landmarks, settings.fill, settings.fill_margin)
    nose = nose_depth(filled, landmarks, origin)
    if nose is None:
        raise FrameRejectedError("no_nose_depth", "no valid depth in the nose box (landmarks 29-34)")
    return Measurement(landmarks, box, nose, pose)


# ------------------------------------------------------------------------------------------ between passes


def plan_conversion(measurements: list[Measurement], settings: ConvertSettings) -> ConversionPlan:
    """Desired nose depth from the first accepted frame; global scale from the largest depth-scaled face box."""
    if not measurements:
        raise ValueError("plan_conversion needs at least one accepted frame")
    desired = measurements[0].nose_depth_mm
    max_w = max(m.box[2] * m.nose_depth_mm / desired for m in measurements)
    max_h = max(m.box[3] * m.nose_depth_mm / desired for m in measurements)
    usable = settings.size - 2 * settings.padding
    return ConversionPlan(desired, min(usable / max(max_w, 1e-6), usable / max(max_h, 1e-6)))


# ----------------------------------------------------------------------------------------------- pass 2


@dataclass(frozen=True)
class RenderedFrame:
    colour_bgr: np.ndarray  # (size, size, 3) uint8
    depth_levels: np.ndarray  # (size, size) uint8 / uint16, 0 = background
    feature: np.ndarray  # (size, size) uint8
    landmark_text: str
    crop_transform: np.ndarray  # 2x3 affine: source pixel -> processed pixel


def crop_transform(box: tuple[float, float, float, float], scale: float, size: int) -> np.ndarray:
    """Affine source -> processed pixels: scale about pixel centres, then a size x size crop centred on the box."""
    centre_x = scale * (box[0] + box[2] / 2 + 0.5) - 0.5
    centre_y = scale * (box[1] + box[3] / 2 + 0.5) - 0.5
    crop_x = math.floor(centre_x - (size - 1) / 2 + 0.5)  # the box centre lands within 0.5 px of the crop centre
    crop_y = math.floor(centre_y - (size - 1) / 2 + 0.5)
    offset = 0.5 * scale - 0.5
    return np.array([[scale, 0.0, offset - crop_x], [0.0, scale, offset - crop_y]])


def _source_window(transform: np.ndarray, size: int, shape: tuple[int, int], pad: int) -> tuple[int, int, int, int]:
    """Rows / cols of the source region that maps onto the crop (+ pad), clipped to the image."""
    scale, tx, ty = transform[0, 0], transform[0, 2], transform[1, 2]
    x0 = math.floor((-0.5 - tx) / scale) - pad
    x1 = math.ceil((size - 0.5 - tx) / scale) + pad + 1
    y0 = math.floor((-0.5 - ty) / scale) - pad
    y1 = math.ceil((size - 0.5 - ty) / scale) + pad + 1
    return max(0, y0), min(shape[0], y1), max(0, x0), min(shape[1], x1)


def _warp(image: np.ndarray, transform: np.ndarray, origin: tuple[int, int], size: int, flags: int) -> np.ndarray:
    local = transform.copy()
    local[0, 2] += transform[0, 0] * origin[1]
    local[1, 2] += transform[1, 1] * origin[0]
    return cv2.warpAffine(image, local, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _antialias_sigma(scale: float) -> float:
    """Gaussian sigma (source px) that removes what a shrink by `scale` cannot represent (0 when enlarging)."""
    return max(0.0, (1.0 / scale - 1.0) / 2.0)


def resample_colour(colour_bgr: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    scale = float(transform[0, 0])
    sigma = _antialias_sigma(scale)
    pad = math.ceil(3 * sigma) + 3
    r0, r1, c0, c1 = _source_window(transform, size, colour_bgr.shape[:2], pad)
    window = colour_bgr[r0:r1, c0:c1]
    if window.size == 0:
        return np.zeros((size, size, 3), np.uint8)
    if sigma > 0.3:
        window = cv2.GaussianBlur(window, (0, 0), sigma)
    return _warp(window, transform, (r0, c0), size, cv2.INTER_CUBIC)


def resample_depth(depth_mm: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Normalised (hole- and silhouette-aware) resampling of float depth in mm; 0 = no depth."""
    scale = float(transform[0, 0])
    sigma = _antialias_sigma(scale)
    reach = math.ceil(2 * sigma) + 1
    pad = math.ceil(3 * sigma) + reach + 3
    r0, r1, c0, c1 = _source_window(transform, size, depth_mm.shape, pad)
    window = depth_mm[r0:r1, c0:c1]
    if window.size == 0:
        return np.zeros((size, size), np.float32)
    valid = window > 0
    # Samples next to a silhouette (a depth step within the interpolation's reach) are left out.
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    nearest = cv2.erode(np.where(valid, window, np.float32(1e9)), kernel)
    farthest = cv2.dilate(window, kernel)
    valid &= (farthest - nearest) < SILHOUETTE_STEP_MM
    weight = valid.astype(np.float32)
    weighted = np.where(valid, window, 0).astype(np.float32)
    if sigma > 0.3:
        weight = cv2.GaussianBlur(weight, (0, 0), sigma)
        weighted = cv2.GaussianBlur(weighted, (0, 0), sigma)
    coverage = _warp(weight, transform, (r0, c0), size, cv2.INTER_LINEAR)
    total = _warp(weighted, transform, (r0, c0), size, cv2.INTER_LINEAR)
    out = np.zeros((size, size), np.float32)
    keep = coverage >= 0.5
    out[keep] = total[keep] / coverage[keep]
    return out


def render_frame(
    colour_bgr: np.ndarray,
    depth_u16: np.ndarray,
    measurement: Measurement,
    plan: ConversionPlan,
    settings: ConvertSettings,
) -> RenderedFrame:
    """Pass 2 for one frame: the processed colour, depth levels, feature image and landmark file."""
    size = settings.size
    scale = plan.frame_scale(measurement)
    transform = crop_transform(measurement.box, scale, size)
    colour = resample_colour(colour_bgr, transform, size)

    filled, (oy, ox) = fill_face_depth(depth_u16, measurement.landmarks, settings.fill, settings.fill_margin)
    depth_mm = depth_u16.astype(np.float32) if settings.fill.method == "none" else _paste(depth_u16, filled, oy, ox)
    depth = resample_depth(depth_mm, transform, size)

    landmarks = measurement.landmarks @ transform[:, :2].T + transform[:, 2]
    actual = nose_depth(depth, landmarks)
    if actual is None:
        raise FrameRejectedError("no_nose_depth", "no valid depth in the nose box after scaling and cropping")
    desired = plan.desired_nose_depth_mm
    depth = np.where(depth > 0, depth + np.float32(desired - actual), 0)
    encoding = output_encoding(plan, settings)
    levels = encoding.encode(depth)
    if settings.erosion:
        kernel_size = 2 * math.floor(scale) + 1
        if kernel_size > 1:
            foreground = (levels > 0).astype(np.uint8)
            kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel_size, kernel_size))
            levels[cv2.erode(foreground, kernel) == 0] = 0
    feature = draw_feature_image(landmarks, size)
    return RenderedFrame(colour, levels, feature, format_landmark_file(landmarks), transform)


def _paste(depth_u16: np.ndarray, window: np.ndarray, oy: int, ox: int) -> np.ndarray:
    out = depth_u16.astype(np.float32)
    out[oy : oy + window.shape[0], ox : ox + window.shape[1]] = window
    return out


def output_encoding(plan: ConversionPlan, settings: ConvertSettings) -> DepthEncoding:
    """[desired - depth_padding, desired + face_depth] mm -> levels 1..max, 0 = background."""
    desired = plan.desired_nose_depth_mm
    return DepthEncoding(desired - settings.depth_padding, desired + settings.face_depth, settings.depth_bits)
