"""A classical, offline fallback detector: OpenCV Haar face box + a mean 70-point shape + gradient pupils.

1. Faces: OpenCV's Haar cascade (frontal, alt2), the classic Viola-Jones detector; `score` is the logistic of the
   cascade's final-stage weight.
2. Shape: the mean position of each landmark relative to the Haar box (`classical_template.json`, fitted by
   `python -m src.landmarks.detectors.classical --fit` on FaceWorld faces). It knows nothing about the face's
   pose or expression: the points are coarse (measure them with `evaluate --detector classical`).
3. Eyes: each pupil is located with the Timm & Barth gradient eye-centre locator (as the original did) inside
   the template's eye region; when both are plausible, a similarity transform that moves the template's pupils
   onto them corrects the eyes' and brows' position, scale and roll.

Use it where mediapipe is unavailable; it is not a substitute for a learned landmark model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from src.landmarks.detectors.base import FaceDetection, LandmarkDetector, check_rgb_image, sort_largest_first
from src.landmarks.eye_centre import eye_search_box, locate_eye_centre
from src.landmarks.scheme import BROW_LEFT, BROW_RIGHT, EYE_LEFT, EYE_RIGHT, PUPIL_LEFT, PUPIL_RIGHT

EYE_REGION = EYE_RIGHT + EYE_LEFT + BROW_RIGHT + BROW_LEFT

TEMPLATE_PATH = Path(__file__).with_name("classical_template.json")
CASCADE = "haarcascade_frontalface_alt2.xml"


def load_template(path: Path = TEMPLATE_PATH) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
        template = np.asarray(data["landmarks_in_box"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the classical detector's template ({err})") from None
    if template.shape != (70, 2):
        raise ValueError(f"{path}: template must be 70 x 2, got {template.shape}")
    return template


class ClassicalDetector(LandmarkDetector):
    name = "classical"

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_size: int = 40,
        refine_with_pupils: bool = True,
    ) -> None:
        self._cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE))
        if self._cascade.empty():
            raise OSError(f"OpenCV's {CASCADE} is missing from {cv2.data.haarcascades} (opencv-python installs it)")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_face_size = int(min_face_size)
        self.refine_with_pupils = refine_with_pupils
        self.template = load_template()

    def face_boxes(self, image_rgb: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        gray = cv2.equalizeHist(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY))
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray,
            self.scale_factor,
            self.min_neighbors,
            minSize=(self.min_face_size, self.min_face_size),
            outputRejectLevels=True,
        )
        return [
            (tuple(int(v) for v in box), 1.0 / (1.0 + float(np.exp(-w)))) for box, w in zip(boxes, np.ravel(weights))
        ]

    def detect(self, image_rgb: np.ndarray) -> list[FaceDetection]:
        image = check_rgb_image(image_rgb, "ClassicalDetector.detect")
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        detections = []
        for (x, y, w, h), score in self.face_boxes(image):
            points = self.template * (w, h) + (x, y)
            if self.refine_with_pupils:
                points = self._refine(gray, points)
            detections.append(FaceDetection(points, (x, y, w, h), score))
        return sort_largest_first(detections)

    def _refine(self, gray: np.ndarray, points: np.ndarray) -> np.ndarray:
        expected = points[[PUPIL_RIGHT, PUPIL_LEFT]]
        found = np.array([locate_eye_centre(gray, eye_search_box(points[list(eye)])) for eye in (EYE_RIGHT, EYE_LEFT)])
        span_expected = expected[1] - expected[0]
        span_found = found[1] - found[0]
        ratio = np.linalg.norm(span_found) / max(np.linalg.norm(span_expected), 1e-6)
        angle = np.arctan2(span_found[1], span_found[0]) - np.arctan2(span_expected[1], span_expected[0])
        if not (0.75 <= ratio <= 1.33 and abs(angle) <= np.deg2rad(25)):
            return points  # an implausible pair (a brow or glasses frame won): keep the box's template
        rotation = ratio * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        # Only the eye region follows the pupils: extrapolating their scale to the mouth and jaw makes those worse
        # (measured on FaceWorld), so the lower face keeps the box's template.
        moved = points.copy()
        upper = list(EYE_REGION)
        moved[upper] = (points[upper] - expected.mean(0)) @ rotation.T + found.mean(0)
        moved[[PUPIL_RIGHT, PUPIL_LEFT]] = found
        return moved


def fit_template(num_frames: int = 120, seed: int = 7) -> tuple[np.ndarray, int]:
    """Mean landmark position relative to the Haar box over FaceWorld faces (frontal-ish: |yaw| <= 10 deg)."""
    from src.landmarks.detectors.evaluate import faceworld_frames

    detector = ClassicalDetector.__new__(ClassicalDetector)
    detector._cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE))
    detector.scale_factor, detector.min_neighbors, detector.min_face_size = 1.1, 5, 40
    relative = []
    for frame in faceworld_frames(num_frames, seed=seed, pose_range_deg=10.0):
        boxes = detector.face_boxes(frame.rgb)
        if len(boxes) == 1:
            (x, y, w, h), _ = boxes[0]
            relative.append((frame.landmarks - (x, y)) / (w, h))
    if not relative:
        raise RuntimeError("the Haar cascade found no FaceWorld face; cannot fit a template")
    return np.mean(relative, axis=0), len(relative)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fit the classical detector's box template on FaceWorld faces.")
    parser.add_argument("--fit", action="store_true", help=f"write {TEMPLATE_PATH.name}")
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    if args.fit:
        template, used = fit_template(args.frames)
        payload = {
            "about": "mean 70-point landmark positions relative to OpenCV's Haar alt2 face box (x, y in box units); "
            f"fitted by `python -m src.landmarks.detectors.classical --fit` on {used} FaceWorld faces",
            "cascade": CASCADE,
            "landmarks_in_box": np.round(template, 4).tolist(),
        }
        from src.io.atomic import write_text_atomic

        write_text_atomic(TEMPLATE_PATH, json.dumps(payload, indent=1))
        print(f"wrote {TEMPLATE_PATH} from {used} faces")


if __name__ == "__main__":
    main()
