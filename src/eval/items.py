"""Report item kinds a system can return from `report_samples(stage)`; each renders its own section of index.html.

    ReportSample       RGBD frame (rgbd_face): feature | prediction | truth | depth maps | error maps, PLY clouds
    ImageGridSample    any labelled images in one row (dfdn displacement / normal maps, faces2one UV maps, dg)
    VideoSample        frame sequences (head2head): an animated PNG per row (plays in any browser, no codec)
    LandmarkPlotSample predicted vs true 2D landmarks over an optional image (dg's landmark generator)
    MeshSample         a triangle mesh (PRNet position map, dfdn displaced proxy) as a PLY with faces + preview

Images are uint8 RGB (HxWx3) or grey (HxW); depth is in mm with 0 = background. Every kind validates its fields
and names the sample and the field in its error.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from src.eval.page import ReportPage, Section, enlarge, enlarge_factor, is_uint8_image, png_bytes
from src.io.ply import PointCloud, encode_ply, write_ply
from src.utils.visualize import depth_range_mm, depth_to_color, error_map, make_grid, rgb_error_map, to_rgb

SAMPLE_COLUMNS = ("feature", "prediction", "truth", "depth pred", "depth true", "depth |err|", "colour |err|")


def _block(name: str, src: str, note: str = "") -> str:
    escaped = html.escape(name)
    image = f'<img src="{src}" alt="{escaped}">' if src else ""
    return f'<div class="sample"><h3>{escaped}</h3>{image}<div class="note">{note}</div></div>'


# ---------------------------------------------------------------------------------------------------- RGBD
@dataclass(frozen=True)
class ReportSample:
    """One evaluated RGBD frame, already in display units (uint8 images, depth in mm with 0 = background).

    intrinsics: (fx, fy, cx, cy) of THIS image (the dataset's, scaled to the size the model ran at); None means
    unknown and the PLY uses src.io.ply.default_intrinsics (its header says so).
    """

    name: str
    feature: np.ndarray  # HxW uint8, the network input drawing
    pred_rgb: np.ndarray  # HxWx3 uint8 RGB
    true_rgb: np.ndarray  # HxWx3 uint8 RGB
    pred_depth_mm: np.ndarray  # HxW float32
    true_depth_mm: np.ndarray  # HxW float32
    intrinsics: tuple[float, float, float, float] | None = None

    def validate(self) -> None:
        shape = np.shape(self.true_depth_mm)
        checks = {
            "feature": (np.shape(self.feature)[:2], np.uint8),
            "pred_rgb": (np.shape(self.pred_rgb)[:2], np.uint8),
            "true_rgb": (np.shape(self.true_rgb)[:2], np.uint8),
            "pred_depth_mm": (np.shape(self.pred_depth_mm), None),
        }
        if len(shape) != 2:
            raise ValueError(f"report sample {self.name!r}: true_depth_mm must be HxW, got shape {shape}")
        for field_name, (field_shape, dtype) in checks.items():
            value = getattr(self, field_name)
            if tuple(field_shape) != tuple(shape):
                raise ValueError(f"report sample {self.name!r}: {field_name} is {field_shape}, depth is {shape}")
            if dtype is not None and np.asarray(value).dtype != dtype:
                raise ValueError(
                    f"report sample {self.name!r}: {field_name} must be uint8, got {np.asarray(value).dtype}"
                )
        if self.intrinsics is not None and (len(self.intrinsics) != 4 or min(self.intrinsics[:2]) <= 0):
            raise ValueError(f"report sample {self.name!r}: intrinsics must be (fx, fy, cx, cy), fx, fy > 0")

    @classmethod
    def render_section(cls, items: list[ReportSample], page: ReportPage) -> Section:
        depth_range = page.options.get("depth_range") or common_depth_range(items)
        max_error_mm = page.options.get("max_error_mm") or common_error_scale(items)
        num_clouds = int(page.options.get("num_point_clouds", 4))
        blocks = []
        for index, sample in enumerate(items):
            stem = page.stem(sample.name)
            grid = make_grid([sample_row(sample, depth_range, max_error_mm)], col_labels=SAMPLE_COLUMNS)
            src = page.image_src(f"samples/{stem}.png", png_bytes(grid))
            links = ""
            if index < num_clouds:
                counts = []
                for which, rgb, depth in (
                    ("pred", sample.pred_rgb, sample.pred_depth_mm),
                    ("true", sample.true_rgb, sample.true_depth_mm),
                ):
                    counts.append(write_ply(page.out_dir / "pointclouds" / f"{stem}_{which}.ply", rgb, depth,
                                            sample.intrinsics))  # fmt: skip
                source = "dataset intrinsics" if sample.intrinsics is not None else "DEFAULT intrinsics (unknown)"
                links = (
                    f' <a href="pointclouds/{stem}_pred.ply">prediction PLY</a> ({counts[0]} points),'
                    f' <a href="pointclouds/{stem}_true.ply">truth PLY</a> ({counts[1]} points), {source}'
                )
            blocks.append(_block(sample.name, src, links))
        note = (
            f"Columns: {html.escape(' | '.join(SAMPLE_COLUMNS))}. Depth colours: Turbo, near = red, far = blue, "
            f"fixed range {depth_range[0]:.1f}&ndash;{depth_range[1]:.1f} mm for every row; black = background. "
            f"Depth error: 0&ndash;{max_error_mm:.2f} mm for every row; magenta = depth in only one of prediction / "
            "truth (silhouette error). Colour error: mean |pred - true| over RGB, 0&ndash;64 levels."
        )
        payload = {"depth_range_mm": list(depth_range), "depth_error_scale_mm": max_error_mm}
        return Section("RGBD samples", note, blocks, payload)


def sample_row(
    sample: ReportSample, depth_range: tuple[float, float] | None = None, max_error_mm: float | None = None
) -> list[np.ndarray]:
    """The images of one RGBD report row, in SAMPLE_COLUMNS order."""
    near, far = depth_range if depth_range is not None else depth_range_mm(sample.true_depth_mm)
    factor = enlarge_factor(np.shape(sample.true_depth_mm)[1])
    feature, pred_rgb, true_rgb, pred_mm, true_mm = (
        enlarge(a, factor)
        for a in (sample.feature, sample.pred_rgb, sample.true_rgb, sample.pred_depth_mm, sample.true_depth_mm)
    )
    depth_error, _ = error_map(pred_mm, true_mm, max_error_mm=max_error_mm)
    return [
        to_rgb(feature),
        pred_rgb,
        true_rgb,
        depth_to_color(pred_mm, near, far, legend=True),
        depth_to_color(true_mm, near, far, legend=True),
        depth_error,
        rgb_error_map(pred_rgb, true_rgb),
    ]


def common_depth_range(samples: Sequence[ReportSample]) -> tuple[float, float]:
    """Foreground depth range over all ground-truth frames: one colour scale for the whole report."""
    ranges = [depth_range_mm(s.true_depth_mm) for s in samples if (np.asarray(s.true_depth_mm) > 0).any()]
    if not ranges:
        return 0.0, 1.0
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def common_error_scale(samples: Sequence[ReportSample]) -> float:
    """Largest per-sample 99th-percentile depth error (mm): one error scale for the whole report."""
    scale = 0.0
    for s in samples:
        pred, true = np.asarray(s.pred_depth_mm, np.float32), np.asarray(s.true_depth_mm, np.float32)
        both = (pred > 0) & (true > 0)
        if both.any():
            scale = max(scale, float(np.percentile(np.abs(pred - true)[both], 99)))
    return scale if scale > 0 else 1.0


# ---------------------------------------------------------------------------------------------------- image grid
@dataclass(frozen=True)
class ImageGridSample:
    """A row of labelled images: (label, uint8 HxW or HxWx3). Sizes may differ (cells are centred)."""

    name: str
    images: Sequence[tuple[str, np.ndarray]]

    def validate(self) -> None:
        if not self.images:
            raise ValueError(f"report sample {self.name!r}: no images")
        for label, image in self.images:
            if not is_uint8_image(image):
                array = np.asarray(image)
                raise ValueError(
                    f"report sample {self.name!r}: image {label!r} must be uint8 HxW / HxWx3, "
                    f"got {array.dtype} {array.shape}"
                )

    @classmethod
    def render_section(cls, items: list[ImageGridSample], page: ReportPage) -> Section:
        blocks = []
        for sample in items:
            factor = enlarge_factor(max(np.shape(image)[1] for _, image in sample.images))
            row = [enlarge(image, factor) for _, image in sample.images]
            grid = make_grid([row], col_labels=[label for label, _ in sample.images])
            blocks.append(_block(sample.name, page.image_src(f"samples/{page.stem(sample.name)}.png", png_bytes(grid))))
        return Section("Samples", "One row per sample; column labels name each image.", blocks)


# ---------------------------------------------------------------------------------------------------- video
@dataclass(frozen=True)
class VideoSample:
    """Side-by-side frame sequences, e.g. {"prediction": (T,H,W,3), "truth": (T,H,W,3)}, all T equal."""

    name: str
    videos: Sequence[tuple[str, np.ndarray]]
    fps: float = 25.0

    def validate(self) -> None:
        lengths = set()
        for label, frames in self.videos:
            array = np.asarray(frames)
            if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[0] < 1:
                raise ValueError(
                    f"report sample {self.name!r}: video {label!r} must be uint8 (T,H,W[,3]), got "
                    f"{array.dtype} {array.shape}"
                )
            lengths.add(array.shape[0])
        if not self.videos or len(lengths) != 1:
            raise ValueError(f"report sample {self.name!r}: videos must be non-empty and equally long, got {lengths}")
        if not self.fps > 0:
            raise ValueError(f"report sample {self.name!r}: fps must be positive, got {self.fps}")

    def frames(self) -> list[np.ndarray]:
        """One labelled side-by-side grid per time step."""
        length = np.asarray(self.videos[0][1]).shape[0]
        factor = enlarge_factor(max(np.asarray(v).shape[2] for _, v in self.videos))
        labels = [label for label, _ in self.videos]
        return [
            make_grid([[enlarge(np.asarray(v)[t], factor) for _, v in self.videos]], col_labels=labels)
            for t in range(length)
        ]

    @classmethod
    def render_section(cls, items: list[VideoSample], page: ReportPage) -> Section:
        blocks = []
        for sample in items:
            frames = sample.frames()
            data = animated_png(frames, sample.fps)
            src = page.image_src(f"videos/{page.stem(sample.name)}.png", data)
            blocks.append(_block(sample.name, src, f"{len(frames)} frames at {sample.fps:g} fps (animated PNG)"))
        return Section("Videos", "Each row plays in a loop; columns are labelled.", blocks)


def animated_png(frames: Sequence[np.ndarray], fps: float) -> bytes:
    """An animated PNG (APNG: every browser plays it in an <img>, no video codec needed)."""
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(to_rgb(frame))) for frame in frames]
    buffer = io.BytesIO()
    duration = max(1, round(1000.0 / fps))
    images[0].save(buffer, format="PNG", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- landmarks
PRED_COLOUR, TRUE_COLOUR = (255, 64, 64), (64, 255, 64)


@dataclass(frozen=True)
class LandmarkPlotSample:
    """Predicted (red) vs true (green) 2D landmarks in pixel coordinates of `size` = (H, W), over `image`."""

    name: str
    pred_points: np.ndarray  # (K, 2) x, y
    true_points: np.ndarray | None = None  # (K, 2)
    image: np.ndarray | None = None  # HxW[x3] uint8 background
    size: tuple[int, int] | None = None  # (H, W) when there is no image

    def validate(self) -> None:
        pred = np.asarray(self.pred_points)
        if pred.ndim != 2 or pred.shape[1] != 2:
            raise ValueError(f"report sample {self.name!r}: pred_points must be (K, 2), got {pred.shape}")
        if self.true_points is not None and np.shape(self.true_points) != pred.shape:
            raise ValueError(f"report sample {self.name!r}: true_points {np.shape(self.true_points)} != {pred.shape}")
        if self.image is None and self.size is None:
            raise ValueError(f"report sample {self.name!r}: give an image or a size")
        if self.image is not None and not is_uint8_image(self.image):
            raise ValueError(f"report sample {self.name!r}: image must be uint8 HxW / HxWx3")

    def plot(self) -> np.ndarray:
        """The drawing, enlarged to at least MIN_CELL_WIDTH; error segments join each predicted / true pair."""
        height, width = np.shape(self.image)[:2] if self.image is not None else self.size  # type: ignore[misc]
        factor = enlarge_factor(width)
        if self.image is not None:
            canvas = enlarge(to_rgb(self.image), factor).copy()
        else:
            canvas = np.zeros((height * factor, width * factor, 3), np.uint8)
        scale = float(factor)
        pred = (np.asarray(self.pred_points, np.float64) + 0.5) * scale
        true = None if self.true_points is None else (np.asarray(self.true_points, np.float64) + 0.5) * scale
        if true is not None:
            for a, b in zip(pred, true):
                cv2.line(canvas, _pt(a), _pt(b), (255, 255, 0), 1, cv2.LINE_AA)
            for point in true:
                cv2.circle(canvas, _pt(point), 2, TRUE_COLOUR, -1, cv2.LINE_AA)
        for point in pred:
            cv2.circle(canvas, _pt(point), 2, PRED_COLOUR, -1, cv2.LINE_AA)
        return canvas

    @classmethod
    def render_section(cls, items: list[LandmarkPlotSample], page: ReportPage) -> Section:
        blocks = []
        for sample in items:
            src = page.image_src(f"landmarks/{page.stem(sample.name)}.png", png_bytes(sample.plot()))
            note = ""
            if sample.true_points is not None:
                error = np.linalg.norm(np.asarray(sample.pred_points) - np.asarray(sample.true_points), axis=1)
                note = f"mean point error {float(error.mean()):.2f} px"
            blocks.append(_block(sample.name, src, note))
        note = "Red: predicted landmarks; green: true; yellow segments join each pair."
        return Section("Landmarks", note, blocks)


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return round(float(xy[0])), round(float(xy[1]))


# ---------------------------------------------------------------------------------------------------- mesh
@dataclass(frozen=True)
class MeshSample:
    """A triangle mesh (vertices (N, 3) mm, faces (F, 3) int, optional colours (N, 3) uint8) + optional preview."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None
    preview: np.ndarray | None = None

    def validate(self) -> None:
        vertices, faces = np.asarray(self.vertices), np.asarray(self.faces)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"report sample {self.name!r}: vertices must be (N, 3), got {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(
                f"report sample {self.name!r}: faces must be integer (F, 3), got {faces.dtype} {faces.shape}"
            )
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError(f"report sample {self.name!r}: face indices outside [0, {len(vertices)})")
        if self.colors is not None and np.shape(self.colors) != vertices.shape:
            raise ValueError(f"report sample {self.name!r}: colors must be (N, 3) like the vertices")
        if self.preview is not None and not is_uint8_image(self.preview):
            raise ValueError(f"report sample {self.name!r}: preview must be uint8 HxW / HxWx3")

    @classmethod
    def render_section(cls, items: list[MeshSample], page: ReportPage) -> Section:
        blocks = []
        for sample in items:
            stem = page.stem(sample.name)
            vertices = np.asarray(sample.vertices, np.float32)
            colors = np.full(vertices.shape, 200, np.uint8) if sample.colors is None else np.asarray(sample.colors)
            cloud = PointCloud(points=vertices, colors=colors.astype(np.uint8))
            data = encode_ply(cloud, faces=np.asarray(sample.faces), comments=("facesynth mesh", "units mm"))
            link = page.file(f"meshes/{stem}.ply", data)
            note = f'<a href="{link}">mesh PLY</a> ({len(vertices)} vertices, {len(sample.faces)} triangles)'
            src = "" if sample.preview is None else page.image_src(f"meshes/{stem}.png", png_bytes(sample.preview))
            blocks.append(_block(sample.name, src, note))
        return Section("Meshes", "Open the PLY files in MeshLab / Blender; vertices in mm.", blocks)
