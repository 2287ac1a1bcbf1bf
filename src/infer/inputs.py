"""Inference inputs: photos or 70-point landmark files -> the landmark drawing the generator was trained on.

Photos go through a landmark detector (conf/landmarks, mediapipe by default, the classical detector as the
fallback when the first finds no face or cannot be loaded) and the converter's crop (src.convert.steps: scale
about pixel centres, a size x size window centred on the landmark box). The scale makes the face as large as
the training faces: the median landmark-box side of the training frames when that dataset is on this machine
(`face_box: auto` / `dataset`), else the converter's rule for a single frame, where the box's longer side fills
size - 2 * padding (`fit`; padding is the converter's 20 px at 512, scaled). Landmark files in the processed
layout's format (src/io/rgbd_layout.parse_landmark_file) are already in processed-image pixels and skip both.

The drawing is made as the dataset made it (src.landmarks.drawing at the dataset's frame size) and resized to
the model's image size as the datamodule resizes it (INTER_AREA when shrinking, INTER_LINEAR when enlarging).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from src.convert.steps import crop_transform, landmark_box
from src.io.images import ImageReadError, read_image
from src.io.rgbd_layout import parse_landmark_file
from src.landmarks.detectors.base import FaceDetection, LandmarkDetector
from src.landmarks.drawing import draw_feature_image
from src.utils.errors import UserError

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
LANDMARK_SUFFIX = ".txt"
FACE_BOX_CHOICES = ("auto", "dataset", "fit")
LANDMARK_COORDS_CHOICES = ("processed", "photo")
# The converter's default padding (conf/convert.yaml) at its default size, as a fraction of the image side.
FIT_PADDING_FRACTION = 20 / 512
# Processed landmark files may reach a little beyond their image (a jaw at the border); more means photo pixels.
PROCESSED_COORDS_SLACK = 0.25


class InferenceInputError(UserError):
    """One input cannot be used (unreadable, no face, malformed landmark file); the message names the file."""


@dataclass(frozen=True)
class InputItem:
    path: Path
    kind: str  # "photo" | "landmarks"

    @property
    def name(self) -> str:
        return self.path.stem


def _kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return "photo"
    if suffix == LANDMARK_SUFFIX:
        return "landmarks"
    return None


def list_inputs(input_path: str | os.PathLike) -> list[InputItem]:
    """The photos / landmark files of a file or a folder (not recursive), sorted; errors name the path."""
    path = Path(input_path).expanduser()
    if not path.exists():
        raise UserError(f"input {path}: no such file or folder")
    if path.is_file():
        kind = _kind_of(path)
        if kind is None:
            accepted = ", ".join((*PHOTO_SUFFIXES, LANDMARK_SUFFIX))
            raise UserError(f"input {path}: not a photo or a landmark file (accepted: {accepted})")
        return [InputItem(path, kind)]
    items = []
    for child in sorted(path.iterdir()):
        kind = _kind_of(child) if child.is_file() and not child.name.startswith(".") else None
        if kind is not None:
            items.append(InputItem(child, kind))
    if not items:
        raise UserError(f"input {path}: the folder holds no photos ({', '.join(PHOTO_SUFFIXES)}) or .txt files")
    by_name: dict[str, Path] = {}
    for item in items:
        if item.name in by_name:
            raise UserError(
                f"input {path}: {by_name[item.name].name} and {item.path.name} would write the same outputs "
                f"({item.name}.*); rename one"
            )
        by_name[item.name] = item.path
    return items


@dataclass(frozen=True)
class Framing:
    """Where faces go: the dataset frame size the drawing is made at, and the face size in it."""

    dataset_size: int
    face_side_px: float  # the landmark box's longer side after the crop, in dataset pixels
    rule: str  # "dataset" | "fit" | "fraction" (for logs and infer.json)

    @classmethod
    def choose(cls, face_box: Any, dataset_size: int, dataset_fraction: float | None) -> Framing:
        """face_box: auto | dataset | fit | a fraction of the image side (0, 1]."""
        if isinstance(face_box, int | float) and not isinstance(face_box, bool):
            if not 0 < float(face_box) <= 1:
                raise UserError(f"face_box must be in (0, 1] as a fraction of the image side, got {face_box}")
            return cls(dataset_size, float(face_box) * dataset_size, "fraction")
        if face_box not in FACE_BOX_CHOICES:
            raise UserError(f"face_box must be one of {FACE_BOX_CHOICES} or a fraction in (0, 1], got {face_box!r}")
        if face_box == "dataset" and dataset_fraction is None:
            raise UserError("face_box=dataset: the training dataset's landmark files are not on this machine")
        if face_box in ("auto", "dataset") and dataset_fraction is not None:
            return cls(dataset_size, dataset_fraction * dataset_size, "dataset")
        return cls(dataset_size, dataset_size * (1 - 2 * FIT_PADDING_FRACTION), "fit")

    def transform(self, photo_landmarks: np.ndarray) -> np.ndarray:
        """The converter's crop (2x3 affine, photo -> dataset pixels) that puts this face at the chosen size."""
        box = landmark_box(photo_landmarks)
        side = max(box[2], box[3])
        if not side > 0:
            raise ValueError("the landmarks span no area")
        return crop_transform(box, self.face_side_px / side, self.dataset_size)


@dataclass(frozen=True)
class PreparedFace:
    """One usable input: its landmarks in dataset pixels and how they were found."""

    item: InputItem
    landmarks: np.ndarray  # (70, 2) in processed-image pixels at the dataset size
    transform: np.ndarray | None  # photo -> dataset pixels; None for processed landmark files
    detector: str | None


def apply_transform(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ transform[:, :2].T + transform[:, 2]


def resize_transform(transform: np.ndarray, factor: float) -> np.ndarray:
    """The same crop followed by a resize by `factor` about pixel centres (p' = (p + 0.5) * factor - 0.5)."""
    out = np.array(transform, dtype=np.float64) * factor
    out[:, 2] += 0.5 * factor - 0.5
    return out


def read_photo(path: Path) -> np.ndarray:
    """HxWx3 BGR uint8; one error naming the file when it is unreadable."""
    try:
        return read_image(path, cv2.IMREAD_COLOR)
    except ImageReadError as err:
        problem = str(err)
    # Raised outside the handler: the one-line reporter shows the innermost user error of a chain, and this
    # message (which says what the file is) must be the one shown.
    raise InferenceInputError(f"unreadable image {problem}")


class FaceFinder:
    """Detector + optional fallback, built only when a photo needs them (mediapipe takes a second to load)."""

    def __init__(
        self,
        build_primary: Callable[[], LandmarkDetector],
        build_fallback: Callable[[], LandmarkDetector] | None,
    ) -> None:
        self._builders = [build_primary] + ([build_fallback] if build_fallback is not None else [])
        self._detectors: list[LandmarkDetector] | None = None

    def _ensure(self) -> list[LandmarkDetector]:
        if self._detectors is None:
            detectors, problems = [], []
            for build in self._builders:
                try:
                    detectors.append(build())
                except (ImportError, OSError, ValueError) as err:
                    problems.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
            if not detectors:
                raise UserError(f"no landmark detector could be loaded: {'; '.join(problems)}")
            for problem in problems:
                log.warning(f"Landmark detector unavailable ({problem}); using {detectors[0].name}")
            self._detectors = detectors
        return self._detectors

    def find(self, image_bgr: np.ndarray, path: Path) -> tuple[FaceDetection, str]:
        """The largest face of the first detector that finds one; InferenceInputError naming `path` if none does."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        detectors = self._ensure()
        for detector in detectors:
            faces = detector.detect(rgb)
            if faces:
                if len(faces) > 1:
                    log.warning(f"{path}: {len(faces)} faces found; using the largest")
                return faces[0], detector.name
        names = ", ".join(d.name for d in detectors)
        raise InferenceInputError(f"no face found in photo {path} (detectors tried: {names})")

    def close(self) -> None:
        for detector in self._detectors or []:
            detector.close()
        self._detectors = None


def read_landmark_file(path: Path) -> np.ndarray:
    try:
        return parse_landmark_file(path).points
    except ValueError as err:
        problem = str(err)
    raise InferenceInputError(f"bad landmark file {problem}")


def prepare(
    item: InputItem,
    framing: Framing,
    finder: FaceFinder | None,
    landmark_coords: str = "processed",
    landmark_size: int | None = None,
) -> PreparedFace:
    """Landmarks in dataset pixels for one input; InferenceInputError (naming the file) when it is unusable."""
    if item.kind == "photo":
        if finder is None:
            raise InferenceInputError(f"{item.path}: photos need a landmark detector")
        face, detector = finder.find(read_photo(item.path), item.path)
        transform = framing.transform(face.landmarks)
        return PreparedFace(item, apply_transform(face.landmarks, transform), transform, detector)
    points = read_landmark_file(item.path)
    if not np.all(np.isfinite(points)):
        raise InferenceInputError(f"bad landmark file {item.path}: NaN or infinite coordinates")
    if landmark_coords == "photo":
        try:
            transform = framing.transform(points)
        except ValueError as err:
            raise InferenceInputError(f"bad landmark file {item.path}: {err}") from None
        return PreparedFace(item, apply_transform(points, transform), transform, None)
    size = landmark_size or framing.dataset_size
    slack = PROCESSED_COORDS_SLACK * size
    if points.min() < -slack or points.max() > size + slack:
        raise InferenceInputError(
            f"bad landmark file {item.path}: coordinates reach {points.min():.0f}..{points.max():.0f} px, outside a "
            f"{size} px processed image (photo coordinates? pass landmark_coords=photo; other size? landmark_size=)"
        )
    scale = framing.dataset_size / size
    return PreparedFace(item, (points + 0.5) * scale - 0.5, None, None)


def feature_for_model(landmarks: np.ndarray, dataset_size: int, image_size: int) -> np.ndarray:
    """The uint8 drawing at the model's size, made exactly as the dataset + datamodule made training inputs."""
    drawing = draw_feature_image(landmarks, dataset_size)
    if dataset_size == image_size:
        return drawing
    interpolation = cv2.INTER_AREA if image_size < dataset_size else cv2.INTER_LINEAR
    return cv2.resize(drawing, (image_size, image_size), interpolation=interpolation)


def check_choice(value: str, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise UserError(f"{key} must be one of {choices}, got {value!r}")
    return value


def detector_builder(spec: Mapping[str, Any] | None) -> Callable[[], LandmarkDetector] | None:
    """A zero-argument builder for a conf/landmarks/<name>.yaml node (`_target_` + arguments), or None."""
    if not spec:
        return None
    import hydra

    def build() -> LandmarkDetector:
        try:
            detector = hydra.utils.instantiate(spec)
        except Exception as err:  # Hydra wraps the backend's ImportError / OSError: keep its first line
            inner = err.__cause__ or err
            raise ImportError(f"{spec.get('_target_')}: {str(inner).splitlines()[0] if str(inner) else inner}") from err
        if not isinstance(detector, LandmarkDetector):
            raise ValueError(f"{spec.get('_target_')} is not a LandmarkDetector")
        return detector

    return build
