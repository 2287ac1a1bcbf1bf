"""The detector contract, the mediapipe backend on a real photo, and the eye-centre locator."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from src.landmarks.detectors.base import DETECTORS, FaceDetection, LandmarkDetector, build_detector
from src.landmarks.detectors.mediapipe_mapping import build_mapping, mapping_matrix
from src.landmarks.eye_centre import locate_eye_centre
from src.landmarks.scheme import EYE_LEFT, EYE_RIGHT, MOUTH_OUTER, NOSE_BOTTOM, PUPIL_LEFT, PUPIL_RIGHT


@pytest.fixture(scope="module")
def mediapipe_detector():
    with build_detector("mediapipe") as detector:
        yield detector


@pytest.fixture(scope="module")
def astronaut_face(mediapipe_detector):
    return mediapipe_detector.detect(skimage.data.astronaut())


def test_face_detection_validates_shape():
    with pytest.raises(ValueError, match="landmarks"):
        FaceDetection(np.zeros((68, 2)), (0, 0, 1, 1), 1.0)
    det = FaceDetection(np.zeros((70, 2), np.float64), (0, 0, 1, 1), 1)
    assert det.landmarks.dtype == np.float32 and isinstance(det.score, float)


def test_build_detector_names_unknown_backend():
    with pytest.raises(ValueError, match="nonexistent"):
        build_detector("nonexistent")
    assert {"mediapipe", "classical"} <= set(DETECTORS)


def test_detector_rejects_non_rgb(mediapipe_detector):
    with pytest.raises(ValueError, match="uint8 RGB"):
        mediapipe_detector.detect(np.zeros((32, 32), np.uint8))


def test_mapping_is_a_convex_combination_per_point():
    matrix = mapping_matrix()
    assert matrix.shape == (70, 478)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert (matrix >= 0).all()
    assert build_mapping()[PUPIL_RIGHT] == {468: 1.0} and build_mapping()[PUPIL_LEFT] == {473: 1.0}


def test_no_face_in_a_flat_image(mediapipe_detector):
    assert mediapipe_detector.detect(np.full((128, 128, 3), 127, np.uint8)) == []


def _inside(polygon: np.ndarray, point: np.ndarray) -> bool:
    return cv2.pointPolygonTest(polygon.astype(np.float32), (float(point[0]), float(point[1])), False) >= 0


def test_astronaut_landmarks_are_anatomically_placed(astronaut_face):
    assert len(astronaut_face) == 1
    points = astronaut_face[0].landmarks
    x, y, w, h = astronaut_face[0].box
    # The face in skimage's astronaut photo is at roughly x 180-270, y 70-180 (512x512 image).
    assert 160 < x < 200 and 55 < y < 95 and 70 < w < 120 and 80 < h < 140
    eye_y = points[list(EYE_RIGHT + EYE_LEFT), 1].mean()
    nose_y = points[list(NOSE_BOTTOM), 1].mean()
    mouth_y = points[list(MOUTH_OUTER), 1].mean()
    assert eye_y < nose_y < mouth_y
    # The eye of 36-41 is the subject's right eye: image left.
    assert points[list(EYE_RIGHT), 0].mean() < points[list(EYE_LEFT), 0].mean()
    # Each pupil lies inside its own eye polygon, and the eyes sit where the photo's eyes are (~(203,101), (246,103)).
    assert _inside(points[list(EYE_RIGHT)], points[PUPIL_RIGHT])
    assert _inside(points[list(EYE_LEFT)], points[PUPIL_LEFT])
    np.testing.assert_allclose(points[PUPIL_RIGHT], (203, 101), atol=5)
    np.testing.assert_allclose(points[PUPIL_LEFT], (246, 103), atol=5)
    # Eye width is a plausible fraction of the face width.
    eye_width = np.linalg.norm(points[39] - points[36])
    assert 0.12 * w < eye_width < 0.35 * w


def test_timm_barth_finds_the_astronaut_pupils(astronaut_face):
    gray = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    points = astronaut_face[0].landmarks
    for eye, pupil in ((EYE_RIGHT, PUPIL_RIGHT), (EYE_LEFT, PUPIL_LEFT)):
        contour = points[list(eye)]
        lo, hi = contour.min(0), contour.max(0)
        width = hi[0] - lo[0]
        found = locate_eye_centre(
            gray, (lo[0] - 0.1 * width, lo[1] - 0.4 * width, 1.2 * width, hi[1] - lo[1] + 0.8 * width)
        )
        assert np.linalg.norm(np.subtract(found, points[pupil])) < 3.0


def test_timm_barth_on_a_synthetic_iris():
    image = np.full((60, 90), 200, np.uint8)
    cv2.circle(image, (52, 33), 9, 40, -1)
    found = locate_eye_centre(image, (20, 10, 60, 40))
    np.testing.assert_allclose(found, (52, 33), atol=1.5)
    with pytest.raises(ValueError, match="empty"):
        locate_eye_centre(image, (100, 100, 5, 5))


def test_detectors_are_landmark_detectors(mediapipe_detector):
    assert isinstance(mediapipe_detector, LandmarkDetector)


def test_hydra_configs_instantiate_the_same_class():
    from pathlib import Path

    from hydra.utils import get_class
    from omegaconf import OmegaConf

    for name in ("mediapipe", "classical", "face_alignment", "dlib"):
        cfg = OmegaConf.load(Path("conf/landmarks") / f"{name}.yaml")
        module, cls = DETECTORS[name].split(":")
        assert cfg._target_ == f"{module}.{cls}"
        assert get_class(cfg._target_) is not None


def test_external_detectors_explain_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="predictor"):
        build_detector("dlib", predictor_path=tmp_path / "missing.dat")
    with pytest.raises(ImportError, match="pip install face-alignment"):
        build_detector("face_alignment")
