"""The pieces of src/infer against independent references: the converter's own plan for a one-frame dataset, the
pinhole model under a resize, and the detector fallback (no subprocess, no model: milliseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from infer_fixtures import render_photo

from src.convert.settings import ConvertSettings
from src.convert.steps import Measurement, crop_transform, landmark_box, plan_conversion
from src.datamodules.rgbd import scale_intrinsics
from src.infer.inputs import FIT_PADDING_FRACTION, FaceFinder, Framing, InferenceInputError, resize_transform
from src.landmarks.detectors.base import LandmarkDetector
from src.landmarks.detectors.classical import ClassicalDetector
from src.utils.errors import UserError


def test_fit_framing_is_the_converters_crop_of_a_one_frame_dataset():
    _, landmarks = render_photo(seed=5)
    size = 512
    settings = ConvertSettings(
        input=Path("in"), output=Path("out"), size=size, padding=round(size * FIT_PADDING_FRACTION)
    )
    box = landmark_box(landmarks)
    # The converter plans a dataset of this one frame (its nose depth only sets the depth scale: 1 here).
    plan = plan_conversion([Measurement(landmarks, box, 600.0, None)], settings)
    expected = crop_transform(box, plan.global_scale, size)
    framing = Framing.choose("fit", size, dataset_fraction=0.7)
    assert framing.rule == "fit"
    np.testing.assert_allclose(framing.transform(landmarks), expected, rtol=1e-12)
    # auto prefers the training faces' size when known; a number is a fraction of the side.
    assert Framing.choose("auto", size, 0.7).face_side_px == pytest.approx(0.7 * size)
    assert Framing.choose("auto", size, None).rule == "fit"
    assert Framing.choose(0.5, size, None).face_side_px == 256
    for bad in ("dataset", "huge", 1.5, 0):
        with pytest.raises(UserError, match="face_box"):
            Framing.choose(bad, size, None)


def test_a_resized_crop_and_scaled_intrinsics_describe_the_same_rays():
    """A pixel of the crop at 256 px and the same pixel of its 128 px copy back-project to the same ray."""
    transform = crop_transform((100.0, 80.0, 200.0, 230.0), 0.8, 256)
    small = resize_transform(transform, 0.5)
    point = np.array([180.0, 190.0])
    at_256 = transform[:, :2] @ point + transform[:, 2]
    at_128 = small[:, :2] @ point + small[:, 2]
    np.testing.assert_allclose(at_128, (at_256 + 0.5) * 0.5 - 0.5)
    fx, fy, cx, cy = 400.0, 410.0, 127.5, 127.5
    sfx, sfy, scx, scy = scale_intrinsics((fx, fy, cx, cy), 256, 256, 128)
    ray_256 = ((at_256[0] - cx) / fx, (at_256[1] - cy) / fy)
    ray_128 = ((at_128[0] - scx) / sfx, (at_128[1] - scy) / sfy)
    np.testing.assert_allclose(ray_128, ray_256, rtol=1e-12)


class _SeesNothing(LandmarkDetector):
    name = "sees_nothing"

    def detect(self, image_rgb):
        return []


def test_the_fallback_detector_runs_when_the_first_finds_no_face_or_cannot_load():
    photo, truth = render_photo()
    finder = FaceFinder(_SeesNothing, ClassicalDetector)
    face, used = finder.find(photo, Path("photo.png"))
    assert used == "classical" and np.abs(face.landmarks - truth).mean() < 15

    def missing_backend() -> LandmarkDetector:
        raise ImportError("the mediapipe landmark detector needs `pip install mediapipe`")

    finder = FaceFinder(missing_backend, ClassicalDetector)
    assert finder.find(photo, Path("photo.png"))[1] == "classical"
    with pytest.raises(InferenceInputError, match=r"no face found in photo wall.png \(detectors tried: sees_nothing\)"):
        FaceFinder(_SeesNothing, None).find(np.full((120, 160, 3), 90, np.uint8), Path("wall.png"))
    with pytest.raises(UserError, match="no landmark detector could be loaded: the mediapipe landmark detector"):
        FaceFinder(missing_backend, None).find(photo, Path("photo.png"))
