"""The 70-point facial landmark scheme used by every system: 68 iBUG points + 2 pupils.

Index 68 is the pupil of the eye drawn by points 36-41 (the subject's right eye, image left),
index 69 the pupil of the eye drawn by points 42-47. All drawing, cropping, pose and
NME code reads the groups from here so there is one definition of the scheme.
"""

from __future__ import annotations

NUM_LANDMARKS = 70
NUM_IBUG = 68
PUPIL_RIGHT = 68  # pupil of the eye of points 36-41
PUPIL_LEFT = 69  # pupil of the eye of points 42-47

JAW = tuple(range(0, 17))
BROW_RIGHT = tuple(range(17, 22))
BROW_LEFT = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
NOSE_BOTTOM = tuple(range(31, 36))
EYE_RIGHT = tuple(range(36, 42))
EYE_LEFT = tuple(range(42, 48))
MOUTH_OUTER = tuple(range(48, 60))
MOUTH_INNER = tuple(range(60, 68))

# The feature image of the RGBD system: open polylines and closed loops between consecutive points.
OPEN_CONTOURS: tuple[tuple[int, ...], ...] = (JAW, BROW_RIGHT, BROW_LEFT, NOSE_BRIDGE, NOSE_BOTTOM)
CLOSED_CONTOURS: tuple[tuple[int, ...], ...] = (EYE_RIGHT, EYE_LEFT, MOUTH_OUTER, MOUTH_INNER)
PUPILS = (PUPIL_RIGHT, PUPIL_LEFT)

# Regions for part-wise losses and per-region errors.
REGIONS: dict[str, tuple[int, ...]] = {
    "jaw": JAW,
    "brows": BROW_RIGHT + BROW_LEFT,
    "nose": NOSE_BRIDGE + NOSE_BOTTOM,
    "eyes": EYE_RIGHT + EYE_LEFT,
    "mouth": MOUTH_OUTER + MOUTH_INNER,
    "pupils": PUPILS,
}

# Outer eye corners: the inter-ocular distance that normalises NME (300-W convention).
OUTER_EYE_CORNERS = (36, 45)

# The nose box of the RGBD conversion: x from landmark 32 to 34, y from landmark 29 to 32.
NOSE_BOX_X = (32, 34)
NOSE_BOX_Y = (29, 32)
NOSE_TIP = 30
