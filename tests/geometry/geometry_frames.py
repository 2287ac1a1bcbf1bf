"""FaceWorld frames with everything their ground truth offers, shared by the geometry tests (conftest.py renders
them once per session)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.faceworld import FaceParams, FaceWorld
from src.geometry.camera import PinholeCamera
from src.geometry.sh import sh_light

POSITION_MAP_SIZE = 128
IMAGE_SIZE = 256
AMBIENT = 0.8


@dataclass
class Frame:
    params: FaceParams
    camera: PinholeCamera
    render: dict[str, np.ndarray]
    face_vertices_world: np.ndarray  # the posed face mesh (what a fitted 3DMM gives on real data)
    face_vertices_model: np.ndarray  # the same mesh before the head pose


def render_frames(world: FaceWorld) -> dict[float, Frame]:
    """An open-mouthed, slightly smiling face at yaw 10 and 40 degrees, lit by an ambient-only light (the shading is
    then albedo x cavity occlusion x AMBIENT, no highlight) without wrinkle bumps, on a black background."""
    light = sh_light(ambient=AMBIENT, direction=None)
    out = {}
    for yaw in (10.0, 40.0):
        params = world.neutral_params(identity_seed=4, yaw=yaw, light=light, displacement_strength=0.0)
        params = params.replace(expression=world.expression(jaw_open=0.6, smile=0.3))
        camera = world.framing_camera(params, size=IMAGE_SIZE)
        render = world.render(params, camera, ("rgb", "depth", "mask", "landmarks", "nmfc", "position_map"))
        scene = world.build_scene(params)
        out[yaw] = Frame(params, camera, render, scene.vertices[: scene.num_face_vertices], world.face_vertices(params))
    return out
