"""Face counting for the gate: bystanders of 40-200 px beside the subject are seen, single faces stay single.

The composites are FaceWorld frames whose face count is known by construction (src/capture/face_count_eval.py
pastes a second FaceWorld identity beside the subject); the landmark model's own count is the "before" reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from src.capture.face_count import MAX_FACE_FRACTION, MIN_FACE_FRACTION, FaceBox, FaceCounter, merge_boxes, tile_pyramid
from src.capture.face_count_eval import (
    POSITIONS,
    bystander_centre,
    bystander_cutouts,
    group_photo,
    paste_face,
    subject_frames,
)
from src.capture.gate import MULTIPLE_FACES, FrameGate
from src.landmarks.detectors.base import build_detector

SIZES = (40, 60, 120, 200)


@pytest.fixture(scope="module")
def counter():
    with FaceCounter(min_face_px=40) as face_counter:
        yield face_counter


@pytest.fixture(scope="module")
def landmark_model():
    with build_detector("mediapipe") as detector:
        yield detector


@pytest.fixture(scope="module")
def scenes():
    subjects = subject_frames(identities=(1, 2), frames_per_identity=1)
    return subjects, bystander_cutouts(seeds=(5, 6))


def _fixed_ratio_tile_count(height: int, width: int, min_face_px: float) -> int:
    """The tile count of the plain pyramid (every level MAX/MIN times the last, stride (1 - MAX) of the side)."""
    count, side = 1, min_face_px / MIN_FACE_FRACTION
    while side < max(height, width):
        stride = math.floor(side * (1 - MAX_FACE_FRACTION))
        starts = [1 if round(side) >= n else math.ceil((n - round(side)) / stride) + 1 for n in (height, width)]
        count += starts[0] * starts[1]
        side *= MAX_FACE_FRACTION / MIN_FACE_FRACTION
    return count


@pytest.mark.parametrize(("height", "width"), [(355, 297), (1135, 950), (720, 1280), (2270, 1900)])
def test_the_tile_pyramid_holds_every_face_size_whole_in_a_tile_that_sees_it(height, width):
    """Naive check: random face boxes from 40 px up (log-uniform, so the small sizes of the finest levels are dense);
    one tile must contain the box with the face at a share of the tile the detector finds (MIN..MAX), or the
    whole-frame tile must see it (from MIN up). Brute force over every face and every tile."""
    tiles = tile_pyramid(height, width, 40)
    rng = np.random.default_rng(0)
    size = np.exp(rng.uniform(np.log(40), np.log(0.6 * min(height, width)), 20000))
    size[:3] = 40.0
    x, y = rng.uniform(0, width - size), rng.uniform(0, height - size)
    tx, ty, side = (np.array(tiles, dtype=np.float64)[:, k][None, :] for k in range(3))
    x, y, size = x[:, None], y[:, None], size[:, None]
    inside = (tx <= x) & (ty <= y) & (x + size <= tx + side) & (y + size <= ty + side)
    # the whole-frame tile has no upper limit (no larger face fits the frame), but the lower one holds for it too
    findable = (MIN_FACE_FRACTION * side <= size) & ((size <= MAX_FACE_FRACTION * side) | (side == max(height, width)))
    missed = np.flatnonzero(~(inside & findable).any(axis=1))
    assert missed.size == 0, [(x[i, 0], y[i, 0], size[i, 0]) for i in missed[:5]]
    # every tile lies where it can be cut (a tile may only run past the frame where it is larger than the frame)
    assert all(x >= 0 and y >= 0 and (x + s <= width or x == 0) and (y + s <= height or y == 0) for x, y, s in tiles)
    assert tiles[-1] == (0, 0, max(height, width)) and len(set(tiles)) == len(tiles)
    # the level sides are chosen for the fewest tiles: never more than the plain fixed-ratio pyramid needs
    assert len(tiles) <= _fixed_ratio_tile_count(height, width, 40)


def test_the_chosen_pyramid_needs_a_fifth_fewer_tiles_at_full_kinect_resolution():
    assert _fixed_ratio_tile_count(2270, 1900, 40) == 133  # what the converter ran before, ~1 s a frame
    assert len(tile_pyramid(2270, 1900, 40)) <= 0.8 * 133
    assert len(tile_pyramid(1135, 950, 40)) < 60
    assert tile_pyramid(300, 200, 40) == [(0, 0, 300)]  # a small frame: one tile is enough
    with pytest.raises(ValueError, match="min_face_px"):
        tile_pyramid(100, 100, 0)
    with pytest.raises(ValueError, match="min_face_px is too small"):  # a 0 px tile: an error, not an endless loop
        tile_pyramid(2270, 1900, 0.05)


def test_boxes_of_one_face_from_overlapping_tiles_merge():
    face = FaceBox(100, 100, 200, 200, 0.9)
    part = FaceBox(150, 150, 60, 60, 0.6)  # the same face through a small tile
    other = FaceBox(400, 100, 50, 50, 0.8)
    assert merge_boxes([part, other, face]) == [face, other]


def test_every_bystander_beside_the_subject_is_rejected(counter, landmark_model, scenes):
    subjects, cutouts = scenes
    gate = FrameGate(landmark_model, max_angle_deg=90.0, face_counter=counter)
    old_gate = FrameGate(landmark_model, max_angle_deg=90.0, face_counter=None)  # the landmark model's own count
    missed_before = 0
    for frame, box in subjects:
        for cutout in cutouts:
            for position in POSITIONS[:2] if cutout is cutouts[0] else POSITIONS[2:]:
                centre = bystander_centre(frame, box, position)
                for size in SIZES:
                    composite = paste_face(frame, cutout, size, centre)
                    decision = gate(composite)
                    assert decision.reason == MULTIPLE_FACES, (size, position, decision.reason)
                    missed_before += old_gate(composite).reason != MULTIPLE_FACES
    assert missed_before >= len(subjects) * 4 * 2  # the landmark model missed at least all 40 and 60 px bystanders


def test_no_single_face_frame_is_taken_for_two(counter, landmark_model):
    gate = FrameGate(landmark_model, max_angle_deg=90.0, face_counter=counter)
    for frame, _ in subject_frames(identities=(3, 4, 7), frames_per_identity=1, seed=5):
        assert counter.count(frame) == 1
        assert gate(frame).reason != MULTIPLE_FACES


def test_a_group_photo_of_small_faces_counts_as_several(counter, landmark_model):
    photo = group_photo(num_faces=6, width=1280, height=720, face_fraction=0.1)
    assert counter.count(photo) == 6
    assert len(landmark_model.detect(photo)) < 2  # what the gate used to see: no face, or one
    decision = FrameGate(landmark_model, face_counter=counter)(photo)
    assert decision.reason == MULTIPLE_FACES and decision.num_faces == 6


def test_counter_settings_are_checked():
    with pytest.raises(ValueError, match="min_face_px"):
        FaceCounter(min_face_px=-1)
    with pytest.raises(ValueError, match="face_confidence"):
        FaceCounter(min_confidence=1.5)
