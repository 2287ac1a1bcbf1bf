"""The shared pieces every report item renders with: the page context and a rendered section.

A report item (src/eval/items.py) is any object with a `name`, a `validate()` and a classmethod
`render_section(items, page) -> Section` that renders all items of its kind together, so a kind can share one
colour scale across its rows (RGBD depth) or one frame rate (videos). Systems return such items from
`report_samples(stage)`; src.eval.report.write_report puts every section into one index.html.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from src.io.atomic import write_bytes_atomic

MIN_CELL_WIDTH = 160  # smaller frames are enlarged (nearest neighbour, whole pixels) so labels and legends fit


@dataclass
class Section:
    """One kind's part of the report: heading, a note on how to read it, one HTML block per item, and the
    numbers it adds to metrics.json (top-level keys; two kinds must not claim the same key)."""

    heading: str
    note_html: str
    blocks: list[str]
    payload: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ReportItem(Protocol):
    name: str

    def validate(self) -> None: ...

    @classmethod
    def render_section(cls, items: list[Any], page: ReportPage) -> Section: ...


@dataclass
class ReportPage:
    """Where a report is written and how: file helpers shared by every item kind.

    options: the keyword settings of write_report a kind may read (depth_range, max_error_mm, num_point_clouds).
    """

    out_dir: Path
    embed_images: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    _taken: set[str] = field(default_factory=set)

    def stem(self, name: str) -> str:
        """A file-safe, report-unique stem for an item name."""
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "sample"
        candidate, n = base, 1
        while candidate in self._taken:
            n += 1
            candidate = f"{base}-{n}"
        self._taken.add(candidate)
        return candidate

    def file(self, relative: str, data: bytes) -> str:
        """Write a file inside the report folder atomically; returns its relative link."""
        write_bytes_atomic(self.out_dir / relative, data)
        return relative

    def image_src(self, relative: str, data: bytes, mime: str = "image/png") -> str:
        """An <img> src: the file written into the folder, or a data URI with embed_images=True."""
        if self.embed_images:
            return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
        return self.file(relative, data)


def png_bytes(rgb: np.ndarray) -> bytes:
    """HxWx3 RGB (or HxW grey) uint8 -> PNG bytes."""
    array = np.asarray(rgb)
    bgr = array[..., ::-1] if array.ndim == 3 else array
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr))  # OpenCV encodes BGR
    if not ok:
        raise OSError("could not encode a report image as PNG")
    return buf.tobytes()


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    array = np.asarray(image)
    return array if factor == 1 else np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def enlarge_factor(width: int) -> int:
    """Whole-pixel factor that brings a frame to at least MIN_CELL_WIDTH."""
    return max(1, -(-MIN_CELL_WIDTH // max(1, int(width))))


def is_uint8_image(value: Any) -> bool:
    array = np.asarray(value)
    return array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3)))
