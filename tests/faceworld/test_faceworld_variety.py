"""Variety that matters: identities differ, expressions move the right landmarks, wrinkles follow expressions."""

from __future__ import annotations

import numpy as np
import pytest

from src.faceworld import FaceWorld
from src.faceworld.appearance import uv_layout
from src.landmarks.scheme import BROW_LEFT, BROW_RIGHT, EYE_LEFT, EYE_RIGHT, JAW, MOUTH_INNER, MOUTH_OUTER


@pytest.fixture(scope="module")
def world():
    return FaceWorld()


def _model_landmarks(world, p):
    return world.model.landmarks(world.face_vertices(p))


def test_identities_differ_in_geometry_and_albedo(world):
    shapes, albedos = [], []
    for ident in range(4):
        p = world.neutral_params(ident)
        lm = _model_landmarks(world, p)
        lm = lm - lm.mean(0)
        shapes.append(lm / np.linalg.norm(lm))
        albedos.append(world.render(p, world.framing_camera(p, 128), ("uv_texture",))["uv_texture"].astype(float))
    for i in range(4):
        for j in range(i + 1, 4):
            # Normalised landmark geometry differs by far more than float noise (about 1% of the face size).
            assert np.linalg.norm(shapes[i] - shapes[j]) > 0.01
            assert np.abs(albedos[i] - albedos[j]).mean() > 3.0


def test_identity_components_move_their_region(world):
    base = world.neutral_params(0).replace(identity=np.zeros(world.model.num_identity))
    names = world.model.identity_names
    ref = _model_landmarks(world, base)
    nose = world.neutral_params(0).replace(identity=np.eye(len(names))[names.index("nose_length")] * 2.0)
    moved = np.linalg.norm(_model_landmarks(world, nose) - ref, axis=1)
    assert moved[30] > 4.0 and moved[list(JAW)].max() < 0.5
    wide = base.replace(identity=np.eye(len(names))[names.index("jaw_width")] * 2.0)
    dx = _model_landmarks(world, wide)[:, 0] - ref[:, 0]
    assert dx[5] < -1.0 and dx[11] > 1.0 and np.abs(dx[17:27]).max() < 0.5


def _moves(world, **expression):
    base = world.neutral_params(1)
    ref = _model_landmarks(world, base)
    return _model_landmarks(world, base.replace(expression=world.expression(**expression))) - ref


def test_jaw_open_moves_the_lower_face_only(world):
    d = _moves(world, jaw_open=1.0)
    assert d[57, 1] > 8.0 and d[8, 1] > 8.0 and d[66, 1] > 8.0
    assert np.abs(d[list(EYE_RIGHT + EYE_LEFT + BROW_RIGHT + BROW_LEFT)]).max() < 0.3
    assert abs(d[62, 1]) < 1.5  # the upper lip stays


def test_smile_raises_and_widens_mouth_corners(world):
    d = _moves(world, smile=1.0)
    assert d[48, 0] < -2.0 and d[54, 0] > 2.0
    assert d[48, 1] < -2.0 and d[54, 1] < -2.0
    assert np.abs(d[list(BROW_RIGHT + BROW_LEFT)]).max() < 0.5


def test_brow_raise_and_frown(world):
    d = _moves(world, brow_raise=1.0)
    assert (d[list(BROW_RIGHT + BROW_LEFT), 1] < -3.0).all()
    assert np.abs(d[list(MOUTH_OUTER + MOUTH_INNER)]).max() < 0.3
    d = _moves(world, brow_frown=1.0)
    assert d[21, 0] > 1.0 and d[22, 0] < -1.0 and d[21, 1] > 1.0


def test_blinks_close_each_eye_and_hide_its_pupil(world):
    p = world.neutral_params(1)
    for name, eye, other, pupil in (("blink_right", EYE_RIGHT, EYE_LEFT, 68), ("blink_left", EYE_LEFT, EYE_RIGHT, 69)):
        closed = p.replace(expression=world.expression(**{name: 1.0}))
        lm = _model_landmarks(world, closed)
        opening = np.linalg.norm(lm[eye[1]] - lm[eye[5]])
        other_opening = np.linalg.norm(lm[other[1]] - lm[other[5]])
        assert opening < 0.5 < 5.0 < other_opening
        f = world.render(closed, world.framing_camera(closed, 256), ("landmarks",))
        assert not f["landmarks_visible"][pupil] and f["landmarks_visible"][137 - pupil]


def test_gaze_moves_the_pupils(world):
    p = world.neutral_params(1)
    right = world.landmarks3d(p.replace(gaze=np.array([20.0, 0.0])))
    left = world.landmarks3d(p.replace(gaze=np.array([-20.0, 0.0])))
    assert (right[[68, 69], 0] - left[[68, 69], 0] > 4.0).all()
    assert np.abs(right[:68] - left[:68]).max() < 1e-9


def test_cheek_puff_and_pucker(world):
    base = world.neutral_params(1)
    puffed = world.face_vertices(base.replace(expression=world.expression(cheek_puff=1.0)))
    width = np.ptp(puffed[:, 0][np.abs(puffed[:, 1] - 50) < 5])
    assert width > np.ptp(world.face_vertices(base)[:, 0][np.abs(world.face_vertices(base)[:, 1] - 50) < 5]) - 1e-6
    d = _moves(world, lips_pucker=1.0)
    assert d[51, 2] < -4.0 and d[48, 0] > 1.0 and d[54, 0] < -1.0


def test_wrinkles_appear_with_their_expression(world):
    p = world.neutral_params(4).replace(displacement_strength=1.5)
    layout = uv_layout(world.uv_size)
    forehead = (layout.y < -40) & (layout.y > -75) & (np.abs(layout.x) < 35)
    crows = (np.abs(layout.x) > 46) & (np.abs(layout.x) < 60) & (np.abs(layout.y + 4) < 10)
    neutral = world.render(p, world.framing_camera(p, 64), ("displacement",))["displacement"]
    raised = world.render(
        p.replace(expression=world.expression(brow_raise=1.0)), world.framing_camera(p, 64), ("displacement",)
    )["displacement"]
    smiling = world.render(
        p.replace(expression=world.expression(smile=1.0)), world.framing_camera(p, 64), ("displacement",)
    )["displacement"]
    # Grooves (negative displacement, mm) deepen where the expression creases the skin, and only there.
    assert (raised - neutral)[forehead].min() < -0.4
    assert (smiling - neutral)[crows].min() < -0.4
    assert np.abs(smiling - neutral)[forehead].max() < 0.02
    assert np.abs(raised - neutral)[crows].max() < 0.02
    # And they show in the image: the forehead's high-frequency energy rises with brow raise.
    cam = world.framing_camera(p, 256, fill=0.5)
    img0 = world.render(p, cam, ("rgb",))["rgb"].astype(float).mean(2)
    p_up = p.replace(expression=world.expression(brow_raise=1.0))
    img1 = world.render(p_up, cam, ("rgb",))["rgb"].astype(float).mean(2)
    lm = world.render(p, cam, ("landmarks",))["landmarks2d"]
    top = int(lm[list(BROW_RIGHT + BROW_LEFT), 1].min()) - 4
    x0, x1 = int(lm[19, 0]), int(lm[24, 0])
    band0 = np.abs(np.diff(img0[top - 25 : top, x0:x1], axis=0)).mean()
    band1 = np.abs(np.diff(img1[top - 25 : top, x0:x1], axis=0)).mean()
    assert band1 > 1.3 * band0
