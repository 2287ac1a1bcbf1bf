"""Bad parameters give one clear error; renders are deterministic by seed."""

from __future__ import annotations

import numpy as np
import pytest

from src.faceworld import MODALITIES, FaceParams, FaceWorld
from src.geometry.camera import PinholeCamera


@pytest.fixture(scope="module")
def world():
    return FaceWorld()


def test_out_of_range_coefficients_name_the_field(world):
    p = world.neutral_params(0)
    ident = p.identity.copy()
    ident[3] = 4.0
    with pytest.raises(ValueError, match=r"identity\[3\]=4 is outside"):
        p.replace(identity=ident)
    with pytest.raises(ValueError, match=r"expression\[jaw_open\]=1.5 is outside the valid range \[0, 1\]"):
        world.render(p.replace(expression=world.expression(jaw_open=1.5)), world.framing_camera(p, 64))
    with pytest.raises(ValueError, match="yaw=95 is outside"):
        p.replace(yaw=95.0)
    with pytest.raises(ValueError, match=r"gaze\[1\]"):
        p.replace(gaze=np.array([0.0, 50.0]))
    with pytest.raises(ValueError, match="skin_tone"):
        p.replace(skin_tone=1.5)
    with pytest.raises(ValueError, match="light"):
        p.replace(light=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="translation"):
        p.replace(translation=np.array([0.0, 0.0, -100.0]))
    with pytest.raises(ValueError, match="unknown expression component 'grin'"):
        world.expression(grin=1.0)
    with pytest.raises(ValueError, match="has 16 components, got 3"):
        world.render(p.replace(identity=np.zeros(3)), world.framing_camera(p, 64))


def test_unknown_modality_and_zero_size(world):
    p = world.neutral_params(0)
    with pytest.raises(ValueError, match="unknown modality 'thermal'"):
        world.render(p, world.framing_camera(p, 64), ("rgb", "thermal"))
    with pytest.raises(ValueError, match="size must be positive"):
        world.framing_camera(p, 0)
    with pytest.raises(ValueError, match="size must be positive"):
        PinholeCamera(100, 100, 0, 0, 0, 64)


def test_render_is_deterministic_by_seed(world):
    a = world.sample_params(11)
    b = world.sample_params(11)
    c = world.sample_params(12)
    cam = world.framing_camera(a, 96)
    fa = world.render(a, cam, MODALITIES)
    fb = FaceWorld().render(b, cam, MODALITIES)  # a fresh world too: no hidden state
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
    fc = world.render(c, cam, ("rgb",))
    assert np.abs(fa["rgb"].astype(int) - fc["rgb"].astype(int)).mean() > 5


def test_identity_seed_fixes_identity_not_the_rest(world):
    a = world.sample_params(1, identity_seed=5)
    b = world.sample_params(2, identity_seed=5)
    np.testing.assert_array_equal(a.identity, b.identity)
    assert a.albedo_seed == b.albedo_seed and a.yaw != b.yaw


def test_only_requested_modalities_are_returned(world):
    p = world.neutral_params(0)
    out = world.render(p, world.framing_camera(p, 64), ("depth",))
    assert set(out) == {"depth", "depth_mm"}
    out = world.render(p, world.framing_camera(p, 64), ("landmarks",))
    assert set(out) == {"landmarks2d", "landmarks3d", "landmarks_visible"}


def test_background_options(world):
    p = world.neutral_params(0, hair=False)
    cam = world.framing_camera(p, 64, fill=0.3)
    black = world.render(p, cam, ("rgb",))["rgb"]
    assert (black[0, 0] == 0).all()
    red = world.render(p.replace(background=(200, 10, 10)), cam, ("rgb",))["rgb"]
    assert tuple(red[0, 0]) == (200, 10, 10)
    with pytest.raises(ValueError, match="background"):
        FaceParams(identity=p.identity, expression=p.expression, background=(1, 2))
