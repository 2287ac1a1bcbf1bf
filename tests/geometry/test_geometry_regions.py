"""Face-region masks (src.geometry.regions) against an even-odd polygon loop and FaceWorld's segmentation labels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from src.faceworld.appearance import (
    LABEL_BROWS,
    LABEL_EYES,
    LABEL_HAIR,
    LABEL_LIPS,
    LABEL_MOUTH_INTERIOR,
    LABEL_NECK,
    LABEL_SKIN,
)
from src.geometry.regions import (
    LANDMARK_REGIONS,
    landmark_region_masks,
    position_map_footprint,
    render_vertex_labels,
)
from src.geometry.unwrap import render_uv_texture
from src.geometry.uv import uv_to_texels

FACE_MATERIAL = [LABEL_SKIN, LABEL_HAIR, LABEL_LIPS, LABEL_BROWS, LABEL_NECK]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _even_odd(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel centres inside a closed polygon by ray casting: count the edges a ray to +x crosses (odd = inside)."""
    py, px = np.mgrid[0:height, 0:width].astype(np.float64)
    crossings = np.zeros((height, width), np.int64)
    for k in range(len(polygon)):
        (x0, y0), (x1, y1) = polygon[k], polygon[(k + 1) % len(polygon)]
        if y0 == y1:
            continue
        straddles = (y0 > py) != (y1 > py)
        crossings += straddles & (px < x0 + (py - y0) * (x1 - x0) / (y1 - y0))
    return crossings % 2 == 1


def test_polygon_regions_match_a_ray_casting_loop(frames):
    landmarks = frames[10.0].render["landmarks2d"][:68].astype(np.float64)
    height, width = frames[10.0].render["mask"].shape
    masks = landmark_region_masks(landmarks, height, width)
    polygons = {
        "eye_right": list(range(36, 42)),
        "eye_left": list(range(42, 48)),
        "mouth": list(range(48, 60)),
        "mouth_interior": list(range(60, 68)),
        "nose": [27, 31, 32, 33, 34, 35],
        "face": [*range(0, 17), *range(26, 21, -1), *range(21, 16, -1)],
    }
    for name, indices in polygons.items():
        expected = _even_odd(landmarks[indices], height, width)
        assert expected.sum() > 20, name
        # fillPoly also fills the pixels its edges pass through: the region is the polygon's pixel centres plus at
        # most a one-pixel rim (measured IoU 0.91-0.99), and misses none but rounding cases.
        rim = cv2.dilate(expected.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert (expected & ~masks[name]).sum() <= max(2, 0.01 * expected.sum()), name
        assert not (masks[name] & ~rim).any(), name
        assert _iou(masks[name], expected) > 0.88, (name, _iou(masks[name], expected))
    assert np.array_equal(masks["lips"] | masks["mouth_interior"], masks["mouth"])
    assert not (masks["lips"] & masks["mouth_interior"]).any()
    assert not (masks["skin"] & (masks["eyes"] | masks["mouth"] | masks["brows"])).any()


def test_landmark_regions_cover_faceworlds_labels(frames):
    """IoU of the landmark regions with FaceWorld's true segmentation (frontal-ish frame, mouth open)."""
    frame = frames[10.0]
    labels = frame.render["mask"]
    masks = landmark_region_masks(frame.render["landmarks2d"], *labels.shape)
    # Measured: eyes 0.86, mouth 0.86, mouth interior 0.77, lips 0.65, brows 0.53.
    assert _iou(masks["eyes"], labels == LABEL_EYES) > 0.78
    assert _iou(masks["mouth"], np.isin(labels, [LABEL_LIPS, LABEL_MOUTH_INTERIOR])) > 0.78
    assert _iou(masks["mouth_interior"], labels == LABEL_MOUTH_INTERIOR) > 0.68
    assert _iou(masks["lips"], labels == LABEL_LIPS) > 0.55
    assert _iou(masks["brows"], labels == LABEL_BROWS) > 0.45
    assert (labels[masks["skin"]] == LABEL_SKIN).mean() > 0.9
    # The subject's right eye is on the image's left, and each eye region sits on FaceWorld's eye pixels.
    cols = np.arange(labels.shape[1])
    assert (masks["eye_right"] * cols).sum() / masks["eye_right"].sum() < (masks["eye_left"] * cols).sum() / masks[
        "eye_left"
    ].sum()
    for eye in ("eye_right", "eye_left"):
        assert (labels[masks[eye]] == LABEL_EYES).mean() > 0.75


def test_mesh_labels_reproduce_faceworlds_segmentation(world, frames):
    """FaceWorld's labels are painted in UV; drawn through the posed mesh (per texel or per vertex) they must give
    FaceWorld's own mask on the face material."""
    look_labels = world._identity_appearance(frames[10.0].params).labels
    size = look_labels.shape[0]
    texels = np.round(uv_to_texels(world.model.uv, size)).astype(int).clip(0, size - 1)
    vertex_labels = look_labels[texels[:, 1], texels[:, 0]]
    for frame in frames.values():
        truth = frame.render["mask"]
        by_texel, covered = render_uv_texture(
            look_labels, frame.face_vertices_world, world.model.triangles, world.model.uv, frame.camera, nearest=True
        )
        face = covered & np.isin(truth, FACE_MATERIAL)
        assert face.sum() > 20000 and (by_texel == truth)[face].mean() > 0.995
        by_vertex = render_vertex_labels(frame.face_vertices_world, world.model.triangles, vertex_labels, frame.camera)
        face = (by_vertex > 0) & np.isin(truth, FACE_MATERIAL)
        assert (by_vertex == truth)[face].mean() > 0.97  # measured 0.983: nearest-vertex labels are coarser
        for label in (LABEL_SKIN, LABEL_LIPS):
            assert _iou(by_vertex == label, truth == label) > 0.85


def test_position_map_footprint_is_the_face_region_in_the_image(world, frames):
    """The footprint from the position map alone vs the UV face mask drawn through the mesh (nearest texel)."""
    face_mask = world.uv_face_mask()
    for frame in frames.values():
        footprint = position_map_footprint(frame.render["position_map"], face_mask, 256, 256)
        drawn, _ = render_uv_texture(
            face_mask.astype(np.uint8), frame.face_vertices_world, world.model.triangles, world.model.uv,
            frame.camera, box=world.prnet_uv_box(), nearest=True,
        )  # fmt: skip
        # Measured 0.95: the grid mesh stops half a texel (~0.75 px) inside the mask's edge.
        assert _iou(footprint, drawn.astype(bool)) > 0.92
        assert footprint.sum() > 15000


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="landmarks must have shape"):
        landmark_region_masks(np.zeros((5, 2)), 10, 10)
    with pytest.raises(ValueError, match="unknown region 'ears'"):
        landmark_region_masks(np.zeros((68, 2)), 10, 10, regions=("ears",))
    with pytest.raises(ValueError, match="vertex_labels"):
        render_vertex_labels(np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros(4), None)
    assert set(landmark_region_masks(np.zeros((68, 2)), 4, 4)) == set(LANDMARK_REGIONS)
