"""Evaluation report: one folder a person opens in a browser and a machine reads back.

    <out_dir>/index.html      run meta, the metrics table (mean / median / std / min / max, with each metric's
                              declared direction), then one section per kind of sample the system renders
    <out_dir>/metrics.json    the same numbers, per-sample values included (strict JSON: NaN / inf are written
                              as the strings "nan" / "inf" / "-inf")
    <out_dir>/metrics.md      the table as Markdown (paste into a PR / a lab note)
    <out_dir>/samples/, videos/, landmarks/, meshes/, pointclouds/   what the sample kinds wrote

The metrics table and per-sample statistics are shared by every system; the samples are the system's own: it
returns report items from `report_samples(stage)` (src/eval/items.py: RGBD rows with error maps and PLY point
clouds, image grids, videos, landmark plots, meshes) and each kind renders its section (src/eval/page.py).
The HTML uses no external resource (inline CSS, relative links inside the folder, or the images embedded with
`embed_images=True`), so the folder can be copied or archived as it is. Every file is written atomically;
index.html last, so a report folder with an index.html is complete.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.eval.items import (  # noqa: F401  (re-exported: the RGBD item and its helpers)
    SAMPLE_COLUMNS,
    ImageGridSample,
    LandmarkPlotSample,
    MeshSample,
    ReportSample,
    VideoSample,
    common_depth_range,
    common_error_scale,
    sample_row,
)
from src.eval.page import ReportItem, ReportPage, Section
from src.io.atomic import write_text_atomic
from src.metrics import summarize

SUMMARY_KEYS = ("mean", "median", "std", "min", "max")


def summarize_values(values: Sequence[float]) -> dict[str, float]:
    """src.metrics.summarize of the defined values plus counts: NaN (undefined, e.g. a frame without a face) is
    left out and counted in `nan`; +-inf stays in (PSNR of an exact match is inf, and the mean says so)."""
    arr = np.asarray(list(values), dtype=np.float64)
    defined = arr[~np.isnan(arr)]
    with np.errstate(invalid="ignore"):  # std of values holding inf is NaN, quietly
        stats = summarize(defined) if defined.size else dict.fromkeys(SUMMARY_KEYS, math.nan)
    return {**stats, "count": int(defined.size), "nan": int(arr.size - defined.size)}


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}"


def _metrics_markdown(
    title: str, summary: Mapping[str, Mapping[str, float]], directions: Mapping[str, str] | None = None
) -> str:
    arrows = {"higher": " ↑", "lower": " ↓"}
    lines = [f"# {title}", "", "| metric | " + " | ".join(SUMMARY_KEYS) + " | n |", "|---" * 7 + "|"]
    for name, stats in summary.items():
        cells = " | ".join(_fmt(stats[k]) for k in SUMMARY_KEYS)
        label = name + arrows.get((directions or {}).get(name, ""), "")
        lines.append(f"| {label} | {cells} | {stats['count']} |")
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
    samples: Sequence[Any],
    title: str,
    meta: Mapping[str, object],
    *,
    directions: Mapping[str, str] | None = None,
    depth_range: tuple[float, float] | None = None,
    max_error_mm: float | None = None,
    num_point_clouds: int = 4,
    embed_images: bool = False,
) -> Path:
    """Write the report folder (see the module docstring); returns the path of index.html.

    metrics: per-sample values by metric name (e.g. {"psnr": [...], "depth_mae_mm": [...]}).
    samples: report items of any kinds (src/eval/items.py or a system's own kind with `render_section`).
    directions: {metric: "higher" | "lower"} as the system declares them (shown as arrows; none are guessed).
    depth_range / max_error_mm / num_point_clouds: options of the RGBD kind (fixed colour scales in mm, how many
    samples get PLY point clouds).
    """
    out = Path(out_dir)
    for name, values in metrics.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
            raise TypeError(f"write_report: metric {name!r} must be a list of per-sample values")
    kinds: dict[type, list[Any]] = {}
    for sample in samples:
        if not isinstance(sample, ReportItem):
            raise TypeError(
                f"write_report: {type(sample).__name__} is not a report item (name, validate, render_section)"
            )
        sample.validate()
        kinds.setdefault(type(sample), []).append(sample)
    directions = dict(directions or {})
    summary = {name: summarize_values(values) for name, values in metrics.items()}
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

    page = ReportPage(
        out,
        embed_images=embed_images,
        options={"depth_range": depth_range, "max_error_mm": max_error_mm, "num_point_clouds": num_point_clouds},
    )
    sections: list[Section] = [kind.render_section(items, page) for kind, items in kinds.items()]

    payload: dict[str, Any] = {
        "title": title,
        "created": created,
        "meta": {k: _jsonable(v) for k, v in meta.items()},
        "directions": {name: directions[name] for name in summary if name in directions},
        "summary": _jsonable(summary),
        "per_sample": {name: [_jsonable(float(v)) for v in values] for name, values in metrics.items()},
        "samples": [s.name for s in samples],
    }
    for section in sections:
        clash = set(section.payload) & set(payload)
        if clash:
            raise ValueError(f"write_report: section {section.heading!r} reuses metrics.json keys {sorted(clash)}")
        payload.update(_jsonable(section.payload))  # type: ignore[arg-type]
    write_text_atomic(out / "metrics.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")
    write_text_atomic(out / "metrics.md", _metrics_markdown(title, summary, directions))
    index_path = out / "index.html"
    write_text_atomic(index_path, _document(title, meta, created, summary, directions, sections, len(samples)))
    return index_path


def _arrow(direction: str | None) -> str:
    return {"higher": " &uarr;", "lower": " &darr;"}.get(direction or "", "")


def _document(
    title: str,
    meta: Mapping[str, object],
    created: str,
    summary: Mapping[str, Mapping[str, float]],
    directions: Mapping[str, str],
    sections: Sequence[Section],
    sample_count: int,
) -> str:
    header = "".join(f"<th>{k}</th>" for k in SUMMARY_KEYS)
    metric_rows = "".join(
        f'<tr><td class="key">{html.escape(name)}{_arrow(directions.get(name))}</td>'
        + "".join(f"<td>{_fmt(stats[k])}</td>" for k in SUMMARY_KEYS)
        + f"<td>{stats['count']}</td></tr>"
        for name, stats in summary.items()
    )
    meta_rows = "".join(
        f'<tr><td class="key">{html.escape(str(k))}</td><td class="key">{html.escape(str(v))}</td></tr>'
        for k, v in {**meta, "report created": created}.items()
    )
    body = "".join(
        f'<h3>{html.escape(s.heading)} ({len(s.blocks)})</h3>\n<p class="note">{s.note_html}</p>\n' + "".join(s.blocks)
        for s in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<h2>Run</h2><table>{meta_rows}</table>
<h2>Metrics ({len(summary)})</h2>
<table><tr><th class="key">metric</th>{header}<th>n</th></tr>
{metric_rows or '<tr><td colspan="7">no metrics</td></tr>'}</table>
<p class="note">&uarr; higher is better, &darr; lower is better (as the system declares).
Per-sample values: <a href="metrics.json">metrics.json</a>; Markdown: <a href="metrics.md">metrics.md</a>.</p>
<h2>Samples ({sample_count})</h2>
{body}
</body></html>
"""


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
