"""Linear 3D morphable models (3DMMs): one interface for FaceWorld's procedural model and real models.

shape(identity, expression) = mean + identity_basis @ (identity * identity_std)
                                   + expression_basis @ (expression * expression_std)
Coordinates are model space in mm in the project's convention: x to the subject's left (image right when
frontal), y down, z away from the viewer (a frontal face looks along -z). Loaders convert from their file's
convention. Landmarks are barycentric points: vertex triples with weights, 68 iBUG points (the 2 pupils
come from the eyeballs the renderer places from the eye corners).

Loaders:
- `load_bfm2017_h5`: the Basel Face Model 2017 h5 layout (statismo): shape/model/{mean, pcaBasis,
  pcaVariance}, shape/representer/{points, cells}, optional expression/model/..., color/model/mean.
  Statismo convention: instance = mean + pcaBasis @ (sqrt(pcaVariance) * coefficients).
- `load_eos_model`: eos's model as JSON (the field names eos's cereal serialisation uses for a PcaModel:
  mean, orthonormal_pca_basis, eigenvalues, triangle_list, plus texture_coordinates) and eos's
  `ibug_to_<model>.txt` landmark-mapping file (TOML `[landmark_mappings]`, iBUG number 1..68 = vertex).
  eos's cereal *binary* .bin files are not supported (their layout is tied to cereal's C++ archive).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomllib

NUM_MODEL_LANDMARKS = 68


@dataclass
class MorphableModel:
    """A linear shape model with identity and expression bases; see the module docstring."""

    mean: np.ndarray  # (N,3) float32 mm
    triangles: np.ndarray  # (F,3) int64, outward normals = cross(v1 - v0, v2 - v0)
    identity_basis: np.ndarray  # (N*3, K_id)
    identity_std: np.ndarray  # (K_id,)
    expression_basis: np.ndarray  # (N*3, K_exp)
    expression_std: np.ndarray  # (K_exp,)
    expression_names: tuple[str, ...]
    expression_ranges: np.ndarray  # (K_exp, 2) valid coefficient range of each expression component
    landmark_vertices: np.ndarray  # (68,3) int64 vertex triples
    landmark_weights: np.ndarray  # (68,3) float32 barycentric weights
    identity_range: float = 3.0  # identity coefficients are in std units, valid in [-range, range]
    uv: np.ndarray | None = None  # (N,2) in [0,1], v downwards
    vertex_albedo: np.ndarray | None = None  # (N,3) in [0,1] when the model has a colour mean
    name: str = "morphable"
    identity_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32)
        n = self.mean.shape[0]
        self.triangles = np.asarray(self.triangles, dtype=np.int64)
        self.identity_basis = np.asarray(self.identity_basis, dtype=np.float32).reshape(n * 3, -1)
        self.expression_basis = np.asarray(self.expression_basis, dtype=np.float32).reshape(n * 3, -1)
        self.identity_std = np.asarray(self.identity_std, dtype=np.float32).reshape(-1)
        self.expression_std = np.asarray(self.expression_std, dtype=np.float32).reshape(-1)
        self.expression_ranges = np.asarray(self.expression_ranges, dtype=np.float32).reshape(-1, 2)
        self.landmark_vertices = np.asarray(self.landmark_vertices, dtype=np.int64)
        self.landmark_weights = np.asarray(self.landmark_weights, dtype=np.float32)
        problems = []
        if self.mean.ndim != 2 or self.mean.shape[1] != 3:
            problems.append(f"mean must be (N,3), got {self.mean.shape}")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
            problems.append(f"triangles must be (F,3), got {self.triangles.shape}")
        elif self.triangles.size and (self.triangles.min() < 0 or self.triangles.max() >= n):
            problems.append(f"triangles index vertices outside 0..{n - 1}")
        if self.identity_basis.shape[1] != self.identity_std.shape[0]:
            problems.append("identity_basis and identity_std disagree on the number of components")
        k_exp = self.expression_basis.shape[1]
        if not (self.expression_std.shape[0] == k_exp == len(self.expression_names) == len(self.expression_ranges)):
            problems.append("expression basis, std, names and ranges disagree on the number of components")
        if self.landmark_vertices.shape != (NUM_MODEL_LANDMARKS, 3) or self.landmark_weights.shape != (
            NUM_MODEL_LANDMARKS,
            3,
        ):
            problems.append(f"landmarks must be ({NUM_MODEL_LANDMARKS},3) vertex triples with weights")
        elif self.landmark_vertices.min() < 0 or self.landmark_vertices.max() >= n:
            problems.append("landmark vertices index outside the mesh")
        if self.uv is not None:
            self.uv = np.asarray(self.uv, dtype=np.float32)
            if self.uv.shape != (n, 2):
                problems.append(f"uv must be (N,2), got {self.uv.shape}")
        if self.vertex_albedo is not None:
            self.vertex_albedo = np.asarray(self.vertex_albedo, dtype=np.float32)
            if self.vertex_albedo.shape != (n, 3):
                problems.append(f"vertex_albedo must be (N,3), got {self.vertex_albedo.shape}")
        if problems:
            raise ValueError(f"morphable model {self.name!r}: " + "; ".join(problems))

    @property
    def num_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_std.shape[0])

    @property
    def num_expression(self) -> int:
        return int(self.expression_std.shape[0])

    def identity_shape(self, identity: np.ndarray) -> np.ndarray:
        """Neutral shape (N,3) of an identity (coefficients in std units)."""
        alpha = self._coefficients(identity, self.num_identity, "identity")
        return self.mean + (self.identity_basis @ (alpha * self.identity_std)).reshape(-1, 3)

    def expression_offsets(self, expression: np.ndarray) -> np.ndarray:
        """Per-vertex displacement (N,3) of an expression."""
        beta = self._coefficients(expression, self.num_expression, "expression")
        return (self.expression_basis @ (beta * self.expression_std)).reshape(-1, 3)

    def shape(self, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
        return self.identity_shape(identity) + self.expression_offsets(expression)

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """The 68 landmark points (68,3) on a shape (N,3)."""
        v = np.asarray(vertices)
        return np.einsum("lk,lkc->lc", self.landmark_weights, v[self.landmark_vertices]).astype(np.float32)

    @staticmethod
    def _coefficients(values: np.ndarray, count: int, name: str) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float32).reshape(-1)
        if arr.shape[0] != count:
            raise ValueError(f"{name}: expected {count} coefficients, got {arr.shape[0]}")
        return arr


def landmarks_from_vertex_indices(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks on single vertices as barycentric triples (weights 1, 0, 0)."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    vertices = np.stack([idx, idx, idx], axis=1)
    weights = np.zeros((len(idx), 3), dtype=np.float32)
    weights[:, 0] = 1.0
    return vertices, weights


def _flip_from_y_up(points: np.ndarray) -> np.ndarray:
    """(x, y up, z towards viewer) -> the project's model space (x, y down, z away from the viewer)."""
    out = np.asarray(points, dtype=np.float64).copy()
    out[..., 1:] *= -1.0
    return out


def _flip_basis_from_y_up(basis: np.ndarray, num_vertices: int) -> np.ndarray:
    b = np.asarray(basis, dtype=np.float64).reshape(num_vertices, 3, -1).copy()
    b[:, 1:, :] *= -1.0
    return b.reshape(num_vertices * 3, -1)


def _fix_winding(mean: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Make outward normals = cross(v1 - v0, v2 - v0): the front of the face (most negative z) faces -z."""
    v = mean[triangles]
    normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    area = np.linalg.norm(normals, axis=1) + 1e-12
    front = v[:, :, 2].mean(1) < np.percentile(mean[:, 2], 20)  # the frontmost fifth of the face
    if front.any() and np.sum(normals[front, 2] / area[front]) > 0:
        return triangles[:, [0, 2, 1]]
    return triangles


def _model_from_y_up(
    name: str,
    mean: np.ndarray,
    triangles: np.ndarray,
    identity_basis: np.ndarray,
    identity_variance: np.ndarray,
    expression_basis: np.ndarray,
    expression_variance: np.ndarray,
    landmark_vertex_indices: np.ndarray,
    scale_to_mm: float,
    vertex_albedo: np.ndarray | None = None,
    uv: np.ndarray | None = None,
) -> MorphableModel:
    """A MorphableModel from a file's y-up, z-towards-viewer arrays (mean flat 3N, bases 3N x K, PCA variances):
    flipped into the project's model space, scaled to mm, outward winding, expressions expr_i valid in [-3, 3]."""
    n = mean.size // 3
    mean3 = _flip_from_y_up(mean.reshape(n, 3)) * scale_to_mm
    lv, lw = landmarks_from_vertex_indices(landmark_vertex_indices)
    k_exp = expression_basis.shape[1]
    return MorphableModel(
        mean=mean3,
        triangles=_fix_winding(mean3, np.asarray(triangles, dtype=np.int64)),
        identity_basis=_flip_basis_from_y_up(identity_basis, n) * scale_to_mm,
        identity_std=np.sqrt(np.maximum(identity_variance, 0.0)),
        expression_basis=_flip_basis_from_y_up(expression_basis, n) * scale_to_mm,
        expression_std=np.sqrt(np.maximum(expression_variance, 0.0)),
        expression_names=tuple(f"expr_{i}" for i in range(k_exp)),
        expression_ranges=np.tile([[-3.0, 3.0]], (k_exp, 1)),
        landmark_vertices=lv,
        landmark_weights=lw,
        uv=uv,
        vertex_albedo=vertex_albedo,
        name=name,
    )


def load_bfm2017_h5(
    path: str | os.PathLike,
    *,
    landmark_vertex_indices: np.ndarray | None = None,
    scale_to_mm: float = 1.0,
    max_identity: int | None = None,
    max_expression: int | None = None,
) -> MorphableModel:
    """Load a BFM2017-style h5 (statismo layout). Errors name the file and the missing key.

    Landmarks: pass `landmark_vertex_indices` (68 vertex ids in iBUG order), or store them in the file under
    `landmarks/ibug68_vertices` (a facesynth addition; BFM ships named landmarks, not an iBUG mapping).
    Expression components are named expr_0.. and valid in [-3, 3] std like the identity.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: morphable model file not found")

    def need(f: h5py.File, key: str) -> np.ndarray:
        if key not in f:
            raise KeyError(f"{p}: missing key {key!r} (not a BFM2017-style h5 model)")
        return np.asarray(f[key])

    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise ValueError(f"{p}: not an HDF5 file ({err})") from None
    with f:
        mean = need(f, "shape/model/mean").reshape(-1)
        basis = need(f, "shape/model/pcaBasis")
        variance = need(f, "shape/model/pcaVariance").reshape(-1)
        cells = need(f, "shape/representer/cells")
        n = mean.size // 3
        if mean.size != n * 3 or basis.shape[0] != mean.size:
            raise ValueError(f"{p}: shape/model/pcaBasis has {basis.shape[0]} rows for {mean.size} mean values")
        tris = cells.T if cells.shape[0] == 3 and cells.shape[1] != 3 else cells
        if "expression/model/mean" in f:
            exp_mean = need(f, "expression/model/mean").reshape(-1)
            exp_basis = need(f, "expression/model/pcaBasis")
            exp_var = need(f, "expression/model/pcaVariance").reshape(-1)
            if exp_basis.shape[0] != mean.size:
                raise ValueError(f"{p}: expression/model/pcaBasis rows do not match the shape's vertex count")
            mean = mean + exp_mean
        else:
            exp_basis = np.zeros((mean.size, 0))
            exp_var = np.zeros(0)
        albedo = None
        if "color/model/mean" in f:
            albedo = np.asarray(f["color/model/mean"]).reshape(-1, 3)
            if albedo.shape[0] != n:
                albedo = None
        if landmark_vertex_indices is None:
            landmark_vertex_indices = need(f, "landmarks/ibug68_vertices")
    if max_identity is not None:
        basis, variance = basis[:, :max_identity], variance[:max_identity]
    if max_expression is not None:
        exp_basis, exp_var = exp_basis[:, :max_expression], exp_var[:max_expression]
    lm = np.asarray(landmark_vertex_indices, dtype=np.int64).reshape(-1)
    if lm.size != NUM_MODEL_LANDMARKS:
        raise ValueError(f"{p}: expected {NUM_MODEL_LANDMARKS} landmark vertex indices, got {lm.size}")
    albedo = None if albedo is None else np.clip(albedo, 0.0, 1.0)
    return _model_from_y_up(p.stem, mean, tris, basis, variance, exp_basis, exp_var, lm, scale_to_mm, albedo)


def read_eos_landmark_mapping(path: str | os.PathLike) -> np.ndarray:
    """eos's `ibug_to_<model>.txt`: TOML `[landmark_mappings]` with iBUG number (1-based) = vertex index.

    Returns (68,) vertex indices; iBUG points the mapping lacks raise an error naming them.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{p}: not a landmark mapping file ({err})") from None
    if "landmark_mappings" not in data:
        raise KeyError(f"{p}: missing table 'landmark_mappings'")
    mapping = {int(k): int(v) for k, v in data["landmark_mappings"].items()}
    missing = [i for i in range(1, NUM_MODEL_LANDMARKS + 1) if i not in mapping]
    if missing:
        raise ValueError(f"{p}: iBUG landmarks {missing[:8]}{'...' if len(missing) > 8 else ''} are not mapped")
    return np.array([mapping[i] for i in range(1, NUM_MODEL_LANDMARKS + 1)], dtype=np.int64)


def load_eos_model(
    path: str | os.PathLike, landmark_mapping: str | os.PathLike, *, scale_to_mm: float = 1.0
) -> MorphableModel:
    """Load an eos-style morphable model stored as JSON plus eos's iBUG landmark-mapping file.

    JSON layout (eos's MorphableModel field names): {"shape_model": {"mean": [3N], "orthonormal_pca_basis":
    [[3N x K] row-major], "eigenvalues": [K], "triangle_list": [[i, j, k], ...]}, optional
    "expression_model": {same fields}, "color_model": {"mean": [3N]}, "texture_coordinates": [[u, v], ...]}.
    eos models are y up, z towards the viewer (like BFM); instance = mean + basis @ (sqrt(eigenvalue) * c).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: morphable model file not found")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{p}: not a JSON model file ({err})") from None

    def need(obj: dict, key: str, where: str) -> object:
        if not isinstance(obj, dict) or key not in obj:
            raise KeyError(f"{p}: missing key {where + key!r} (not an eos-style JSON model)")
        return obj[key]

    shape = need(data, "shape_model", "")
    mean = np.asarray(need(shape, "mean", "shape_model/"), dtype=np.float64).reshape(-1)
    n = mean.size // 3
    basis = np.asarray(need(shape, "orthonormal_pca_basis", "shape_model/"), dtype=np.float64).reshape(mean.size, -1)
    eig = np.asarray(need(shape, "eigenvalues", "shape_model/"), dtype=np.float64).reshape(-1)
    tris = np.asarray(need(shape, "triangle_list", "shape_model/"), dtype=np.int64).reshape(-1, 3)
    if basis.shape[1] != eig.size:
        raise ValueError(f"{p}: shape_model basis has {basis.shape[1]} columns but {eig.size} eigenvalues")
    exp_basis, exp_eig = np.zeros((mean.size, 0)), np.zeros(0)
    if data.get("expression_model"):
        em = data["expression_model"]
        exp_basis = np.asarray(need(em, "orthonormal_pca_basis", "expression_model/"), dtype=np.float64)
        exp_basis = exp_basis.reshape(mean.size, -1)
        exp_eig = np.asarray(need(em, "eigenvalues", "expression_model/"), dtype=np.float64).reshape(-1)
        if "mean" in em:
            mean = mean + np.asarray(em["mean"], dtype=np.float64).reshape(-1)
    albedo = None
    if isinstance(data.get("color_model"), dict) and "mean" in data["color_model"]:
        albedo = np.asarray(data["color_model"]["mean"], dtype=np.float64).reshape(-1, 3)
        albedo = np.clip(albedo, 0, 1) if albedo.shape[0] == n else None
    uv = None
    if data.get("texture_coordinates"):
        uv = np.asarray(data["texture_coordinates"], dtype=np.float64).reshape(-1, 2)
        uv = uv if uv.shape[0] == n else None
    lm = read_eos_landmark_mapping(landmark_mapping)
    if lm.max() >= n:
        raise ValueError(f"{landmark_mapping}: landmark vertex {int(lm.max())} is outside the {n}-vertex model {p}")
    return _model_from_y_up(p.stem, mean, tris, basis, eig, exp_basis, exp_eig, lm, scale_to_mm, albedo, uv)
