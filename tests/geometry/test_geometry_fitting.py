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


# ---------------------------------------------------------------------------------------------------- DFDN proxy
def test_fit_proxy_without_prior_is_fit_landmarks_with_ten_iterations(world):
    from src.geometry.fitting import fit_proxy

    p = world.sample_params(5, pose_range_deg=10).replace(expression=world.expression(smile=0.7))
    cam = world.framing_camera(p, 256)
    lm = world.render(p, cam, ("landmarks",))["landmarks2d"]
    proxy = fit_proxy(world.model, lm, cam, expression_regularization=0.3)
    plain = fit_landmarks(world.model, lm, cam, iterations=10)
    np.testing.assert_array_equal(proxy.expression, plain.expression)
    np.testing.assert_array_equal(proxy.identity, plain.identity)
    assert proxy.reprojection_error_px == plain.reprojection_error_px


def test_expression_prior_pulls_the_fit_towards_it(world):
    """Noisy landmarks: with the true expression as the prior the expression error drops below the fit pulled to
    neutral; with an overwhelming weight the fit returns the prior itself."""
    from src.geometry.fitting import fit_proxy

    rng = np.random.default_rng(0)
    errors = {"neutral": [], "prior": []}
    for seed in range(6):
        truth = world.expression(brow_raise=0.9, jaw_open=0.5, smile=0.3)
        p = world.sample_params(seed, pose_range_deg=10).replace(expression=truth)
        cam = world.framing_camera(p, 256)
        noisy = world.render(p, cam, ("landmarks",))["landmarks2d"][:68] + rng.normal(0, 3.0, (68, 2))
        for name, prior in (("neutral", None), ("prior", truth)):
            fit = fit_proxy(world.model, noisy, cam, expression_prior=prior)
            errors[name].append(np.abs(fit.expression - truth).mean())
    assert np.mean(errors["prior"]) < 0.6 * np.mean(errors["neutral"])
    pinned = fit_proxy(world.model, noisy, cam, expression_prior=truth, expression_regularization=1e9)
    np.testing.assert_allclose(pinned.expression, truth, atol=1e-4)
    with pytest.raises(ValueError, match="expression_prior: expected 9 coefficients"):
        fit_proxy(world.model, noisy, cam, expression_prior=np.zeros(3))


def test_expression_dictionary_is_nearest_in_l1(tmp_path):
    from src.geometry.fitting import ExpressionDictionary

    keys = np.array([[5.0, 5.0], [1.0, 1.0], [1.5, 0.0]])
    values = np.array([[0.0], [1.0], [2.0]])
    dictionary = ExpressionDictionary(keys, values)
    query = np.array([0.0, 0.0])  # squared L2: key 1 (2.0) beats key 2 (2.25); L1: key 2 (1.5) beats key 1 (2.0)
    assert np.argmin(((keys - query) ** 2).sum(1)) == 1 and dictionary.nearest(query) == 2
    assert dictionary.nearest(np.array([4.0, 4.5])) == 0
    np.testing.assert_array_equal(dictionary.lookup(query), [2.0])
    dictionary.save(str(tmp_path / "d.npz"))
    assert ExpressionDictionary.load(str(tmp_path / "d.npz")).nearest(query) == 2
    with pytest.raises(ValueError, match="feature: expected 2 values"):
        dictionary.nearest(np.zeros(3))
