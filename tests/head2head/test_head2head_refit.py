"""Re-fitting distances (head2head_refit.py) against FaceWorld's truth: FaceWorld renders the same person with a
known head rotation or expression change, and the distances must see exactly that change and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.faceworld.params import FaceParams
from src.faceworld.writers.common import crop_camera, fixed_video_box, video_camera, world_for
from src.geometry.pose import euler_to_rotation
from src.models.components.head2head_refit import FaceRefitter, refit_distances, rotation_angle_deg

SIZE = 96


def render_clip(params: list[FaceParams], box: tuple[float, float, float]) -> torch.Tensor:
    """(1, T, 3, SIZE, SIZE) frames in [-1, 1] through one fixed crop camera, as the Head2Head writer frames them."""
    world = world_for()
    camera = crop_camera(video_camera(), *box, SIZE)
    frames = [world.render(p, camera, ("rgb",))["rgb"] for p in params]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).unsqueeze(0)


@pytest.fixture(scope="module")
def clips() -> dict[str, torch.Tensor]:
    world = world_for()
    base = world.neutral_params(3)
    names = world.expression_names
    talking = [base.replace(yaw=float(y), pitch=2.0) for y in (-6.0, -2.0, 2.0, 6.0)]
    box = fixed_video_box(world, talking, video_camera())
    turned = [p.replace(yaw=p.yaw + 10.0) for p in talking]
    open_mouth = np.zeros(len(names))
    open_mouth[names.index("jaw_open")] = 0.8
    speaking = [p.replace(expression=open_mouth) for p in talking]
    smile = np.zeros(len(names))
    smile[names.index("smile")] = 0.8
    smiling = [p.replace(expression=smile) for p in talking]
    other_person = [world.neutral_params(11).replace(yaw=p.yaw, pitch=p.pitch) for p in talking]
    return {
        "real": render_clip(talking, box),
        "turned": render_clip(turned, box),
        "speaking": render_clip(speaking, box),
        "smiling": render_clip(smiling, box),
        "other": render_clip(other_person, box),
    }


@pytest.fixture(scope="module")
def refitter() -> FaceRefitter:
    return FaceRefitter()


def test_rotation_angle_matches_the_euler_difference() -> None:
    first = np.stack([euler_to_rotation(12.0, 0.0, 0.0), euler_to_rotation(0.0, 0.0, 0.0)])
    second = np.stack([euler_to_rotation(2.0, 0.0, 0.0), euler_to_rotation(0.0, 0.0, 30.0)])
    np.testing.assert_allclose(rotation_angle_deg(first, second), [10.0, 30.0], atol=1e-6)


def test_identical_clips_have_zero_distances(clips: dict, refitter: FaceRefitter) -> None:
    scores = refit_distances(clips["real"], clips["real"], refitter)
    for name in ("expression_distance", "pose_distance_deg", "identity_distance", "refit_missing_frames"):
        assert float(scores[name][0]) == pytest.approx(0.0, abs=1e-5), name


def test_a_turned_head_shows_in_the_pose_distance_only(clips: dict, refitter: FaceRefitter) -> None:
    turned = refit_distances(clips["turned"], clips["real"], refitter)
    speaking = refit_distances(clips["speaking"], clips["real"], refitter)
    # FaceWorld turned every frame by 10 degrees of yaw: the re-fits see it within the fit's error
    assert 6.0 < float(turned["pose_distance_deg"][0]) < 14.0
    assert float(speaking["pose_distance_deg"][0]) < 3.0
    # an open mouth is an expression change, far larger than what the turn leaves in the expression fit
    assert float(speaking["expression_distance"][0]) > 2.0 * float(turned["expression_distance"][0])
    smiling = refit_distances(clips["smiling"], clips["real"], refitter)
    assert float(smiling["pose_distance_deg"][0]) < 3.0
    assert float(smiling["expression_distance"][0]) > float(turned["expression_distance"][0])


def test_another_person_shows_in_the_identity_distance(clips: dict, refitter: FaceRefitter) -> None:
    """Landmark fits confound shape and expression (an open jaw moves the identity fit too), so the person is
    compared with pose and mild expression changes of the same person."""
    other = float(refit_distances(clips["other"], clips["real"], refitter)["identity_distance"][0])
    for change in ("turned", "smiling"):
        assert other > 1.2 * float(refit_distances(clips[change], clips["real"], refitter)["identity_distance"][0])


def test_faceless_frames_are_counted_and_leave_the_distances_undefined(clips: dict, refitter: FaceRefitter) -> None:
    blank = torch.full_like(clips["real"], -1.0)
    scores = refit_distances(blank, clips["real"], refitter)
    assert float(scores["refit_missing_frames"][0]) == clips["real"].shape[1]
    assert torch.isnan(scores["expression_distance"]).all() and torch.isnan(scores["identity_distance"]).all()
    with pytest.raises(ValueError, match="one shape"):
        refit_distances(blank[:, :2], clips["real"], refitter)
