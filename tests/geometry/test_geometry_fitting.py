"""Landmark fitting of a morphable model recovers FaceWorld's true pose and expression."""

from __future__ import annotations

import numpy as np
import pytest

from src.faceworld import FaceWorld
from src.geometry.camera import OrthographicCamera
from src.geometry.fitting import fit_landmarks


@pytest.fixture(scope="module")
def world():
    return FaceWorld()


@pytest.mark.parametrize("seed", [4, 9])
def test_fit_recovers_pose_and_expression_orthographic(world, seed):
    p = world.sample_params(seed, pose_range_deg=20).replace(
        expression=world.expression(jaw_open=0.6, smile=0.5), hair=False
    )
    ortho = OrthographicCamera.matching(world.framing_camera(p, 256), p.translation[2])
    frame = world.render(p, ortho, ("landmarks",))
    fit = fit_landmarks(world.model, frame["landmarks2d"], ortho)
    assert fit.reprojection_error_px < 0.5
    np.testing.assert_allclose(
        [fit.yaw, fit.pitch, fit.roll], [p.yaw, p.pitch, p.roll], atol=2.5
    )  # identity and pose trade off a little
    names = world.expression_names
    assert abs(fit.expression[names.index("jaw_open")] - 0.6) < 0.1
    assert abs(fit.expression[names.index("smile")] - 0.5) < 0.15
    assert np.corrcoef(fit.identity, p.identity)[0, 1] > 0.5


def test_fit_with_known_identity_and_bad_input(world):
    p = world.sample_params(2, pose_range_deg=10).replace(expression=world.expression(jaw_open=0.8))
    cam = world.framing_camera(p, 256)
    frame = world.render(p, cam, ("landmarks",))
    fit = fit_landmarks(world.model, frame["landmarks2d"], cam, identity=p.identity, fit_identity=False)
    np.testing.assert_array_equal(fit.identity, p.identity)
    assert fit.reprojection_error_px < 3.0  # weak perspective on a pinhole image
    assert abs(fit.expression[world.expression_names.index("jaw_open")] - 0.8) < 0.15
    with pytest.raises(ValueError, match="expected shape"):
        fit_landmarks(world.model, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="at least 8 visible"):
        fit_landmarks(world.model, frame["landmarks2d"], visible=np.zeros(70, bool))
