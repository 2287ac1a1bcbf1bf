"""Evaluation report: one folder a person opens in a browser and a machine reads back.

    <out_dir>/index.html      metrics table (mean / median / std / min / max), run meta, one image row per
                              sample (feature | prediction | truth | depth maps | error maps), PLY links
    <out_dir>/metrics.json    the same numbers, per-sample values included (strict JSON: NaN / inf are written
                              as the strings "nan" / "inf" / "-inf")
    <out_dir>/metrics.md      the table as Markdown (paste into a PR / a lab note)
    <out_dir>/samples/*.png   the sample rows;  <out_dir>/pointclouds/*.ply   a few predictions and truths

The HTML uses no external resource (inline CSS, relative links inside the folder, or the images embedded
with `embed_images=True`), so the folder can be copied or archived as it is. All depth maps of one report
share one mm range and all depth error maps one scale, so rows compare at a glance. Every file is written
atomically; index.html last, so a report folder with an index.html is complete.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from src.io.atomic import write_bytes_atomic, write_text_atomic
from src.io.ply import write_ply
from src.metrics import summarize
from src.utils.visualize import depth_range_mm, depth_to_color, error_map, make_grid, rgb_error_map, to_rgb

SAMPLE_COLUMNS = ("feature", "prediction", "truth", "depth pred", "depth true", "depth |err|", "colour |err|")
SUMMARY_KEYS = ("mean", "median", "std", "min", "max")


@dataclass(frozen=True)
class ReportSample:
    """One evaluated frame, already in display units (uint8 images, depth in mm with 0 = background)."""

    name: str
    feature: np.ndarray  # HxW uint8, the network input drawing
    pred_rgb: np.ndarray  # HxWx3 uint8 RGB
    true_rgb: np.ndarray  # HxWx3 uint8 RGB
    pred_depth_mm: np.ndarray  # HxW float32
    true_depth_mm: np.ndarray  # HxW float32
    intrinsics: tuple[float, float, float, float] | None = None  # fx, fy, cx, cy of the image, when known

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
        for field, (field_shape, dtype) in checks.items():
            value = getattr(self, field)
            if tuple(field_shape) != tuple(shape):
                raise ValueError(f"report sample {self.name!r}: {field} is {field_shape}, depth is {shape}")
            if dtype is not None and np.asarray(value).dtype != dtype:
                raise ValueError(f"report sample {self.name!r}: {field} must be uint8, got {np.asarray(value).dtype}")


def summarize_values(values: Sequence[float]) -> dict[str, float]:
    """src.metrics.summarize of the defined values plus counts: NaN (undefined, e.g. a frame without a face) is
    left out and counted in `nan`; +-inf stays in (PSNR of an exact match is inf, and the mean says so)."""
    arr = np.asarray(list(values), dtype=np.float64)
    defined = arr[~np.isnan(arr)]
    with np.errstate(invalid="ignore"):  # std of values holding inf is NaN, quietly
        stats = summarize(defined) if defined.size else dict.fromkeys(SUMMARY_KEYS, math.nan)
    return {**stats, "count": int(defined.size), "nan": int(arr.size - defined.size)}


MIN_CELL_WIDTH = 160  # smaller frames are enlarged (nearest neighbour, whole pixels) so labels and legends fit


def _enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    array = np.asarray(image)
    return array if factor == 1 else np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def sample_row(
    sample: ReportSample, depth_range: tuple[float, float] | None = None, max_error_mm: float | None = None
) -> list[np.ndarray]:
    """The images of one report row, in SAMPLE_COLUMNS order."""
    near, far = depth_range if depth_range is not None else depth_range_mm(sample.true_depth_mm)
    factor = max(1, -(-MIN_CELL_WIDTH // np.shape(sample.true_depth_mm)[1]))
    feature, pred_rgb, true_rgb, pred_mm, true_mm = (
        _enlarge(a, factor)
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


def _safe_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "sample"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV encodes BGR
    if not ok:
        raise OSError("could not encode a report image as PNG")
    return buf.tobytes()


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}"


def _metrics_markdown(title: str, summary: Mapping[str, Mapping[str, float]]) -> str:
    lines = [f"# {title}", "", "| metric | " + " | ".join(SUMMARY_KEYS) + " | n |", "|---" * 7 + "|"]
    for name, stats in summary.items():
        cells = " | ".join(_fmt(stats[k]) for k in SUMMARY_KEYS)
        lines.append(f"| {name} | {cells} | {stats['count']} |")
    if not summary:
        lines.append("| (no metrics) |" + " |" * 6)
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td.key, th.key { text-align: left; font-family: monospace; }
.sample { margin: 1em 0; } .sample img { max-width: 100%; image-rendering: pixelated; border: 1px solid #999; }
.note { color: #555; font-size: 0.9em; }
"""


def write_report(
    out_dir: str | os.PathLike,
    metrics: Mapping[str, Sequence[float]],
    samples: Sequence[ReportSample],
    title: str,
    meta: Mapping[str, object],
    *,
    depth_range: tuple[float, float] | None = None,
    max_error_mm: float | None = None,
    num_point_clouds: int = 4,
    embed_images: bool = False,
) -> Path:
    """Write the report folder (see the module docstring); returns the path of index.html.

    metrics: per-sample values by metric name (e.g. {"psnr": [...], "depth_mae_mm": [...]}).
    depth_range / max_error_mm: fixed colour scales (mm); by default derived from all samples together.
    num_point_clouds: how many samples get predicted and true PLY point clouds (0 = none).
    """
    out = Path(out_dir)
    for name, values in metrics.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
            raise TypeError(f"write_report: metric {name!r} must be a list of per-sample values")
    for sample in samples:
        sample.validate()
    summary = {name: summarize_values(values) for name, values in metrics.items()}
    depth_range = depth_range if depth_range is not None else common_depth_range(samples)
    max_error_mm = max_error_mm if max_error_mm is not None else common_error_scale(samples)
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

    taken: set[str] = set()
    rows_html = []
    for index, sample in enumerate(samples):
        stem = _safe_name(sample.name, taken)
        grid = make_grid([sample_row(sample, depth_range, max_error_mm)], col_labels=SAMPLE_COLUMNS)
        png = _png_bytes(grid)
        if embed_images:
            src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        else:
            write_bytes_atomic(out / "samples" / f"{stem}.png", png)
            src = f"samples/{stem}.png"
        links = ""
        if index < num_point_clouds:
            pred_n = write_ply(out / "pointclouds" / f"{stem}_pred.ply", sample.pred_rgb, sample.pred_depth_mm,
                               sample.intrinsics)  # fmt: skip
            true_n = write_ply(out / "pointclouds" / f"{stem}_true.ply", sample.true_rgb, sample.true_depth_mm,
                               sample.intrinsics)  # fmt: skip
            links = (
                f' <a href="pointclouds/{stem}_pred.ply">prediction PLY</a> ({pred_n} points),'
                f' <a href="pointclouds/{stem}_true.ply">truth PLY</a> ({true_n} points)'
            )
        rows_html.append(
            f'<div class="sample"><h3>{html.escape(sample.name)}</h3>'
            f'<img src="{src}" alt="{html.escape(sample.name)}"><div class="note">{links}</div></div>'
        )

    payload = {
        "title": title,
        "created": created,
        "meta": {k: _jsonable(v) for k, v in meta.items()},
        "summary": _jsonable(summary),
        "per_sample": {name: [_jsonable(float(v)) for v in values] for name, values in metrics.items()},
        "samples": [s.name for s in samples],
        "depth_range_mm": list(depth_range),
        "depth_error_scale_mm": max_error_mm,
    }
    write_text_atomic(out / "metrics.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")
    write_text_atomic(out / "metrics.md", _metrics_markdown(title, summary))

    header = "".join(f"<th>{k}</th>" for k in SUMMARY_KEYS)
    metric_rows = "".join(
        f'<tr><td class="key">{html.escape(name)}</td>'
        + "".join(f"<td>{_fmt(stats[k])}</td>" for k in SUMMARY_KEYS)
        + f"<td>{stats['count']}</td></tr>"
        for name, stats in summary.items()
    )
    meta_rows = "".join(
        f'<tr><td class="key">{html.escape(str(k))}</td><td class="key">{html.escape(str(v))}</td></tr>'
        for k, v in {**meta, "report created": created}.items()
    )
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<h2>Run</h2><table>{meta_rows}</table>
<h2>Metrics ({len(summary)})</h2>
<table><tr><th class="key">metric</th>{header}<th>n</th></tr>
{metric_rows or '<tr><td colspan="7">no metrics</td></tr>'}</table>
<p class="note">Per-sample values: <a href="metrics.json">metrics.json</a>;
Markdown: <a href="metrics.md">metrics.md</a>.</p>
<h2>Samples ({len(samples)})</h2>
<p class="note">Columns: {html.escape(" | ".join(SAMPLE_COLUMNS))}. Depth colours: Turbo, near = red, far = blue,
fixed range {depth_range[0]:.1f}&ndash;{depth_range[1]:.1f} mm for every row; black = background.
Depth error: 0&ndash;{max_error_mm:.2f} mm for every row; magenta = depth in only one of prediction / truth
(silhouette error). Colour error: mean |pred - true| over RGB, 0&ndash;64 levels.</p>
{"".join(rows_html)}
</body></html>
"""
    index_path = out / "index.html"
    write_text_atomic(index_path, document)
    return index_path


def _jsonable(value: object) -> object:
    """Meta values and numbers as strict JSON: paths as strings, NaN / inf as the strings "nan" / "inf" / "-inf"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
