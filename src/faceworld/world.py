"""FaceWorld: sample face parameters and render every modality the systems consume, on a CPU.

One scene = the morphable face mesh (identity + expression, optional hair volume), two eyeballs placed from
the eye corners and turned by the gaze, and a mouth-interior surface (teeth, tongue, throat) spanned behind
the inner-lip landmarks. The scene is posed (yaw, pitch, roll, translation), seen through a pinhole or an
orthographic camera, rasterised once with the vectorised z-buffer, and each requested modality is computed
from the same fragments, so rgb, depth, landmarks and mask agree pixel for pixel.

Render output keys (only what is requested is computed):
    rgb (H,W,3) uint8 RGB | depth (H,W) uint16 mm, 0 = no data, and depth_mm (H,W) float32 | ir (H,W) uint16
    landmarks -> landmarks2d (70,2) float px, landmarks3d (70,3) camera mm, landmarks_visible (70,) bool
    mask (H,W) uint8 labels (src.faceworld.appearance.MASK_LABELS: 0 background, 1 skin, 2 hair, 3 eyes,
        4 mouth interior, 5 lips, 6 brows, 7 neck)
    nmfc (H,W,3) uint8: the face mesh coloured by normalised mean-face coordinates, orthographic camera (the
        weak-perspective twin of a pinhole camera at the head's depth)
    position_map (P,P,3) float32: PRNet-style UV position map: x, y in image pixels, z = (z_head - z) * f /
        z_head in pixels (towards the camera, 0 at the head origin's depth); 0 outside the face UV mask
    uv_texture (S,S,3) uint8 albedo | displacement (S,S) float32 mm | normal_map (S,S,3) uint8 tangent space
The position map covers the UV box `prnet_uv_box()` at `position_map_size`; `uv_keypoint_indices()` gives the
68 landmarks' (row, col) in it and `uv_face_mask()` its valid texels.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import sparse

from src.faceworld import appearance as app
from src.faceworld.model import (
    MM_PER_U_FRONT,
    FaceWorldModel,
    default_model,
    ear_weight,
    face_region,
    front_coordinates,
)
from src.faceworld.params import FaceParams, default_light
from src.geometry.camera import OrthographicCamera, PinholeCamera
from src.geometry.morphable import MorphableModel
from src.geometry.nmfc import nmfc_vertex_colors, render_nmfc
from src.geometry.pose import euler_to_rotation
from src.geometry.rasterizer import Fragments, interpolate, rasterize
from src.geometry.sh import irradiance_basis, sh_light
from src.geometry.uv import (
    position_map,
    rasterize_uv,
    sample_image,
    texel_centers_uv,
    uv_coverage_mask,
    uv_keypoint_indices,
)
from src.landmarks.scheme import NUM_LANDMARKS, PUPIL_LEFT, PUPIL_RIGHT

MODALITIES = (
    "rgb",
    "depth",
    "ir",
    "landmarks",
    "mask",
    "nmfc",
    "position_map",
    "uv_texture",
    "displacement",
    "normal_map",
)
_NEEDS_RASTER = {"rgb", "depth", "ir", "landmarks", "mask"}
MATERIAL_FACE, MATERIAL_EYE, MATERIAL_MOUTH = 0, 1, 2
DISPLAY_GAMMA = 2.2
DEFAULT_EYE_OFFSET_MM = np.array([0.0, 0.0, 10.0])
DEFAULT_EYE_RADIUS_MM = 12.0
_MOUTH_ABOVE_MM = 6.0  # the mouth interior reaches this far above the upper inner lip ...
_MOUTH_BELOW_MM = 9.0  # ... and this far below the lower one
# Linear [0, 1] -> display uint8 through a 4096-entry table (np.power per pixel is the slow part otherwise).
_GAMMA_LUT = np.round(np.power(np.linspace(0.0, 1.0, 4096), 1.0 / DISPLAY_GAMMA) * 255.0).astype(np.uint8)


@dataclass
class Scene:
    """A posed scene in world coordinates plus what shading needs per vertex."""

    vertices: np.ndarray  # (V,3) world mm: face, eye right, eye left, mouth interior
    triangles: np.ndarray  # (F,3)
    material: np.ndarray  # (F,) uint8
    aux: np.ndarray  # (V,3) face: u, v, 0 | eyes: eye-local direction | mouth: s, t, 0
    rotation: np.ndarray  # (3,3) head pose
    translation: np.ndarray  # (3,)
    landmarks: np.ndarray  # (70,3) world mm
    num_face_vertices: int
    num_face_triangles: int
    eye_vertex_ranges: tuple[tuple[int, int], tuple[int, int]]


def _sphere_cap(rings_deg: Iterable[float], segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere cap around -z: (V,3) directions and outward-wound triangles."""
    rings = np.deg2rad(np.asarray(list(rings_deg), dtype=np.float64))
    verts = [np.array([0.0, 0.0, -1.0])]
    phis = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    for rho in rings[1:]:
        for phi in phis:
            verts.append(np.array([np.sin(rho) * np.cos(phi), np.sin(rho) * np.sin(phi), -np.cos(rho)]))
    verts = np.asarray(verts)
    tris = []
    for j in range(segments):
        tris.append((0, 1 + j, 1 + (j + 1) % segments))
    for r in range(len(rings) - 2):
        base0, base1 = 1 + r * segments, 1 + (r + 1) * segments
        for j in range(segments):
            a, b = base0 + j, base0 + (j + 1) % segments
            c, d = base1 + j, base1 + (j + 1) % segments
            tris += [(a, c, b), (b, c, d)]
    tris = np.asarray(tris, dtype=np.int64)
    v = verts[tris]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    flip = np.einsum("ij,ij->i", normal, v.mean(1)) < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return verts, tris


def _grid_triangles(rows: int, cols: int) -> np.ndarray:
    idx = np.arange(rows * cols).reshape(rows, cols)
    tl, tr, bl, br = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return np.concatenate([np.stack([tl, bl, tr], 1), np.stack([tr, bl, br], 1)]).astype(np.int64)


def incidence_matrix(triangles: np.ndarray, num_vertices: int) -> sparse.csr_matrix:
    """(V,F) sparse matrix with a 1 where a vertex belongs to a triangle: sums face values onto vertices."""
    rows = triangles.reshape(-1)
    cols = np.repeat(np.arange(len(triangles)), 3)
    data = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(num_vertices, len(triangles)))


def vertex_normals(
    vertices: np.ndarray, triangles: np.ndarray, incidence: sparse.csr_matrix | None = None
) -> np.ndarray:
    """Area-weighted unit vertex normals (outward = cross(v1 - v0, v2 - v0))."""
    v0, v1, v2 = vertices[triangles[:, 0]], vertices[triangles[:, 1]], vertices[triangles[:, 2]]
    fn = np.cross(v1 - v0, v2 - v0).astype(np.float32)
    if incidence is None:
        incidence = incidence_matrix(triangles, len(vertices))
    n = incidence @ fn
    return _normalize(n)


def cavity_occlusion(vertices: np.ndarray, triangles: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """A cheap ambient-occlusion factor per vertex: how far a vertex lies behind its smoothed neighbourhood
    (eye sockets, nostrils, lip corners, folds darken); 1 = open, down to 0.55 in deep cavities."""
    n = len(vertices)
    rows = np.concatenate(
        [triangles[:, 0], triangles[:, 1], triangles[:, 2], triangles[:, 1], triangles[:, 2], triangles[:, 0]]
    )
    cols = np.concatenate(
        [triangles[:, 1], triangles[:, 2], triangles[:, 0], triangles[:, 0], triangles[:, 1], triangles[:, 2]]
    )
    adj = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(axis=1)).ravel()
    walk = sparse.diags(1.0 / np.maximum(deg, 1)) @ adj
    smooth = vertices.copy()
    depth = np.zeros(n)
    for k in range(1, 41):
        smooth = walk @ smooth
        if k in (5, 15, 40):
            depth += np.einsum("ij,ij->i", smooth - vertices, normals)
    return np.clip(1.0 - 0.03 * np.maximum(depth, 0.0), 0.55, 1.0).astype(np.float32)


def _bump_vectors(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex g_u, g_v so that a displacement D along the normal bends it as n' = n + D_u g_u + D_v g_v
    (Blinn's bump mapping: g_u = n x P_v / |P_u x P_v|, g_v = -n x P_u / |P_u x P_v|)."""
    p = vertices[triangles]
    t = uv[triangles]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)[:, None]
    pu = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * inv
    pv = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * inv
    n_v = len(vertices)
    acc_u, acc_v = np.zeros((n_v, 3)), np.zeros((n_v, 3))
    flat = triangles.reshape(-1)
    for c in range(3):
        acc_u[:, c] = np.bincount(flat, weights=np.repeat(pu[:, c], 3), minlength=n_v)
        acc_v[:, c] = np.bincount(flat, weights=np.repeat(pv[:, c], 3), minlength=n_v)
    count = np.maximum(np.bincount(flat, minlength=n_v), 1)[:, None]
    pu_v, pv_v = acc_u / count, acc_v / count
    n = vertex_normals(vertices, triangles)
    cross_norm = np.maximum(np.linalg.norm(np.cross(pu_v, pv_v), axis=1, keepdims=True), 1e-9)
    # Outward normals here point to cross(P_v, P_u) for our v-down UV, hence the sign choice.
    sign = np.sign(np.einsum("ij,ij->i", np.cross(pu_v, pv_v), n))[:, None]
    g_u = sign * np.cross(n, pv_v) / cross_norm
    g_v = -sign * np.cross(n, pu_v) / cross_norm
    return g_u.astype(np.float32), g_v.astype(np.float32)


class FaceWorld:
    """The procedural face world (or any MorphableModel) with a CPU renderer; see the module docstring."""

    def __init__(
        self,
        morphable_model: MorphableModel | None = None,
        *,
        uv_size: int = 256,
        position_map_size: int = 256,
        eye_radius_mm: float = DEFAULT_EYE_RADIUS_MM,
    ) -> None:
        if uv_size < 16 or position_map_size < 16:
            raise ValueError(f"uv_size and position_map_size must be >= 16, got {uv_size}, {position_map_size}")
        self.procedural: FaceWorldModel | None = default_model() if morphable_model is None else None
        self.model: MorphableModel = self.procedural.morphable if self.procedural else morphable_model
        mm = self.model
        self.uv_size = int(uv_size)
        self.position_map_size = int(position_map_size)
        if self.procedural is not None:
            self.eye_offsets = self.procedural.eye_center_offsets.astype(np.float64)
            self.eye_radius = float(self.procedural.eye_radius)
        else:
            self.eye_offsets = np.stack([DEFAULT_EYE_OFFSET_MM, DEFAULT_EYE_OFFSET_MM])
            self.eye_radius = float(eye_radius_mm)
        self.mean_normals = vertex_normals(mm.mean.astype(np.float64), mm.triangles).astype(np.float32)
        if mm.uv is not None:
            self.bump_u, self.bump_v = _bump_vectors(mm.mean.astype(np.float64), mm.triangles, mm.uv.astype(np.float64))
        else:
            self.bump_u = self.bump_v = np.zeros_like(mm.mean)
        self.nmfc_colors = nmfc_vertex_colors(mm.mean)
        if self.procedural is not None:
            _x, y, theta = front_coordinates(mm.uv[:, 0], mm.uv[:, 1])
            inside = app.hairline_y(theta) - y
            no_ears = 1.0 - np.clip(ear_weight(theta, y) * 4.0, 0.0, 1.0)
            self.vertex_hair_weight = (np.clip(inside / 12.0, 0.0, 1.0) * no_ears).astype(np.float32)
        else:
            self.vertex_hair_weight = np.zeros(mm.num_vertices, np.float32)
        self._eye_dirs, self._eye_tris = _sphere_cap((0, 10, 20, 27, 32, 40, 55, 70, 90, 110), 24)
        self._mouth_rows, self._mouth_cols = 7, 11
        self._mouth_tris = _grid_triangles(self._mouth_rows, self._mouth_cols)
        s = np.linspace(0, 1, self._mouth_cols)
        t = np.linspace(0, 1, self._mouth_rows)
        S, T = np.meshgrid(s, t)
        self._mouth_st = np.stack([S.ravel(), T.ravel()], 1)
        self._identity_cache: tuple[bytes, np.ndarray] | None = None
        rows, local = np.unique(mm.landmark_vertices, return_inverse=True)
        self._lm_rows, self._lm_local = rows, local.reshape(mm.landmark_vertices.shape)
        pick = (rows[:, None] * 3 + np.arange(3)[None, :]).reshape(-1)
        self._lm_identity_basis = mm.identity_basis[pick].astype(np.float64)
        self._lm_expression_basis = mm.expression_basis[pick].astype(np.float64)
        n_face, n_eye, n_mouth = mm.num_vertices, len(self._eye_dirs), len(self._mouth_st)
        self._scene_tris = np.concatenate(
            [
                mm.triangles,
                self._eye_tris + n_face,
                self._eye_tris + n_face + n_eye,
                self._mouth_tris + n_face + 2 * n_eye,
            ]
        )
        self._scene_material = np.concatenate(
            [
                np.full(len(mm.triangles), MATERIAL_FACE, np.uint8),
                np.full(2 * len(self._eye_tris), MATERIAL_EYE, np.uint8),
                np.full(len(self._mouth_tris), MATERIAL_MOUTH, np.uint8),
            ]
        )
        uv = mm.uv if mm.uv is not None else np.zeros((n_face, 2), np.float32)
        self._scene_aux = np.concatenate(
            [
                np.concatenate([uv, np.zeros((n_face, 1))], 1),
                self._eye_dirs,
                self._eye_dirs,
                np.concatenate([self._mouth_st, np.zeros((n_mouth, 1))], 1),
            ]
        ).astype(np.float32)
        self._appearance: OrderedDict[tuple, app.IdentityAppearance] = OrderedDict()
        self._backgrounds: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._uv_raster: Fragments | None = None
        self._uv_mask: np.ndarray | None = None
        self._scene_incidence: sparse.csr_matrix | None = None
        n_scene_extra = 2 * len(self._eye_dirs) + len(self._mouth_st)
        zeros = np.zeros((n_scene_extra, 3), np.float32)
        self._scene_bump_u = np.concatenate([self.bump_u, zeros])
        self._scene_bump_v = np.concatenate([self.bump_v, zeros])
        self.face_occlusion = cavity_occlusion(mm.mean.astype(np.float64), mm.triangles, self.mean_normals)
        self._scene_occlusion = np.concatenate(
            [self.face_occlusion, np.full(2 * len(self._eye_dirs), 0.9), np.full(len(self._mouth_st), 1.0)]
        ).astype(np.float32)[:, None]

    # ------------------------------------------------------------------ parameters
    @property
    def expression_names(self) -> tuple[str, ...]:
        return self.model.expression_names

    def expression(self, **named: float) -> np.ndarray:
        """An expression vector from named components, e.g. world.expression(smile=1.0, jaw_open=0.4)."""
        vec = np.zeros(self.model.num_expression)
        for name, value in named.items():
            if name not in self.model.expression_names:
                raise ValueError(f"unknown expression component {name!r}; known: {', '.join(self.expression_names)}")
            vec[self.model.expression_names.index(name)] = value
        return vec

    def check_params(self, params: FaceParams) -> None:
        """Model-specific validation (coefficient counts and expression ranges); raises ValueError."""
        if not isinstance(params, FaceParams):
            raise TypeError(f"expected FaceParams, got {type(params).__name__}")
        mm = self.model
        if params.identity.shape[0] != mm.num_identity:
            raise ValueError(
                f"FaceParams.identity: model {mm.name!r} has {mm.num_identity} components, got "
                f"{params.identity.shape[0]}"
            )
        if params.expression.shape[0] != mm.num_expression:
            raise ValueError(
                f"FaceParams.expression: model {mm.name!r} has {mm.num_expression} components, got "
                f"{params.expression.shape[0]}"
            )
        lo, hi = mm.expression_ranges[:, 0], mm.expression_ranges[:, 1]
        bad = np.nonzero((params.expression < lo - 1e-6) | (params.expression > hi + 1e-6))[0]
        if len(bad):
            k = int(bad[0])
            raise ValueError(
                f"FaceParams.expression[{mm.expression_names[k]}]={params.expression[k]:g} is outside the valid "
                f"range [{lo[k]:g}, {hi[k]:g}]"
            )

    def neutral_params(self, identity_seed: int = 0, **changes: object) -> FaceParams:
        """An identity with the mean expression, frontal pose, head at 700 mm, default light."""
        ident = self._identity_draw(identity_seed)
        p = FaceParams(
            identity=ident["identity"],
            expression=np.zeros(self.model.num_expression),
            translation=np.array([0.0, 0.0, 700.0]),
            light=default_light(),
            albedo_seed=ident["albedo_seed"],
            skin_tone=ident["skin_tone"],
            hair=ident["hair"],
            background=None,
        )
        return p.replace(**changes) if changes else p

    def _identity_draw(self, identity_seed: int) -> dict:
        rng = np.random.default_rng([int(identity_seed), 90210])
        k = self.model.num_identity
        return {
            "identity": np.clip(rng.standard_normal(k), -2.5, 2.5),
            "albedo_seed": int(rng.integers(1 << 30)),
            "skin_tone": float(rng.uniform(0.0, 1.0)),
            "hair": bool(rng.random() < 0.8),
        }

    def sample_params(
        self,
        seed: int,
        identity_seed: int | None = None,
        expression_scale: float = 1.0,
        pose_range_deg: float = 15.0,
    ) -> FaceParams:
        """Random parameters: identity from identity_seed (or seed), everything else from seed."""
        if not 0.0 <= expression_scale <= 1.0:
            raise ValueError(f"expression_scale must be in [0, 1], got {expression_scale}")
        if not 0.0 <= pose_range_deg <= 60.0:
            raise ValueError(f"pose_range_deg must be in [0, 60], got {pose_range_deg}")
        ident = self._identity_draw(seed if identity_seed is None else identity_seed)
        rng = np.random.default_rng([int(seed), 4242])
        return FaceParams(
            identity=ident["identity"],
            expression=self._random_expression(rng, expression_scale),
            yaw=float(rng.uniform(-pose_range_deg, pose_range_deg)),
            pitch=float(rng.uniform(-pose_range_deg, pose_range_deg) * 0.7),
            roll=float(rng.uniform(-pose_range_deg, pose_range_deg) * 0.4),
            translation=np.array([rng.normal(0, 15), rng.normal(0, 15), rng.uniform(600, 850)]),
            gaze=rng.uniform(-15, 15, size=2),
            light=random_light(rng),
            albedo_seed=ident["albedo_seed"],
            skin_tone=ident["skin_tone"],
            hair=ident["hair"],
            background=int(rng.integers(1 << 30)),
            displacement_strength=float(rng.uniform(0.6, 1.4)),
        )

    def _random_expression(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        mm = self.model
        lo, hi = mm.expression_ranges[:, 0], mm.expression_ranges[:, 1]
        if self.procedural is None:
            return np.clip(rng.standard_normal(mm.num_expression) * 0.6 * scale, lo, hi)
        active = rng.random(mm.num_expression) < 0.45
        values = rng.uniform(0, 1, mm.num_expression) ** 1.5 * active * scale
        for name in ("blink_left", "blink_right"):
            values[mm.expression_names.index(name)] = 0.0
        if rng.random() < 0.1 * scale:  # an occasional blink, both eyes
            b = rng.uniform(0.6, 1.0)
            values[mm.expression_names.index("blink_left")] = b
            values[mm.expression_names.index("blink_right")] = b
        return np.clip(values, lo, hi)

    # ------------------------------------------------------------------ scene
    def _identity_appearance(self, params: FaceParams) -> app.IdentityAppearance:
        key = (params.albedo_seed, round(float(params.skin_tone), 4), params.hair, self.uv_size)
        hit = self._appearance.get(key)
        if hit is None:
            hit = app.paint_identity(self.uv_size, params.albedo_seed, params.skin_tone, params.hair)
            self._appearance[key] = hit
            while len(self._appearance) > 32:
                self._appearance.popitem(last=False)
        else:
            self._appearance.move_to_end(key)
        return hit

    def face_vertices(self, params: FaceParams) -> np.ndarray:
        """Model-space face vertices (N,3) for identity + expression (+ hair volume)."""
        mm = self.model
        key = params.identity.tobytes()
        if self._identity_cache is None or self._identity_cache[0] != key:
            self._identity_cache = (key, mm.identity_shape(params.identity).astype(np.float64))
        verts = self._identity_cache[1] + mm.expression_offsets(params.expression)
        if params.hair and self.procedural is not None:
            volume = self._identity_appearance(params).hair_volume_mm
            verts += self.mean_normals * (self.vertex_hair_weight * volume)[:, None]
        return verts

    def _model_landmarks68(self, params: FaceParams) -> np.ndarray:
        """The 68 landmarks in model space from the landmark vertices alone (no full mesh: fast)."""
        mm = self.model
        rows = self._lm_rows
        pts = mm.mean[rows].astype(np.float64)
        pts += (self._lm_identity_basis @ (params.identity * mm.identity_std)).reshape(-1, 3)
        pts += (self._lm_expression_basis @ (params.expression * mm.expression_std)).reshape(-1, 3)
        if params.hair and self.procedural is not None:
            volume = self._identity_appearance(params).hair_volume_mm
            pts += self.mean_normals[rows] * (self.vertex_hair_weight[rows] * volume)[:, None]
        return np.einsum("lk,lkc->lc", mm.landmark_weights, pts[self._lm_local])

    def _eyes(self, lm68: np.ndarray, gaze: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Eyeball vertices and pupil points (model space) from the eye corners and the gaze."""
        gaze_R = euler_to_rotation(float(gaze[0]), float(gaze[1]), 0.0)
        eyes, pupils = [], []
        for k, (a, b) in enumerate(((36, 39), (42, 45))):
            centre = 0.5 * (lm68[a] + lm68[b]) + self.eye_offsets[k]
            eyes.append(centre + self.eye_radius * (self._eye_dirs @ gaze_R.T))
            pupils.append(centre + self.eye_radius * (gaze_R @ np.array([0.0, 0.0, -1.0])))
        return eyes, pupils

    def build_scene(self, params: FaceParams) -> Scene:
        """Pose the face, eyes and mouth interior in world coordinates (mm)."""
        self.check_params(params)
        mm = self.model
        face = self.face_vertices(params)
        lm68 = mm.landmarks(face).astype(np.float64)
        eye_parts, pupils = self._eyes(lm68, params.gaze)
        mouth, mouth_aux = self._mouth_interior(lm68)
        R = euler_to_rotation(*params.head_rotation_deg)
        t = params.translation
        verts = np.concatenate([face, *eye_parts, mouth])
        n_face, n_eye = len(face), len(self._eye_dirs)
        tris, material = self._scene_tris, self._scene_material
        aux = self._scene_aux.copy()
        aux[-len(mouth_aux) :] = mouth_aux
        landmarks = np.zeros((NUM_LANDMARKS, 3))
        landmarks[:68] = lm68
        landmarks[PUPIL_RIGHT] = pupils[0]
        landmarks[PUPIL_LEFT] = pupils[1]
        return Scene(
            vertices=verts @ R.T + t,
            triangles=tris,
            material=material,
            aux=aux,
            rotation=R,
            translation=np.asarray(t, dtype=np.float64),
            landmarks=landmarks @ R.T + t,
            num_face_vertices=n_face,
            num_face_triangles=len(mm.triangles),
            eye_vertex_ranges=((n_face, n_face + n_eye), (n_face + n_eye, n_face + 2 * n_eye)),
        )

    def _mouth_interior(self, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A curved back wall behind the lips, spanned between the inner-lip landmarks (model space).

        It reaches 6 mm above, 9 mm below and 15% of the mouth width beyond each corner (the lips and cheeks
        hide the excess), so no opening shape shows the background. Returns the vertices and their
        shading attributes (s across, mm below the top edge, mm above the bottom edge)."""
        upper = lm[[60, 61, 62, 63, 64]]
        lower = lm[[60, 67, 66, 65, 64]]
        knots = np.array([0.0, 0.28, 0.5, 0.72, 1.0])
        s = np.linspace(0, 1, self._mouth_cols)
        top = np.stack([np.interp(s, knots, upper[:, c]) for c in range(3)], 1)
        bottom = np.stack([np.interp(s, knots, lower[:, c]) for c in range(3)], 1)
        width = np.linalg.norm(upper[4] - upper[0])
        side = (s - 0.5)[:, None] * np.array([[0.3 * width, 0.0, 0.0]])
        top = top + side + np.array([0.0, -_MOUTH_ABOVE_MM, 3.0])
        bottom = bottom + side + np.array([0.0, _MOUTH_BELOW_MM, 3.0])
        t = np.linspace(0, 1, self._mouth_rows)[:, None, None]
        arch = np.sin(np.pi * s)[None, :]
        # Deepest in the middle (throat), and bent back at the sides so it stays behind the cheeks.
        depth = 4.0 + 16.0 * arch * (0.5 + 0.5 * np.sin(np.pi * t[..., 0])) + 16.0 * (1.0 - arch) ** 2
        grid = top[None] * (1 - t) + bottom[None] * t + depth[..., None] * np.array([0.0, 0.0, 1.0])
        height = np.linalg.norm(bottom - top, axis=1)[None, :]
        tt = t[..., 0]
        aux = np.stack(
            [np.broadcast_to(s[None, :], height.shape * np.array([len(tt), 1])), tt * height, (1 - tt) * height], -1
        )
        return grid.reshape(-1, 3), aux.reshape(-1, 3).astype(np.float32)

    # ------------------------------------------------------------------ rendering
    def render(
        self,
        params: FaceParams,
        camera: PinholeCamera | OrthographicCamera,
        modalities: Iterable[str] = ("rgb", "depth", "landmarks"),
        *,
        appearance: FaceParams | None = None,
    ) -> dict[str, np.ndarray]:
        """Render the requested modalities (see the module docstring for keys, dtypes and units).

        `appearance` (default: `params`) supplies the painted look: skin / hair / iris albedo and `uv_texture`.
        Everything geometric stays `params`'s: shape, hair volume, pose, wrinkles (displacement, normal_map and
        the shading bumps), labels, light and background. So `render(B, cam, appearance=A)` is A's texture on B's
        geometry with depth, landmarks, mask and position_map identical to B's render (faces2one's truth).
        """
        mods = self._check_modalities(modalities)
        if not isinstance(camera, (PinholeCamera, OrthographicCamera)):
            raise TypeError(f"camera must be a PinholeCamera or OrthographicCamera, got {type(camera).__name__}")
        if appearance is None:
            appearance = params
        elif not isinstance(appearance, FaceParams):
            raise TypeError(f"appearance must be FaceParams or None, got {type(appearance).__name__}")
        scene = self.build_scene(params)
        out: dict[str, np.ndarray] = {}
        W, H = camera.width, camera.height
        R_cam = camera.rotation @ scene.rotation
        if mods & _NEEDS_RASTER:
            cam_pts = camera.to_camera(scene.vertices)
            screen = camera.project_camera(cam_pts)
            frags = rasterize(screen, scene.triangles, W, H, perspective=not camera.is_orthographic)
            mat = scene.material[frags.triangle]
            if "depth" in mods:
                depth_mm = frags.depth_image(0.0)
                out["depth_mm"] = depth_mm
                out["depth"] = np.clip(np.round(depth_mm), 0, 65535).astype(np.uint16)
            shading_needed = "rgb" in mods or "ir" in mods
            if shading_needed:
                if self._scene_incidence is None or self._scene_incidence.shape[0] != len(cam_pts):
                    self._scene_incidence = incidence_matrix(scene.triangles, len(cam_pts))
                normals = vertex_normals(cam_pts, scene.triangles, self._scene_incidence)
                rot = R_cam.T.astype(np.float32)
                per_vertex = np.concatenate(
                    [normals, scene.aux, self._scene_bump_u @ rot, self._scene_bump_v @ rot, self._scene_occlusion],
                    axis=1,
                )
                values = interpolate(frags, scene.triangles, per_vertex)
                n, aux, g_u, g_v = values[:, 0:3], values[:, 3:6], values[:, 6:9], values[:, 9:12]
                occlusion = values[:, 12]
                n = self._bump(params, mat, aux, n, g_u, g_v)
            elif "mask" in mods:
                aux = interpolate(frags, scene.triangles, scene.aux)
            if shading_needed:
                if camera.is_orthographic:
                    view = np.broadcast_to(np.array([0.0, 0.0, -1.0], np.float32), (len(frags.pixel), 3))
                    rays = None
                else:
                    rays = np.stack(
                        [
                            ((frags.xs - camera.cx) / camera.fx).astype(np.float32),
                            ((frags.ys - camera.cy) / camera.fy).astype(np.float32),
                            np.ones(len(frags.pixel), np.float32),
                        ],
                        axis=1,
                    )
                    view = -_normalize(rays)
                albedo = self._albedo(appearance, frags, mat, aux)
            if "rgb" in mods:
                out["rgb"] = self._shade_rgb(params, frags, mat, n, view, albedo * occlusion[:, None], W, H)
            if "ir" in mods:
                points = rays * frags.depth[:, None] if rays is not None else None
                out["ir"] = self._shade_ir(frags, mat, n, view, albedo, points, W, H)
            if "mask" in mods:
                out["mask"] = frags.scatter(self._labels(params, mat, aux), 0, np.uint8)
            if "landmarks" in mods:
                out.update(self._landmarks(scene, camera, frags, mat))
        if "nmfc" in mods:
            out["nmfc"] = self.render_nmfc(scene, camera)
        if "position_map" in mods:
            out["position_map"] = self._position_map(scene, camera)
        if mods & {"uv_texture", "displacement", "normal_map"}:
            out.update(self._uv_maps(params, mods, appearance))
        return out

    @staticmethod
    def _check_modalities(modalities: Iterable[str]) -> set[str]:
        if isinstance(modalities, str):
            modalities = (modalities,)
        mods = set(modalities)
        unknown = sorted(mods - set(MODALITIES))
        if unknown:
            raise ValueError(f"unknown modality {unknown[0]!r}; known: {', '.join(MODALITIES)}")
        if not mods:
            raise ValueError("no modality requested")
        return mods

    def _wrinkle_weights(self, params: FaceParams) -> np.ndarray:
        names = self.model.expression_names
        named = {name: float(v) for name, v in zip(names, params.expression)}
        return app.wrinkle_weights(named, float(params.displacement_strength))

    def _bump(self, params, mat, aux, n, g_u, g_v) -> np.ndarray:
        """Normals bent by the expression's wrinkle displacement (Blinn bump mapping), then normalised."""
        if self.procedural is not None and params.displacement_strength > 0:
            look = self._identity_appearance(params)
            S = look.albedo.shape[0]
            weights = self._wrinkle_weights(params)
            # One remap of all groups' gradients (S,S,2G), then the expression's weights per fragment. Eye and
            # mouth fragments sample meaningless texels but their bump vectors g_u, g_v are zero.
            sampled = sample_image(look.wrinkle_gradients, aux[:, 0] * S - 0.5, aux[:, 1] * S - 0.5)
            mix = np.zeros((2 * len(weights), 2), np.float32)
            mix[0::2, 0] = weights
            mix[1::2, 1] = weights
            duv = sampled @ mix
            n = n + duv[:, 0:1] * g_u + duv[:, 1:2] * g_v
        return _normalize(n)

    def _albedo(self, params, frags, mat, aux) -> np.ndarray:
        """Linear albedo (M,3) per fragment from each material."""
        albedo = np.zeros((len(mat), 3), np.float32)
        face = mat == MATERIAL_FACE
        look = self._identity_appearance(params)
        if face.any():
            if self.procedural is not None:
                S = look.albedo.shape[0]
                albedo[face] = sample_image(look.albedo, aux[face, 0] * S - 0.5, aux[face, 1] * S - 0.5)
            elif self.model.vertex_albedo is not None:
                albedo[face] = interpolate(_subset(frags, face), self.model.triangles, self.model.vertex_albedo)
            else:
                albedo[face] = look.skin_color
        eye = mat == MATERIAL_EYE
        if eye.any():
            albedo[eye], _ = app.iris_colors(aux[eye], look.iris_color, look.iris_pattern_seed)
        mouth = mat == MATERIAL_MOUTH
        if mouth.any():
            albedo[mouth] = _mouth_colors(aux[mouth, 0], aux[mouth, 1], aux[mouth, 2])
        return albedo

    def _shade_rgb(self, params, frags, mat, n, view, albedo, W, H) -> np.ndarray:
        light = params.light.astype(np.float32)
        shading = np.maximum(irradiance_basis(n) @ light, 0.0)
        mouth = mat == MATERIAL_MOUTH
        shading[mouth] *= 0.55
        color = albedo * shading
        # A soft Blinn-Phong highlight from the light's dominant direction (the SH band-1 vector).
        d = np.array([light[3].mean(), light[1].mean(), light[2].mean()], np.float32)
        if np.linalg.norm(d) > 1e-6:
            d /= np.linalg.norm(d)
            h = _normalize(d[None, :] + view)
            ndh = np.clip(np.einsum("ij,ij->i", n, h), 0.0, 1.0)
            eye = mat == MATERIAL_EYE
            p16 = ndh * ndh
            p16 *= p16
            p16 *= p16
            p16 *= p16  # ndh^16 for skin, ndh^128 for the wet cornea (squarings are far cheaper than pow)
            p128 = p16 * p16
            p128 *= p128
            p128 *= p128
            lobe = np.where(eye, 0.9 * p128, np.where(mouth, 0.05, 0.06) * p16)
            color += lobe[:, None] * float(np.linalg.norm(light[1:4].mean(1)) * 0.9)
        levels = (np.clip(color, 0.0, 1.0) * (len(_GAMMA_LUT) - 1) + 0.5).astype(np.int32)
        image = self.background(params.background, W, H).copy()
        image.reshape(-1, 3)[frags.pixel] = _GAMMA_LUT[levels]
        return image

    def _shade_ir(self, frags, mat, n, view, albedo, points, W, H) -> np.ndarray:
        """Active IR: on-axis emitter, Lambertian, falling off with distance squared; uint16 like a Kinect."""
        reflect = 0.25 + 0.75 * np.sqrt(np.clip(albedo.mean(1), 0.0, 1.0))
        cosine = np.clip(np.einsum("ij,ij->i", n, view), 0.0, 1.0)
        dist_m = (np.sqrt(np.einsum("ij,ij->i", points, points)) if points is not None else frags.depth) / 1000.0
        ir = 1800.0 * reflect * cosine / np.maximum(dist_m / 0.7, 0.05) ** 2
        return frags.scatter(np.clip(np.round(ir), 0, 65535).astype(np.uint16), 0, np.uint16)

    def _labels(self, params, mat, aux) -> np.ndarray:
        labels = np.full(len(mat), app.LABEL_SKIN, np.uint8)
        face = mat == MATERIAL_FACE
        if self.procedural is not None and face.any():
            look = self._identity_appearance(params)
            S = look.labels.shape[0]
            j = np.clip((aux[face, 0] * S).astype(np.int64), 0, S - 1)
            i = np.clip((aux[face, 1] * S).astype(np.int64), 0, S - 1)
            labels[face] = look.labels[i, j]
        labels[mat == MATERIAL_EYE] = app.LABEL_EYES
        labels[mat == MATERIAL_MOUTH] = app.LABEL_MOUTH_INTERIOR
        return labels

    def _landmarks(self, scene: Scene, camera, frags: Fragments, mat: np.ndarray) -> dict[str, np.ndarray]:
        cam = camera.to_camera(scene.landmarks)
        proj = camera.project_camera(cam)
        W, H = camera.width, camera.height
        px = np.round(proj[:, 0]).astype(np.int64)
        py = np.round(proj[:, 1]).astype(np.int64)
        inside = (px >= 0) & (px < W) & (py >= 0) & (py < H) & (cam[:, 2] > 0)
        zbuf = np.full(W * H, np.inf, np.float32)
        zbuf[frags.pixel] = frags.depth
        matbuf = np.full(W * H, 255, np.uint8)
        matbuf[frags.pixel] = mat
        lin = np.clip(py, 0, H - 1) * W + np.clip(px, 0, W - 1)
        mm_per_px = cam[:, 2] / camera.fx if not camera.is_orthographic else np.full(len(cam), 1.0 / camera.scale)
        tolerance = 2.0 + 2.0 * mm_per_px
        visible = inside & (cam[:, 2] <= zbuf[lin] + tolerance)
        for k in (PUPIL_RIGHT, PUPIL_LEFT):
            visible[k] = inside[k] and matbuf[lin[k]] == MATERIAL_EYE
        return {
            "landmarks2d": proj[:, :2].astype(np.float32),
            "landmarks3d": cam.astype(np.float32),
            "landmarks_visible": visible,
        }

    def nmfc_camera(self, scene: Scene, camera) -> OrthographicCamera:
        if camera.is_orthographic:
            return camera
        head_depth = float(camera.to_camera(scene.translation[None])[0, 2])
        return OrthographicCamera.matching(camera, head_depth)

    def render_nmfc(self, scene: Scene, camera) -> np.ndarray:
        """The NMFC image of a scene (face mesh only, orthographic)."""
        nf, ft = scene.num_face_vertices, scene.num_face_triangles
        return render_nmfc(scene.vertices[:nf], scene.triangles[:ft], self.nmfc_colors, self.nmfc_camera(scene, camera))

    def prnet_uv_box(self) -> tuple[float, float, float, float]:
        """(u0, u1, v0, v1): the part of the model's UV a position map shows."""
        return self.procedural.prnet_uv_box if self.procedural is not None else (0.0, 1.0, 0.0, 1.0)

    def uv_raster(self) -> Fragments:
        """Fragments of the face mesh rasterised in position-map UV space (cached)."""
        if self._uv_raster is None:
            if self.model.uv is None:
                raise ValueError(f"position_map needs a model with UV coordinates; {self.model.name!r} has none")
            self._uv_raster = rasterize_uv(
                self.model.uv, self.model.triangles, self.position_map_size, self.prnet_uv_box()
            )
        return self._uv_raster

    def uv_face_mask(self) -> np.ndarray:
        """(P,P) bool: the valid texels of a position map (PRNet's face mask): covered by the mesh and, for
        FaceWorld's model, inside the face region (forehead to jaw contour, ear to ear)."""
        if self._uv_mask is None:
            mask = uv_coverage_mask(self.uv_raster())
            if self.procedural is not None:
                _, y, theta = front_coordinates(*texel_centers_uv(self.position_map_size, self.prnet_uv_box()))
                mask &= face_region(theta, y)
            self._uv_mask = mask
        return self._uv_mask

    def uv_keypoint_indices(self) -> np.ndarray:
        """(68,2) int (row, col) of the 68 landmarks in the position map (PRNet's uv_kpt_ind, as row/col): the
        texel nearest each landmark's UV point among the texels of `uv_face_mask()` (src.geometry.uv), lower
        lips and lids one texel below the slit."""
        mm = self.model
        if mm.uv is None:
            raise ValueError(f"model {mm.name!r} has no UV coordinates")
        uv = np.einsum("lk,lkc->lc", mm.landmark_weights, mm.uv[mm.landmark_vertices])
        P = self.position_map_size
        # Jaw keypoints on the face region's edge move to the nearest texel ON the mask (src.geometry.uv).
        rc = uv_keypoint_indices(uv, self.uv_face_mask(), self.prnet_uv_box())
        # FaceWorld's mouth and eyes are slits: the lower inner-lip and lower-lid points share the upper ones' UV
        # row, whose texels the rasteriser gives to the upper side. Show them one texel lower, on the lower side
        # (otherwise an open mouth or eye puts them ~10 px off, on the upper lip / lid).
        for upper, lower in ((61, 67), (62, 66), (63, 65), (37, 41), (38, 40), (43, 47), (44, 46)):
            if rc[upper, 0] == rc[lower, 0]:
                rc[lower, 0] = min(rc[lower, 0] + 1, P - 1)
        return rc

    def _position_map(self, scene: Scene, camera) -> np.ndarray:
        head_depth = float(camera.to_camera(scene.translation[None])[0, 2])
        return position_map(
            scene.vertices[: scene.num_face_vertices],
            self.model.triangles,
            self.model.uv,
            camera,
            self.position_map_size,
            reference_depth_mm=head_depth,
            box=self.prnet_uv_box(),
            face_mask=self.uv_face_mask(),
            fragments=self.uv_raster(),
        )

    def _uv_maps(self, params: FaceParams, mods: set[str], appearance: FaceParams) -> dict[str, np.ndarray]:
        if self.procedural is None:
            raise ValueError("uv_texture / displacement / normal_map are painted for FaceWorld's own UV layout only")
        look = self._identity_appearance(params)
        out: dict[str, np.ndarray] = {}
        if "uv_texture" in mods:
            albedo = self._identity_appearance(appearance).albedo
            out["uv_texture"] = np.round(np.power(albedo, 1 / DISPLAY_GAMMA) * 255).astype(np.uint8)
        weights = self._wrinkle_weights(params)
        if "displacement" in mods:
            out["displacement"] = np.tensordot(weights, look.wrinkles, axes=1).astype(np.float32)
        if "normal_map" in mods:
            S = look.wrinkle_gradients.shape[0]
            g = look.wrinkle_gradients.reshape(S, S, -1, 2).transpose(0, 1, 3, 2) @ weights
            du, dv = g[..., 0], g[..., 1]
            mm_per_u = MM_PER_U_FRONT
            mm_per_v = 300.0
            nt = np.stack([-du / mm_per_u, -dv / mm_per_v, np.ones_like(du)], -1)
            nt /= np.linalg.norm(nt, axis=-1, keepdims=True)
            out["normal_map"] = np.round((nt * 0.5 + 0.5) * 255).astype(np.uint8)
        return out

    def background(self, background: int | tuple[int, int, int] | None, width: int, height: int) -> np.ndarray:
        """(H,W,3) uint8: black, a constant colour, or a smooth random backdrop from a seed."""
        if background is None:
            return np.zeros((height, width, 3), np.uint8)
        if not isinstance(background, (int, np.integer)):
            return np.broadcast_to(np.asarray(background, np.uint8), (height, width, 3))
        key = (int(background), width, height)
        hit = self._backgrounds.get(key)
        if hit is None:
            rng = np.random.default_rng([int(background), 555])
            top, bottom = rng.uniform(0.1, 0.85, 3), rng.uniform(0.05, 0.7, 3)
            t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
            img = top * (1 - t) + bottom * t
            blobs = cv2.resize(
                rng.uniform(-0.12, 0.12, (4, 4, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
            )
            hit = np.round(np.clip(img + blobs, 0, 1) * 255).astype(np.uint8)
            self._backgrounds[key] = hit
            while len(self._backgrounds) > 16:
                self._backgrounds.popitem(last=False)
        return hit

    # ------------------------------------------------------------------ cameras
    def landmarks3d(self, params: FaceParams) -> np.ndarray:
        """The 70 landmarks in world coordinates (mm) without building the mesh (same values as a render's)."""
        self.check_params(params)
        lm68 = self._model_landmarks68(params)
        _, pupils = self._eyes(lm68, params.gaze)
        landmarks = np.concatenate([lm68, np.stack(pupils)])
        R = euler_to_rotation(*params.head_rotation_deg)
        return landmarks @ R.T + params.translation

    def framing_camera(
        self,
        params: FaceParams,
        size: int | tuple[int, int] = 256,
        fill: float = 0.75,
        center_offset: tuple[float, float] = (0.0, -0.08),
        focal: float | None = None,
    ) -> PinholeCamera:
        """A pinhole camera at the world origin that frames the face like a crop of a larger image.

        The 68-landmark box (jaw to brows) spans `fill` of the image's larger side (or, with `focal` given, the
        focal length is fixed and only the crop moves); its centre sits at the image centre shifted by
        `center_offset` x size (default: a little upwards, to keep some forehead). `size` is an int or (H, W).
        """
        height, width = (size, size) if isinstance(size, int) else size
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"framing size must be positive, got {width}x{height}")
        if not 0.05 <= fill <= 2.0:
            raise ValueError(f"fill must be in [0.05, 2], got {fill}")
        lm = self.landmarks3d(params)[:68]
        if np.any(lm[:, 2] <= 1.0):
            raise ValueError("framing_camera: the face is not in front of the camera (z <= 0)")
        xn, yn = lm[:, 0] / lm[:, 2], lm[:, 1] / lm[:, 2]
        extent = max(xn.max() - xn.min(), yn.max() - yn.min())
        f = fill * max(width, height) / extent if focal is None else float(focal)
        cxn, cyn = 0.5 * (xn.max() + xn.min()), 0.5 * (yn.max() + yn.min())
        cx = (width - 1) / 2.0 - f * cxn + center_offset[0] * width
        cy = (height - 1) / 2.0 - f * cyn - center_offset[1] * height
        return PinholeCamera(fx=f, fy=f, cx=cx, cy=cy, width=int(width), height=int(height))


def _normalize(v: np.ndarray) -> np.ndarray:
    """Unit rows of an (M,3) array (einsum is much faster than np.linalg.norm on thin arrays)."""
    length = np.sqrt(np.einsum("ij,ij->i", v, v))
    return v / np.maximum(length, 1e-9)[:, None]


def _subset(frags: Fragments, keep: np.ndarray) -> Fragments:
    """The fragments selected by a boolean mask (face triangles come first, so their ids stay valid)."""
    return Fragments(
        frags.pixel[keep], frags.triangle[keep], frags.bary[keep], frags.depth[keep], frags.width, frags.height
    )


def _mouth_colors(s: np.ndarray, below_top_mm: np.ndarray, above_bottom_mm: np.ndarray) -> np.ndarray:
    """Mouth interior albedo: upper teeth (8 mm visible under the upper lip), lower teeth (4 mm), a tongue
    towards the bottom and a dark throat in the middle."""
    throat = np.array([0.16, 0.03, 0.03], np.float32)
    tongue = np.array([0.45, 0.12, 0.12], np.float32)
    teeth = np.array([0.72, 0.68, 0.58], np.float32)
    centre = np.exp(-0.5 * ((s - 0.5) / 0.2) ** 2)
    col = throat[None] * (1 - 0.6 * centre[:, None])
    tongue_w = np.clip((_MOUTH_BELOW_MM + 9.0 - above_bottom_mm) / 6.0, 0, 1) * centre
    col = col * (1 - tongue_w[:, None]) + tongue[None] * tongue_w[:, None]
    across = np.abs(s - 0.5)
    gaps = 0.75 + 0.25 * np.abs(np.cos(np.pi * (s - 0.5) * 14.0))
    upper = (below_top_mm < _MOUTH_ABOVE_MM + 8.0) & (across < 0.3)
    lower = (above_bottom_mm < _MOUTH_BELOW_MM + 4.0) & (across < 0.25)
    col[upper | lower] = teeth[None] * gaps[upper | lower][:, None]
    return col.astype(np.float32)


def random_light(rng: np.random.Generator) -> np.ndarray:
    """A random but plausible light: ambient plus a key light from the front hemisphere, slightly tinted."""
    ambient = rng.uniform(0.35, 0.7) * (1.0 + rng.uniform(-0.05, 0.05, 3))
    az, el = rng.uniform(-1.0, 1.0), rng.uniform(-0.8, 0.3)
    direction = np.array([np.sin(az), el, -np.cos(az)])
    intensity = rng.uniform(0.3, 0.7) * (1.0 + rng.uniform(-0.08, 0.08, 3))
    return sh_light(ambient=ambient, direction=direction, intensity=intensity)
