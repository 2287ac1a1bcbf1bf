"""FaceParams: everything that decides one rendered face, validated with documented ranges.

Ranges (a value outside raises ValueError naming the field):
- identity (K_id,): shape coefficients in standard deviations, each in [-3, 3]. FaceWorld's model has 16
  named components (src.faceworld.model.IDENTITY_NAMES: face_width, face_length, head_depth, jaw_width, chin,
  nose_length, nose_width, nose_protrusion, eye_spacing, eye_height, brow_ridge, cheekbones, lip_fullness,
  mouth_width, forehead_slope, cheek_fullness).
- expression (K_exp,): FaceWorld's 9 components (EXPRESSION_NAMES) are each in [0, 1]: jaw_open (1 = 16
  degrees of jaw rotation), smile, lips_pucker, brow_raise, brow_frown, blink_left, blink_right (1 = closed;
  left = the subject's left eye, landmarks 42-47), cheek_puff, mouth_frown. A loaded 3DMM's expression
  coefficients are in std units within its own ranges (checked by FaceWorld.check_params).
- yaw in [-80, 80], pitch in [-60, 60], roll in [-60, 60] degrees (see src.geometry.pose for the signs).
- translation (3,): camera-space position of the head origin in mm, z in [150, 5000] (usually 500-900).
- gaze (2,): eye yaw and pitch in degrees relative to the head, each in [-35, 35].
- light (9, 3): SH lighting coefficients (src.geometry.sh; shading = irradiance_basis(n) @ light).
- albedo_seed >= 0 (texture details, hair / iris colour), skin_tone in [0, 1] (light -> dark), hair (bool).
- background: None (black), an int seed (a smooth random backdrop) or an (r, g, b) colour 0-255.
- displacement_strength in [0, 3]: scales the wrinkle (displacement) maps; 1 = natural.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from src.geometry.sh import check_light, sh_light

IDENTITY_LIMIT = 3.0
YAW_LIMIT = 80.0
PITCH_LIMIT = 60.0
ROLL_LIMIT = 60.0
GAZE_LIMIT = 35.0
DEPTH_RANGE_MM = (150.0, 5000.0)
DISPLACEMENT_LIMIT = 3.0


def default_light() -> np.ndarray:
    """Soft frontal key light from the upper left of the camera plus ambient."""
    return sh_light(ambient=0.45, direction=(-0.5, -0.45, -0.85), intensity=0.7)


def _vector(value: object, name: str, length: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"FaceParams.{name}: expected {length} values, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"FaceParams.{name}: contains NaN or infinity")
    return arr


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not (lo <= value <= hi) or not np.isfinite(value):
        raise ValueError(f"FaceParams.{name}={value:g} is outside the valid range [{lo:g}, {hi:g}]")


@dataclass(frozen=True)
class FaceParams:
    """One face: identity, expression, pose, gaze, light and appearance; see the module docstring."""

    identity: np.ndarray
    expression: np.ndarray
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    translation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 700.0]))
    gaze: np.ndarray = field(default_factory=lambda: np.zeros(2))
    light: np.ndarray = field(default_factory=default_light)
    albedo_seed: int = 0
    skin_tone: float = 0.3
    hair: bool = True
    background: int | tuple[int, int, int] | None = None
    displacement_strength: float = 1.0

    def __post_init__(self) -> None:
        identity = _vector(self.identity, "identity")
        bad = np.nonzero(np.abs(identity) > IDENTITY_LIMIT)[0]
        if len(bad):
            k = int(bad[0])
            raise ValueError(
                f"FaceParams.identity[{k}]={identity[k]:g} is outside the valid range "
                f"[{-IDENTITY_LIMIT:g}, {IDENTITY_LIMIT:g}] (standard deviations)"
            )
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "expression", _vector(self.expression, "expression"))
        _check_range("yaw", float(self.yaw), -YAW_LIMIT, YAW_LIMIT)
        _check_range("pitch", float(self.pitch), -PITCH_LIMIT, PITCH_LIMIT)
        _check_range("roll", float(self.roll), -ROLL_LIMIT, ROLL_LIMIT)
        t = _vector(self.translation, "translation", 3)
        _check_range("translation[2] (head distance, mm)", float(t[2]), *DEPTH_RANGE_MM)
        object.__setattr__(self, "translation", t)
        gaze = _vector(self.gaze, "gaze", 2)
        for k, g in enumerate(gaze):
            _check_range(f"gaze[{k}]", float(g), -GAZE_LIMIT, GAZE_LIMIT)
        object.__setattr__(self, "gaze", gaze)
        object.__setattr__(self, "light", check_light(self.light, "FaceParams.light"))
        if int(self.albedo_seed) < 0:
            raise ValueError(f"FaceParams.albedo_seed must be >= 0, got {self.albedo_seed}")
        object.__setattr__(self, "albedo_seed", int(self.albedo_seed))
        _check_range("skin_tone", float(self.skin_tone), 0.0, 1.0)
        _check_range("displacement_strength", float(self.displacement_strength), 0.0, DISPLACEMENT_LIMIT)
        bg = self.background
        if bg is not None and not isinstance(bg, (int, np.integer)):
            col = np.asarray(bg)
            if col.shape != (3,) or np.any(col < 0) or np.any(col > 255):
                raise ValueError(f"FaceParams.background must be None, an int seed or an RGB triple 0-255, got {bg!r}")
            object.__setattr__(self, "background", tuple(int(c) for c in col))
        object.__setattr__(self, "hair", bool(self.hair))

    def replace(self, **changes: object) -> FaceParams:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @property
    def head_rotation_deg(self) -> tuple[float, float, float]:
        return float(self.yaw), float(self.pitch), float(self.roll)
