"""Head2Head's re-fitting distances: expression, pose and identity of generated frames against the real ones.

The paper scores a reenactment by fitting the 3D morphable model again to the generated video and comparing the
coefficients with those fitted to the real video. We do the same with the project's own video preprocessing
(src.convert.video): 70 landmarks by mediapipe's face mesh on each frame (upscaled to `side` px: the face mesh
misses faces of 64 px frames), then one sequence fit (src.geometry.sequence_fitting: one identity per clip, pose and
expression per frame, FaceWorld's morphable model) of the real clip and one of the generated clip, each on the
frames where both have a face. Real and generated frames go through the same detector and fit, so the fitting's own
bias cancels; what is left is what the generator got wrong.

Per clip:
    expression_distance   mean over frames of the L2 distance of the expression coefficients (the model's units)
    pose_distance_deg     mean over frames of the angle of R_fake R_real^T (degrees)
    identity_distance     L2 distance of the two clips' identity coefficients (std units)
    refit_missing_frames  frames where the real frame has a face and the generated one has none (always counted)
The three distances are NaN when fewer than `min_frames` frames have a face in both (an untrained generator's
clips): they are subset metrics, averaged over the clips that have them.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from src.geometry.morphable import MorphableModel
from src.geometry.sequence_fitting import SequenceFit, fit_sequence

__all__ = ["REFIT_DISTANCES", "REFIT_METRICS", "FaceRefitter", "refit_distances", "rotation_angle_deg"]

REFIT_DISTANCES = ("expression_distance", "pose_distance_deg", "identity_distance")
REFIT_METRICS = (*REFIT_DISTANCES, "refit_missing_frames")


def rotation_angle_deg(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(N,) angle in degrees of the rotation taking each of `second` (N, 3, 3) onto `first` (N, 3, 3)."""
    relative = np.einsum("nij,nkj->nik", first, second)
    cosine = (np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def _to_uint8_rgb(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8 RGB."""
    array = ((frame.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(array.permute(1, 2, 0).cpu().numpy())


class FaceRefitter:
    """Landmarks and a sequence 3DMM fit of a clip, the way the video preprocessing makes them.

    detector: a src.landmarks.detectors LandmarkDetector (default: mediapipe, created on first use);
    model: the morphable model to fit (default: FaceWorld's, the one the FaceWorld NMFCs are rendered with).
    """

    def __init__(
        self,
        detector: Any | None = None,
        model: MorphableModel | None = None,
        side: int = 256,
        identity_frames: int = 16,
    ) -> None:
        if side < 64:
            raise ValueError(f"side must be >= 64 px (the face mesh needs a face of some size), got {side}")
        self._detector, self._model = detector, model
        self.side, self.identity_frames = int(side), int(identity_frames)

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from src.landmarks.detectors.mediapipe import MediaPipeDetector

            self._detector = MediaPipeDetector(max_num_faces=1)
        return self._detector

    @property
    def model(self) -> MorphableModel:
        if self._model is None:
            from src.faceworld.writers.common import world_for

            self._model = world_for().model
        return self._model

    def landmarks(self, frames: torch.Tensor) -> np.ndarray:
        """(T, 3, H, W) frames in [-1, 1] -> (T, 70, 2) landmarks in frame pixels (NaN rows where no face)."""
        height, width = frames.shape[-2:]
        points = np.full((frames.shape[0], 70, 2), np.nan)
        for index, frame in enumerate(frames):
            image = _to_uint8_rgb(frame)
            if (height, width) != (self.side, self.side):
                image = cv2.resize(image, (self.side, self.side), interpolation=cv2.INTER_CUBIC)
            faces = self.detector.detect(image)
            if faces:
                scale = np.array([width / self.side, height / self.side])
                points[index] = (faces[0].landmarks.astype(np.float64) + 0.5) * scale - 0.5
        return points

    def fit(self, landmarks: np.ndarray) -> SequenceFit:
        """One sequence fit of (N, 70, 2) landmarks (every row finite)."""
        return fit_sequence(self.model, landmarks, identity_frames=min(self.identity_frames, len(landmarks)))


def refit_distances(
    fake: torch.Tensor, real: torch.Tensor, refitter: FaceRefitter, min_frames: int = 2
) -> dict[str, torch.Tensor]:
    """(B,) tensors of REFIT_METRICS for (B, T, 3, H, W) generated and real clips in [-1, 1] (module docstring)."""
    if fake.shape != real.shape or fake.dim() != 5:
        raise ValueError(f"fake and real must be (B, T, 3, H, W) of one shape, got {tuple(fake.shape)}, {real.shape}")
    results = {name: torch.full((fake.shape[0],), float("nan")) for name in REFIT_METRICS}
    for item in range(fake.shape[0]):
        real_points, fake_points = refitter.landmarks(real[item]), refitter.landmarks(fake[item])
        real_face = np.isfinite(real_points[:, :68]).all((1, 2))
        fake_face = np.isfinite(fake_points[:, :68]).all((1, 2))
        results["refit_missing_frames"][item] = float((real_face & ~fake_face).sum())
        both = real_face & fake_face
        if both.sum() < min_frames:
            continue
        real_fit, fake_fit = refitter.fit(real_points[both]), refitter.fit(fake_points[both])
        expression = np.linalg.norm(fake_fit.expression - real_fit.expression, axis=1).mean()
        pose = rotation_angle_deg(fake_fit.rotation, real_fit.rotation).mean()
        identity = np.linalg.norm(fake_fit.identity - real_fit.identity)
        for name, value in zip(REFIT_DISTANCES, (expression, pose, identity), strict=True):
            results[name][item] = float(value)
    return results
