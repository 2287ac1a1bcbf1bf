"""The frame gate on exact landmarks: FaceWorld's 3D landmark template posed and projected through a known camera.

The detector and the face counter are stand-ins that return what a perfect detector would, so the gate's own
logic is tested to the degree: the angle boundary (|angle| <= limit accepted, above rejected, on every axis), the
lens distortion that must be undone before PnP, and the face-count rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from src.capture.calibration import CameraIntrinsics
from src.capture.face_count import FaceBox
from src.capture.gate import ACCEPTED, MULTIPLE_FACES, NO_FACE, POSE, POSE_FAILED, FrameGate
from src.faceworld.model import default_landmark_template
from src.geometry.pose import euler_to_rotation
from src.landmarks.detectors.base import FaceDetection, LandmarkDetector

IMAGE = np.zeros((480, 640, 3), np.uint8)
PINHOLE = CameraIntrinsics(640, 480, 600.0, 600.0, 319.5, 239.5)
# Strong barrel distortion (a wide-angle lens): a face near the corner moves by tens of pixels.
DISTORTED = CameraIntrinsics(640, 480, 600.0, 600.0, 319.5, 239.5, radial=(-0.35, 0.12, 0.0, 0.0, 0.0, 0.0))


def posed_landmarks(
    camera: CameraIntrinsics, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, offset=(0.0, 0.0)
) -> np.ndarray:
    """70 image points of the template at the pose, 600 mm away (pupils: copies of two eye corners)."""
    template = default_landmark_template()
    rotated = template @ euler_to_rotation(yaw, pitch, roll).T
    points = rotated + np.array([offset[0], offset[1], 600.0]) - rotated.mean(0) * [1, 1, 0]
    uv, ok = camera.project(points)
    assert ok.all()
    return np.concatenate([uv, uv[[36, 45]]]).astype(np.float32)


class ExactDetector(LandmarkDetector):
    """Returns the given faces, whatever the image."""

    def __init__(self, *faces: np.ndarray) -> None:
        self.faces = [FaceDetection(f, (*f.min(0), *(f.max(0) - f.min(0))), 1.0) for f in faces]
        self.closed = 0

    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        return list(self.faces)

    def close(self) -> None:
        self.closed += 1


class ListedFaces:
    """A face counter that finds the given boxes."""

    def __init__(self, *boxes: tuple[float, float, float, float]) -> None:
        self.boxes = [FaceBox(*b, score=0.9) for b in boxes]
        self.closed = 0

    def find(self, color_rgb: np.ndarray) -> list[FaceBox]:
        return list(self.boxes)

    def close(self) -> None:
        self.closed += 1


def decide(points: np.ndarray, limit: float = 10.0, camera: CameraIntrinsics = PINHOLE):
    return FrameGate(ExactDetector(points), max_angle_deg=limit, face_counter=None)(IMAGE, camera)


@pytest.mark.parametrize("axis", ["yaw", "pitch", "roll"])
def test_pose_is_exact_and_the_boundary_is_inclusive_on_every_axis(axis: str) -> None:
    for angle in (7.0, -7.0):
        points = posed_landmarks(PINHOLE, **{axis: angle})
        free = decide(points, limit=89.0)
        assert free.accepted
        estimated = dict(zip(("yaw", "pitch", "roll"), free.pose_deg))
        assert estimated[axis] == pytest.approx(angle, abs=1e-3)
        assert all(abs(v) < 1e-3 for k, v in estimated.items() if k != axis)
        worst = max(abs(a) for a in free.pose_deg)
        assert decide(points, limit=worst).reason == ACCEPTED  # exactly at the limit: kept
        assert decide(points, limit=worst - 1e-6).reason == POSE  # a hair over it: rejected
        assert decide(points, limit=worst + 0.5).reason == ACCEPTED
    assert decide(posed_landmarks(PINHOLE, **{axis: 10.5})).reason == POSE  # the original's +-10 degrees
    assert decide(posed_landmarks(PINHOLE, **{axis: -9.5})).reason == ACCEPTED


def test_a_rejected_pose_reports_its_angles_and_the_face() -> None:
    points = posed_landmarks(PINHOLE, yaw=15.0, pitch=-3.0)
    decision = decide(points)
    assert decision.reason == POSE and not decision.accepted and decision.num_faces == 1
    np.testing.assert_allclose(decision.pose_deg, (15.0, -3.0, 0.0), atol=1e-3)
    np.testing.assert_array_equal(decision.detection.landmarks, points)


def test_lens_distortion_is_undone_before_the_pose() -> None:
    """A frontal face in the corner of a wide-angle lens is frontal; read as a pinhole it looks turned."""
    points = posed_landmarks(DISTORTED, yaw=4.0, offset=(260.0, 170.0))
    decision = decide(points, camera=DISTORTED)
    assert decision.accepted
    np.testing.assert_allclose(decision.pose_deg, (4.0, 0.0, 0.0), atol=0.05)


def test_landmarks_outside_the_lens_model_fail_the_pose_not_the_gate() -> None:
    points = posed_landmarks(PINHOLE)
    points[:] = np.nan
    decision = decide(points)
    assert (decision.reason, decision.num_faces, decision.pose_deg) == (POSE_FAILED, 1, None)
    assert decision.detection is not None and not decision.accepted


def test_faces_are_counted_by_the_landmark_model_and_the_counter_together() -> None:
    face = posed_landmarks(PINHOLE)
    x, y = face.min(0)
    w, h = face.max(0) - face.min(0)
    same = (x + 2, y + 2, w - 4, h - 4)  # the counter's box of the subject
    bystander = (5.0, 5.0, 40.0, 40.0)
    for boxes, landmark_faces, reason, count in [
        ((same,), (face,), ACCEPTED, 1),
        ((same, bystander), (face,), MULTIPLE_FACES, 2),
        ((bystander,), (), NO_FACE, 1),
        ((bystander, (100.0, 5.0, 40.0, 40.0)), (), MULTIPLE_FACES, 2),
        ((), (face, face + 300), MULTIPLE_FACES, 2),
        ((), (), NO_FACE, 0),
    ]:
        counter, detector = ListedFaces(*boxes), ExactDetector(*landmark_faces)
        gate = FrameGate(detector, max_angle_deg=10.0, face_counter=counter)  # type: ignore[arg-type]
        decision = gate(IMAGE, PINHOLE)
        assert (decision.reason, decision.num_faces) == (reason, count), (boxes, len(landmark_faces))
        gate.close()
        assert detector.closed == 1 and counter.closed == 1


def test_uncalibrated_source_uses_the_default_camera() -> None:
    from src.capture.gate import default_intrinsics

    camera = default_intrinsics(640, 480)
    # the image centre in OpenCV pixel-centre coordinates (0..639 -> 319.5), focal = the longer side (~53 degrees)
    assert (camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy) == (
        640,
        480,
        640,
        640,
        319.5,
        239.5,
    )
    assert not camera.has_distortion and default_intrinsics(300, 400).fx == 400
    points = posed_landmarks(camera, roll=6.0)
    decision = FrameGate(ExactDetector(points), face_counter=None)(IMAGE)  # no intrinsics given
    np.testing.assert_allclose(decision.pose_deg, (0.0, 0.0, 6.0), atol=1e-3)
    with pytest.raises(ValueError, match="max_angle_deg"):
        FrameGate(ExactDetector(points), max_angle_deg=-1.0, face_counter=None)


def test_decisions_are_frozen_records_with_the_report_reason_names() -> None:
    """The reason strings are what capture summaries and convert reports count by: part of the output format."""
    import dataclasses

    from src.capture.gate import REASONS, GateDecision

    assert REASONS == ("accepted", "no_face", "multiple_faces", "pose", "pose_failed")
    assert (ACCEPTED, NO_FACE, MULTIPLE_FACES, POSE, POSE_FAILED) == REASONS
    bare = GateDecision(NO_FACE)
    assert (bare.detection, bare.pose_deg, bare.num_faces, bare.accepted) == (None, None, 0, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bare.num_faces = 2  # type: ignore[misc]


def test_defaults_are_the_originals_ten_degrees_and_the_tiled_counter() -> None:
    from src.capture.face_count import FaceCounter

    turned, frontal = posed_landmarks(PINHOLE, yaw=10.4), posed_landmarks(PINHOLE, yaw=9.6)
    assert FrameGate(ExactDetector(turned), face_counter=None)(IMAGE, PINHOLE).reason == POSE
    assert FrameGate(ExactDetector(frontal), face_counter=None)(IMAGE, PINHOLE).reason == ACCEPTED
    gate = FrameGate(ExactDetector(frontal))
    try:
        assert isinstance(gate.face_counter, FaceCounter)
    finally:
        gate.close()


@pytest.mark.parametrize("limit", [0.0, -1.0])
def test_a_limit_that_accepts_nothing_is_refused(limit: float) -> None:
    with pytest.raises(ValueError, match=rf"^gate\.max_angle_deg must be positive, got {limit}$"):
        FrameGate(ExactDetector(posed_landmarks(PINHOLE)), max_angle_deg=limit, face_counter=None)
    assert FrameGate(ExactDetector(posed_landmarks(PINHOLE)), max_angle_deg=0.5, face_counter=None).max_angle_deg == 0.5


def test_a_counter_box_overlapping_the_subject_by_the_threshold_is_the_subject() -> None:
    """SAME_FACE_OVERLAP (0.3 of the smaller box): at 0.3 the counter's box is the subject, below it a bystander."""
    points = posed_landmarks(PINHOLE)
    subject = FaceDetection(points, (100.0, 100.0, 50.0, 50.0), 1.0)
    detector = ExactDetector(points)
    detector.faces = [subject]
    for box, expected in (
        ((147.0, 100.0, 10.0, 10.0), (ACCEPTED, 1)),
        ((147.5, 100.0, 10.0, 10.0), (MULTIPLE_FACES, 2)),
    ):
        decision = FrameGate(detector, face_counter=ListedFaces(box))(IMAGE, PINHOLE)  # type: ignore[arg-type]
        assert (decision.reason, decision.num_faces) == expected, box


def test_two_landmark_faces_are_two_whatever_the_counter_says() -> None:
    face = posed_landmarks(PINHOLE)
    counter = ListedFaces((5.0, 5.0, 40.0, 40.0))
    decision = FrameGate(ExactDetector(face, face + 300), face_counter=counter)(IMAGE, PINHOLE)  # type: ignore[arg-type]
    assert (decision.reason, decision.num_faces) == (MULTIPLE_FACES, 2)
