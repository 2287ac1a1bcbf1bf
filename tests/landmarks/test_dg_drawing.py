"""DG's landmark drawing (src.landmarks.drawing.draw_dg_landmarks) against a naive transcription of the original's
show_map, and the half-face choice at large yaw on FaceWorld faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from src.faceworld.writers.common import video_camera, world_for
from src.landmarks.drawing import dg_face_part, draw_dg_landmarks


def naive_show_map(points: np.ndarray) -> np.ndarray:
    """The original's show_map at 256 px, transcribed loop by loop (line width 2)."""
    x = [int(float(p)) for p in points[:, 0]]
    y = [int(float(p)) for p in points[:, 1]]
    img = np.zeros((256, 256), np.uint8)

    def line(a: int, b: int) -> None:
        cv2.line(img, (x[a], y[a]), (x[b], y[b]), 255, 2)

    if x[42] - x[36] <= 30 and x[30] > x[42]:
        for lo, hi in ((0, 12), (17, 21), (27, 30), (31, 33), (36, 41), (48, 51), (60, 62), (57, 59)):
            for n in range(lo, hi):
                line(n, n + 1)
        for a, b in ((36, 41), (51, 62), (60, 67), (66, 67), (57, 66), (48, 59)):
            line(a, b)
    elif x[45] - x[39] <= 30 and x[30] < x[42]:
        for lo, hi in ((4, 16), (22, 26), (27, 30), (33, 35), (42, 47), (51, 57), (62, 66)):
            for n in range(lo, hi):
                line(n, n + 1)
        for a, b in ((42, 47), (51, 62), (66, 57)):
            line(a, b)
    else:
        for lo, hi in ((0, 16), (17, 21), (22, 26), (27, 30), (31, 35), (36, 41), (42, 47), (48, 59), (60, 67)):
            for n in range(lo, hi):
                line(n, n + 1)
        for a, b in ((36, 41), (42, 47), (48, 59), (60, 67)):
            line(a, b)
    return img


def faceworld_points(yaw: float) -> np.ndarray:
    """68 landmarks of a FaceWorld face at this yaw, moved into a 256 crop."""
    world = world_for()
    params = world.neutral_params(3).replace(yaw=yaw)
    pts = video_camera().project(world.landmarks3d(params))[:68]
    centre = pts.mean(0)
    scale = 150.0 / (pts[:, 1].max() - pts[:, 1].min())
    return (pts - centre) * scale + 128.3


def squeeze_eyes(points: np.ndarray, nose_right: bool) -> np.ndarray:
    """Move the eyes so that both of show_map's branch tests hold for one side (its half drawings get exercised)."""
    out = points.copy()
    out[36:48, 0] = np.linspace(100, 125, 12)
    out[30, 0] = 140 if nose_right else 90
    return out


@pytest.mark.parametrize("yaw", [0.0, 15.0, -45.0, -60.0, 60.0, 75.0])
@pytest.mark.parametrize("squeeze", [None, True, False])
def test_show_map_rule_equals_the_original_loops(yaw: float, squeeze: bool | None):
    points = faceworld_points(yaw) if squeeze is None else squeeze_eyes(faceworld_points(yaw), squeeze)
    np.testing.assert_array_equal(draw_dg_landmarks(points, 256, half_face="show_map"), naive_show_map(points))
    if squeeze is not None:
        assert dg_face_part(points, 256, "show_map") == ("left" if squeeze else "right")


def test_symmetric_rule_draws_the_visible_half_at_large_yaw():
    assert dg_face_part(faceworld_points(0.0), 256) == "full" == dg_face_part(faceworld_points(30.0), 256)
    # the nose points towards image right at +60 degrees: the image-left half (points 0-12, eye 36-41) is seen
    right_turn, left_turn = faceworld_points(60.0), faceworld_points(-60.0)
    assert right_turn[30, 0] > right_turn[42, 0] and dg_face_part(right_turn, 256) == "left"
    assert left_turn[30, 0] < left_turn[42, 0] and dg_face_part(left_turn, 256) == "right"
    # show_map's near-eye gaps stay wide on these faces: it draws them whole (the documented quirk)
    assert dg_face_part(right_turn, 256, "show_map") == "full" == dg_face_part(left_turn, 256, "show_map")
    drawn = draw_dg_landmarks(right_turn, 256) > 0
    assert (draw_dg_landmarks(right_turn, 256, half_face="off") > 0).sum() > drawn.sum()
    assert drawn[:, 128:].sum() < drawn[:, :128].sum()


def test_coordinates_truncate_and_the_gap_scales_with_size():
    points = faceworld_points(0.0)
    shifted = points + 0.9  # int() truncates: +0.9 px lands on the same pixels unless a coordinate crosses one
    same = np.trunc(shifted) == np.trunc(points)
    if same.all():
        np.testing.assert_array_equal(draw_dg_landmarks(shifted), draw_dg_landmarks(points))
    for yaw in (0.0, 60.0):
        assert dg_face_part(faceworld_points(yaw) / 2.0, 128) == dg_face_part(faceworld_points(yaw), 256)
    with pytest.raises(ValueError, match="68"):
        draw_dg_landmarks(points[:60])
