"""Morphable-model loaders on model files the test writes itself, rendered through the same FaceWorld path."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from src.faceworld import FaceWorld
from src.faceworld.model import default_model
from src.geometry.morphable import MorphableModel, load_bfm2017_h5, load_eos_model, read_eos_landmark_mapping


def _y_up(points: np.ndarray) -> np.ndarray:
    out = np.asarray(points, dtype=np.float64).copy()
    out[..., 1:] *= -1.0
    return out


@pytest.fixture(scope="module")
def source() -> MorphableModel:
    return default_model().morphable


def _landmark_vertices(mm: MorphableModel) -> np.ndarray:
    """Single-vertex landmarks: the vertex with the largest barycentric weight (what a file can store)."""
    return mm.landmark_vertices[np.arange(68), np.argmax(mm.landmark_weights, axis=1)]


def _write_bfm(path, mm: MorphableModel, k_id: int = 4, k_exp: int = 3) -> None:
    n = mm.num_vertices
    with h5py.File(path, "w") as f:
        f["shape/model/mean"] = _y_up(mm.mean).reshape(-1).astype(np.float32)
        basis = _y_up(mm.identity_basis[:, :k_id].reshape(n, 3, k_id).transpose(0, 2, 1)).transpose(0, 2, 1)
        f["shape/model/pcaBasis"] = basis.reshape(n * 3, k_id).astype(np.float32)
        f["shape/model/pcaVariance"] = np.full(k_id, 4.0, np.float32)  # std 2: coefficient 1 = 2 x the field
        f["shape/representer/cells"] = mm.triangles.T.astype(np.int32)
        f["shape/representer/points"] = _y_up(mm.mean).T.astype(np.float32)
        ebasis = _y_up(mm.expression_basis[:, :k_exp].reshape(n, 3, k_exp).transpose(0, 2, 1)).transpose(0, 2, 1)
        f["expression/model/mean"] = np.zeros(n * 3, np.float32)
        f["expression/model/pcaBasis"] = ebasis.reshape(n * 3, k_exp).astype(np.float32)
        f["expression/model/pcaVariance"] = np.ones(k_exp, np.float32)
        f["color/model/mean"] = np.tile([0.8, 0.6, 0.5], n).astype(np.float32)
        f["landmarks/ibug68_vertices"] = _landmark_vertices(mm)


def test_bfm2017_h5_roundtrip_and_render(tmp_path, source):
    path = tmp_path / "model2017-test.h5"
    _write_bfm(path, source)
    mm = load_bfm2017_h5(path)
    np.testing.assert_allclose(mm.mean, source.mean, atol=1e-3)
    assert mm.num_identity == 4 and mm.num_expression == 3
    np.testing.assert_allclose(mm.identity_std, 2.0)
    ident = np.array([0.5, -1.0, 0.0, 0.25])
    expected = source.mean + (source.identity_basis[:, :4] @ (2.0 * ident)).reshape(-1, 3)
    np.testing.assert_allclose(mm.identity_shape(ident), expected, atol=1e-3)
    np.testing.assert_array_equal(mm.triangles, source.triangles)  # the winding survives the flip

    world = FaceWorld(morphable_model=mm)
    p = world.sample_params(3)
    assert p.identity.shape == (4,) and p.expression.shape == (3,)
    cam = world.framing_camera(p, 128)
    frame = world.render(p, cam, ("rgb", "depth", "landmarks", "mask", "nmfc"))
    assert (frame["depth"] > 0).mean() > 0.2 and frame["nmfc"].any()
    np.testing.assert_allclose(cam.project_camera(frame["landmarks3d"])[:, :2], frame["landmarks2d"], atol=1e-3)
    # Same geometry as the procedural model for the same shape: the same landmarks and the same face depth.
    proc = FaceWorld()
    q = proc.neutral_params(0, hair=False).replace(identity=np.zeros(16))
    r = p.replace(
        identity=np.zeros(4),
        expression=np.zeros(3),
        yaw=q.yaw,
        pitch=q.pitch,
        roll=q.roll,
        translation=q.translation,
        hair=False,
    )
    cam = proc.framing_camera(q, 128)
    a = proc.render(q, cam, ("depth", "landmarks", "mask"))
    b = world.render(r, cam, ("depth", "landmarks"))
    posed = proc.build_scene(q).vertices[_landmark_vertices(source)]  # camera at the origin: world = camera
    np.testing.assert_allclose(b["landmarks3d"][:68], posed, atol=1e-3)
    skin = (a["mask"] == 1) & (b["depth"] > 0)
    assert np.abs(a["depth_mm"][skin] - b["depth_mm"][skin]).max() < 0.05


def test_bfm_loader_errors_name_file_and_key(tmp_path, source):
    path = tmp_path / "broken.h5"
    _write_bfm(path, source)
    with h5py.File(path, "a") as f:
        del f["shape/model/pcaVariance"]
    with pytest.raises(KeyError, match=r"broken\.h5: missing key 'shape/model/pcaVariance'"):
        load_bfm2017_h5(path)
    with pytest.raises(FileNotFoundError, match=r"nothere\.h5"):
        load_bfm2017_h5(tmp_path / "nothere.h5")
    bad = tmp_path / "text.h5"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match=r"text\.h5: not an HDF5 file"):
        load_bfm2017_h5(bad)


def test_eos_json_model_with_landmark_mapping(tmp_path, source):
    n = source.num_vertices
    k = 3
    basis = _y_up(source.identity_basis[:, :k].reshape(n, 3, k).transpose(0, 2, 1)).transpose(0, 2, 1)
    model = {
        "shape_model": {
            "mean": _y_up(source.mean).reshape(-1).tolist(),
            "orthonormal_pca_basis": basis.reshape(n * 3, k).tolist(),
            "eigenvalues": [1.0, 1.0, 1.0],
            "triangle_list": source.triangles.tolist(),
        },
        "texture_coordinates": source.uv.tolist(),
    }
    (tmp_path / "sfm.json").write_text(json.dumps(model))
    lm = _landmark_vertices(source)
    lines = ["[landmark_mappings]"] + [f"{i + 1} = {int(v)}  # iBUG {i + 1}" for i, v in enumerate(lm)]
    (tmp_path / "ibug_to_sfm.txt").write_text("\n".join(lines) + "\n")
    mm = load_eos_model(tmp_path / "sfm.json", tmp_path / "ibug_to_sfm.txt")
    np.testing.assert_allclose(mm.mean, source.mean, atol=1e-6)
    assert mm.uv is not None and mm.num_expression == 0
    world = FaceWorld(morphable_model=mm)
    p = world.sample_params(1)
    frame = world.render(p, world.framing_camera(p, 96), ("rgb", "position_map", "landmarks"))
    assert frame["position_map"].shape == (256, 256, 3) and frame["landmarks_visible"].sum() > 40
    # A mapping that misses iBUG points is rejected by name.
    (tmp_path / "short.txt").write_text("[landmark_mappings]\n1 = 5\n")
    with pytest.raises(ValueError, match=r"short\.txt: iBUG landmarks \[2, 3"):
        read_eos_landmark_mapping(tmp_path / "short.txt")
    del model["shape_model"]["eigenvalues"]
    (tmp_path / "broken.json").write_text(json.dumps(model))
    with pytest.raises(KeyError, match=r"broken\.json: missing key 'shape_model/eigenvalues'"):
        load_eos_model(tmp_path / "broken.json", tmp_path / "ibug_to_sfm.txt")


def test_model_validation_rejects_inconsistent_arrays(source):
    with pytest.raises(ValueError, match="triangles index vertices outside"):
        MorphableModel(
            mean=source.mean[:10],
            triangles=source.triangles[:5],
            identity_basis=np.zeros((30, 1)),
            identity_std=np.ones(1),
            expression_basis=np.zeros((30, 0)),
            expression_std=np.zeros(0),
            expression_names=(),
            expression_ranges=np.zeros((0, 2)),
            landmark_vertices=np.zeros((68, 3), int),
            landmark_weights=np.ones((68, 3)) / 3,
        )
