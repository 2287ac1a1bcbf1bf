"""Which of mediapipe FaceMesh's 478 points make our 70: written for this project, reasons below.

mediapipe's mesh is a fixed-topology surface (468 vertices + 10 iris points with refinement), while the
68 iBUG points are annotated on contours: jawline, brows, eyelids, lips. So every iBUG point is a position
*along a mesh contour* (a chain of mesh vertices that traces the same anatomical curve), possibly between
two vertices, and we interpolate linearly between them. The chains were read off the mesh topology
(mediapipe's FACEMESH_FACE_OVAL, eyelid, lip and brow edge lists) and ordered in the iBUG direction
(subject's right side = image left first). The positions on each chain follow how the 300-W annotators
spaced points (evenly along the curve, ends at the corners), then the few free ones (where the jaw starts on
the face oval, the brow height between its upper and lower edge, where the nose bridge starts) were checked
numerically against FaceWorld's ground-truth landmarks (`python -m src.landmarks.detectors.evaluate`).

Pupils: iris centres 468 (subject's right eye, image left, the eye of iBUG 36-41 -> our index 68) and 473
(subject's left eye -> index 69); verified on a real photo (tests/landmarks).
"""

from __future__ import annotations

import numpy as np

from src.landmarks.scheme import NUM_LANDMARKS, PUPIL_LEFT, PUPIL_RIGHT

# Face oval from the top of the subject's right cheek (image left, at about eye height) round the chin to the
# same place on the other side. 152 is the chin (menton).
FACE_OVAL = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323,
             454, 356)  # fmt: skip
FACE_OVAL_CHIN = 11
# Eyelids, corner to corner. Right eye (image left): outer corner 33, inner corner 133.
RIGHT_UPPER_LID = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_LOWER_LID = (133, 155, 154, 153, 145, 144, 163, 7, 33)
# Left eye (image right): inner corner 362, outer corner 263.
LEFT_UPPER_LID = (362, 398, 384, 385, 386, 387, 388, 466, 263)
LEFT_LOWER_LID = (263, 249, 390, 373, 374, 380, 381, 382, 362)
# Brows, outer -> inner for the right brow and inner -> outer for the left (the iBUG order 17..26).
RIGHT_BROW_UPPER = (70, 63, 105, 66, 107)
RIGHT_BROW_LOWER = (46, 53, 52, 65, 55)
LEFT_BROW_UPPER = (336, 296, 334, 293, 300)
LEFT_BROW_LOWER = (285, 295, 282, 283, 276)
# Nose ridge from between the eyes down to the tip (1 = pronasale), and the nostril base, image left -> right.
NOSE_RIDGE = (168, 6, 197, 195, 5, 4, 1)
NOSE_BASE = (98, 97, 2, 326, 327)
# Lips: outer upper from the right corner (61) over the philtrum (0) to the left corner (291); outer lower back.
OUTER_UPPER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LOWER_LIP = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
INNER_UPPER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER_LIP = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
RIGHT_IRIS_CENTRE = 468
LEFT_IRIS_CENTRE = 473

# Lip points: positions along the lip chains above. mediapipe's lip vertices crowd towards the corners (on the
# astronaut photo the upper outer lip's vertices sit at arc-length fractions 0, .05, .12, .22, .35, .51, ...), so
# evenly spaced iBUG points are not evenly spaced vertex indices. 50 / 52 are the cupid's-bow peaks (vertices 37 /
# 267), 49 / 53 the vertices between corner and peak (39 / 269); the lower and inner lips mirror that spacing.
# FaceWorld's ground truth agrees (per-point NME of 49-59 went from ~0.10 with index-even spacing to ~0.02).
OUTER_UPPER_POSITIONS = (0.0, 3.0, 4.0, 5.0, 6.0, 7.0, 10.0)  # 48..54 on OUTER_UPPER_LIP
OUTER_LOWER_POSITIONS = (3.0, 4.5, 5.0, 5.5, 7.0)  # 55..59 on OUTER_LOWER_LIP
INNER_UPPER_POSITIONS = (0.0, 3.0, 5.0, 7.0, 10.0)  # 60..64 on INNER_UPPER_LIP
INNER_LOWER_POSITIONS = (3.0, 5.0, 7.0)  # 65..67 on INNER_LOWER_LIP

# The free parameters (see the module docstring), chosen with `evaluate --tune-mediapipe` on 30 FaceWorld faces
# (numbers from that tuning run; the current totals are in tests/landmarks/test_landmark_accuracy_faceworld.py):
# - JAW_START: iBUG 0 / 16 at the oval's first vertex (127 / 356), which on real faces sits at the height of the
#   outer eye corner as in the 300-W annotation (jaw NME 0.146 at 234 / 454 -> 0.096);
# - BROW_UPPER_WEIGHT: iBUG brow points 3/4 of the way to the brow's upper edge (0.75: brows 0.061 -> 0.059);
# - NOSE_RIDGE_START: iBUG 27 at 168, between the eyes (0.0 and 0.5 within 0.0005).
JAW_START = 0.0
BROW_UPPER_WEIGHT = 0.75
NOSE_RIDGE_START = 0.0

Weights = dict[int, float]


def _at(chain: tuple[int, ...], position: float) -> Weights:
    """A point `position` vertices along `chain` (fractional = linear blend of two neighbours)."""
    if not 0.0 <= position <= len(chain) - 1:
        raise ValueError(f"position {position} is outside a chain of {len(chain)} vertices")
    lower = min(int(np.floor(position)), len(chain) - 2)
    frac = position - lower
    weights: Weights = {}
    for vertex, w in ((chain[lower], 1.0 - frac), (chain[lower + 1], frac)):
        if w > 1e-9:
            weights[vertex] = weights.get(vertex, 0.0) + w
    return weights


def _mix(a: Weights, b: Weights, weight_a: float) -> Weights:
    out: Weights = {}
    for weights, scale in ((a, weight_a), (b, 1.0 - weight_a)):
        for vertex, w in weights.items():
            out[vertex] = out.get(vertex, 0.0) + w * scale
    return out


def _evenly(chain: tuple[int, ...], start: float, stop: float, count: int) -> list[Weights]:
    return [_at(chain, p) for p in np.linspace(start, stop, count)]


def build_mapping(
    jaw_start: float = JAW_START,
    brow_upper_weight: float = BROW_UPPER_WEIGHT,
    nose_ridge_start: float = NOSE_RIDGE_START,
) -> list[Weights]:
    """70 entries: for each point of our scheme, mesh vertex -> weight (weights sum to 1)."""
    end = len(FACE_OVAL) - 1
    jaw = _evenly(FACE_OVAL, jaw_start, FACE_OVAL_CHIN, 9) + _evenly(FACE_OVAL, FACE_OVAL_CHIN, end - jaw_start, 9)[1:]
    brows = [
        _mix(_at(upper, i), _at(lower, i), brow_upper_weight)
        for upper, lower in ((RIGHT_BROW_UPPER, RIGHT_BROW_LOWER), (LEFT_BROW_UPPER, LEFT_BROW_LOWER))
        for i in range(5)
    ]
    nose = _evenly(NOSE_RIDGE, nose_ridge_start, len(NOSE_RIDGE) - 1, 4) + [{v: 1.0} for v in NOSE_BASE]
    third = (len(RIGHT_UPPER_LID) - 1) / 3
    right_eye = [_at(RIGHT_UPPER_LID, third * k) for k in range(4)] + [_at(RIGHT_LOWER_LID, third * k) for k in (1, 2)]
    left_eye = [_at(LEFT_UPPER_LID, third * k) for k in range(4)] + [_at(LEFT_LOWER_LID, third * k) for k in (1, 2)]
    outer_mouth = [_at(OUTER_UPPER_LIP, p) for p in OUTER_UPPER_POSITIONS]
    outer_mouth += [_at(OUTER_LOWER_LIP, p) for p in OUTER_LOWER_POSITIONS]
    inner_mouth = [_at(INNER_UPPER_LIP, p) for p in INNER_UPPER_POSITIONS]
    inner_mouth += [_at(INNER_LOWER_LIP, p) for p in INNER_LOWER_POSITIONS]
    mapping = jaw + brows + nose + right_eye + left_eye + outer_mouth + inner_mouth
    mapping.insert(PUPIL_RIGHT, {RIGHT_IRIS_CENTRE: 1.0})
    mapping.insert(PUPIL_LEFT, {LEFT_IRIS_CENTRE: 1.0})
    assert len(mapping) == NUM_LANDMARKS
    return mapping


def mapping_matrix(mapping: list[Weights] | None = None, num_mesh_points: int = 478) -> np.ndarray:
    """(70, num_mesh_points) matrix M so that landmarks70 = M @ mesh_points."""
    matrix = np.zeros((NUM_LANDMARKS, num_mesh_points), dtype=np.float64)
    for row, weights in enumerate(mapping if mapping is not None else build_mapping()):
        for vertex, w in weights.items():
            matrix[row, vertex] = w
    return matrix
