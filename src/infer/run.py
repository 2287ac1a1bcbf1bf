"""One inference run: check everything, prepare every input, then generate and write (see infer.py).

Order, so that a mistake costs nothing: the inputs are listed and the model is loaded first (a bad path or
checkpoint is one error line); pass 1 reads every input and finds its landmarks (with on_error=stop, the first
unusable file ends the run before anything is written); pass 2 runs the generator and writes the outputs.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from src.convert.steps import resample_colour
from src.infer.inputs import (
    LANDMARK_COORDS_CHOICES,
    FaceFinder,
    Framing,
    InferenceInputError,
    PreparedFace,
    check_choice,
    detector_builder,
    feature_for_model,
    list_inputs,
    prepare,
    read_photo,
    resize_transform,
)
from src.infer.model import TrainedGenerator, load_generator
from src.infer.outputs import GeneratedFace, write_face, write_output_config
from src.io.atomic import write_text_atomic
from src.utils.errors import UserError

log = logging.getLogger(__name__)

ON_ERROR_CHOICES = ("stop", "skip")
DEFAULT_DETECTOR = {"_target_": "src.landmarks.detectors.mediapipe.MediaPipeDetector"}
DEFAULT_FALLBACK = {"_target_": "src.landmarks.detectors.classical.ClassicalDetector"}


@dataclass
class InferenceSettings:
    """The keys of conf/infer.yaml (see there for what each does)."""

    input: str
    output: str
    ckpt: str | None = None
    exported: str | None = None
    # conf/landmarks/<name>.yaml nodes; the defaults are conf/infer.yaml's (mediapipe, then the classical one).
    detector: Mapping[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_DETECTOR))
    fallback_detector: Mapping[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_FALLBACK))
    device: str = "cpu"
    batch_size: int = 1
    on_error: str = "stop"
    face_box: Any = "auto"
    landmark_coords: str = "processed"
    landmark_size: int | None = None
    image_size: int | None = None
    use_ema: bool = True
    depth_encoding: Mapping[str, Any] | None = None
    ply: bool = True
    preview: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check_choice(self.on_error, ON_ERROR_CHOICES, "on_error")
        check_choice(self.landmark_coords, LANDMARK_COORDS_CHOICES, "landmark_coords")
        if int(self.batch_size) < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.landmark_size is not None and int(self.landmark_size) < 16:
            raise UserError(f"landmark_size must be >= 16 px or null, got {self.landmark_size}")


@dataclass
class InferenceSummary:
    written: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {"written": len(self.written), "failed": len(self.failed)}


def _progress(total: int, description: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="input", disable=not enabled or total < 2, file=sys.stderr)


def run_inference(settings: InferenceSettings) -> InferenceSummary:
    """Run the whole inference; returns what was written and what failed (also in <output>/infer.json)."""
    items = list_inputs(settings.input)
    generator = load_generator(
        settings.ckpt,
        settings.exported,
        settings.device,
        settings.use_ema,
        settings.depth_encoding,
        settings.image_size,
    )
    framing = Framing.choose(settings.face_box, generator.dataset_size, generator.face_box_fraction)
    log.info(
        f"Model {generator.source}: {generator.image_size} px, depth {generator.encoding.bits}-bit "
        f"{generator.encoding.near_mm:g}-{generator.encoding.far_mm:g} mm; drawings at {framing.dataset_size} px, "
        f"face box side {framing.face_side_px:.1f} px ({framing.rule})"
    )
    finder = None
    if any(item.kind == "photo" for item in items):
        primary = detector_builder(settings.detector)
        if primary is None:
            raise UserError("photos need a landmark detector: set detector (conf/landmarks/<name>.yaml)")
        finder = FaceFinder(primary, detector_builder(settings.fallback_detector))

    summary = InferenceSummary()
    prepared: list[PreparedFace] = []
    try:
        with _progress(len(items), "infer 1/2 landmarks", settings.progress) as bar:
            for item in items:
                try:
                    prepared.append(prepare(item, framing, finder, settings.landmark_coords, settings.landmark_size))
                except InferenceInputError as err:
                    if settings.on_error == "stop" or len(items) == 1:
                        raise
                    log.warning(f"skipped: {err}")
                    summary.failed.append({"input": str(item.path), "error": str(err)})
                bar.update(1)
    finally:
        if finder is not None:
            finder.close()
    if not prepared:
        first = summary.failed[0]["error"] if summary.failed else "no inputs"
        raise UserError(f"input {settings.input}: none of {len(items)} input(s) could be used (first: {first})")

    output = Path(settings.output)
    intrinsics = generator.intrinsics_at_model_size()
    with _progress(len(prepared), "infer 2/2 generate", settings.progress) as bar:
        for start in range(0, len(prepared), int(settings.batch_size)):
            batch = prepared[start : start + int(settings.batch_size)]
            summary.written += _generate_batch(batch, generator, output, intrinsics, settings)
            bar.update(len(batch))
    write_output_config(output, generator.encoding, intrinsics, generator.image_size)
    _write_summary(output, summary, generator, framing)
    log.info(f"{len(summary.written)} written, {len(summary.failed)} skipped; outputs in {output}")
    return summary


def _generate_batch(
    batch: list[PreparedFace],
    generator: TrainedGenerator,
    output: Path,
    intrinsics: tuple[float, float, float, float] | None,
    settings: InferenceSettings,
) -> list[dict[str, Any]]:
    size, dataset_size = generator.image_size, generator.dataset_size
    features = [feature_for_model(face.landmarks, dataset_size, size) for face in batch]
    units = np.stack([f.astype(np.float32)[None] / 127.5 - 1.0 for f in features])
    rgbd = generator(units)
    factor = size / dataset_size
    records = []
    for face, feature, out in zip(batch, features, rgbd):
        input_view = None
        if face.item.kind == "photo" and face.transform is not None and settings.preview:
            crop = resample_colour(read_photo(face.item.path), resize_transform(face.transform, factor), size)
            input_view = crop[..., ::-1].copy()
        landmarks = (face.landmarks + 0.5) * factor - 0.5
        generated = GeneratedFace.from_unit(out, generator.encoding)
        files = write_face(
            output,
            face.item.name,
            generated,
            feature,
            landmarks,
            input_view,
            generator.encoding,
            intrinsics,
            settings.ply,
            settings.preview,
        )
        records.append(
            {
                "input": str(face.item.path),
                "kind": face.item.kind,
                "detector": face.detector,
                "crop_transform": None if face.transform is None else np.round(face.transform, 6).tolist(),
                "face_pixels": int((generated.depth_levels > 0).sum()),
                "files": files,
            }
        )
    return records


def _write_summary(output: Path, summary: InferenceSummary, generator: TrainedGenerator, framing: Framing) -> None:
    encoding = generator.encoding
    payload = {
        "model": generator.source,
        "image_size": generator.image_size,
        "depth_encoding": {"near_mm": encoding.near_mm, "far_mm": encoding.far_mm, "bits": encoding.bits},
        "intrinsics_at_image_size": generator.intrinsics_at_model_size(),
        "framing": {
            "dataset_size": framing.dataset_size,
            "face_box_side_px": framing.face_side_px,
            "rule": framing.rule,
        },
        "counts": summary.counts,
        "written": summary.written,
        "failed": summary.failed,
    }
    write_text_atomic(output / "infer.json", json.dumps(payload, indent=1) + "\n")
