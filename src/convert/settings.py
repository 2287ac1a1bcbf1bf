"""Validated conversion settings, built from the Hydra config (conf/convert.yaml) or keyword arguments.

Every knob that changes the bytes of the output is part of `fingerprint()`: a resumed conversion refuses to
mix outputs made with different settings, and says which key differs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from src.convert.depth_fill import FillSettings

_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9-]+$")


FACE_COUNTERS = ("tiled", "landmarks")


@dataclass(frozen=True)
class ConvertSettings:
    """The original's options (size, padding, depth_padding, face_depth, depth filling, erosion) plus ours."""

    input: Path
    output: Path
    size: int = 512
    padding: int = 20
    depth_padding: float = 20.0  # mm in front of the nose kept in the depth range
    face_depth: float = 200.0  # mm behind the nose kept in the depth range (the README uses 80)
    depth_bits: int = 16  # 8 reproduces the original's files; 16 keeps sub-millimetre precision
    erosion: bool = True
    max_pose_deg: float | None = 10.0  # |yaw|, |pitch|, |roll| limit of the capture gate; None disables
    detect_max_side: int | None = None  # the detector sees a copy whose longer side is at most this many px
    face_counter: str = "tiled"  # the gate's face count: tiled full-range detector | landmarks (the landmark model's)
    min_face_px: float = 40.0  # smallest face the tiled counter sees, in px of the copy the detector sees
    fill: FillSettings = field(default_factory=FillSettings)
    fill_margin: float = 0.02  # the fill region (landmark + forehead hull) grows by this fraction of the face size
    detector: Mapping[str, Any] = field(default_factory=lambda: {"name": "mediapipe"})
    group: str | None = None  # session name for plainly numbered input frames (default: the input folder)
    workers: int = 2
    overwrite: bool = False
    progress: bool = True
    exit_after_frames: int | None = None  # test hook: hard-exit after this many frames (simulates a kill)

    def __post_init__(self) -> None:
        # One type per key whatever the source (YAML 10 vs Python 10.0), so resumed runs compare equal.
        for key in ("size", "padding", "depth_bits", "workers"):
            object.__setattr__(self, key, int(getattr(self, key)))
        for key in ("depth_padding", "face_depth", "fill_margin", "min_face_px"):
            object.__setattr__(self, key, float(getattr(self, key)))
        for key in ("max_pose_deg", "detect_max_side", "exit_after_frames"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, float(value) if key == "max_pose_deg" else int(value))

        def need(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise ValueError(f"convert.{key}: {message}")

        need(self.size >= 16, "size", f"must be >= 16 px, got {self.size}")
        need(0 <= 2 * self.padding < self.size, "padding", f"must be in [0, size/2), got {self.padding}")
        need(self.depth_padding >= 0, "depth_padding", f"must be >= 0 mm, got {self.depth_padding}")
        need(self.face_depth > 0, "face_depth", f"must be > 0 mm, got {self.face_depth}")
        need(self.depth_bits in (8, 16), "depth_bits", f"must be 8 or 16, got {self.depth_bits}")
        need(
            self.max_pose_deg is None or self.max_pose_deg > 0,
            "max_pose_deg",
            f"must be > 0 or null, got {self.max_pose_deg}",
        )
        need(
            self.detect_max_side is None or self.detect_max_side >= 64,
            "detect_max_side",
            f"must be >= 64 px or null, got {self.detect_max_side}",
        )
        need(self.fill_margin >= 0, "fill_margin", f"must be >= 0, got {self.fill_margin}")
        need(
            self.face_counter in FACE_COUNTERS,
            "face_counter",
            f"must be one of {FACE_COUNTERS}, got {self.face_counter!r}",
        )
        need(self.min_face_px > 0, "min_face_px", f"must be > 0 px, got {self.min_face_px}")
        need(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
        need(
            self.group is None or bool(_GROUP_PATTERN.match(self.group)),
            "group",
            f"must be letters, digits or '-' (no underscore: it separates group and index), got {self.group!r}",
        )
        need("name" in self.detector or "_target_" in self.detector, "detector", "needs a 'name' or '_target_' key")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ConvertSettings:
        """Build from a (Hydra / OmegaConf or plain) mapping; unknown keys are an error naming the key."""
        try:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        except ImportError:  # pragma: no cover - omegaconf is a dependency
            pass
        values = {k: v for k, v in dict(cfg).items() if k != "hydra"}
        for key in ("input", "output"):
            if values.get(key) in (None, "", "???"):
                raise ValueError(f"convert.{key}: missing (pass {key}=<folder> on the command line)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - {"depth_fill"})
        if unknown:
            raise ValueError(f"convert: unknown config key(s) {unknown}; known keys are {sorted(known)}")
        fill_cfg = dict(values.pop("depth_fill", None) or {})
        fill_margin = fill_cfg.pop("margin", None)
        try:
            fill = FillSettings(**fill_cfg)
        except (TypeError, ValueError) as err:
            raise ValueError(f"convert.depth_fill: {err}") from None
        values["fill"] = fill
        if fill_margin is not None:
            values["fill_margin"] = float(fill_margin)
        values["input"] = Path(values["input"]).expanduser()
        values["output"] = Path(values["output"]).expanduser()
        if "detector" in values:
            values["detector"] = dict(values["detector"])
        return cls(**values)

    def output_affecting(self) -> dict[str, Any]:
        """The settings that change output bytes (resume compares these)."""
        skip = {"input", "output", "workers", "overwrite", "progress", "exit_after_frames"}
        out = {}
        for f in fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            out[f.name] = asdict(value) if f.name == "fill" else (dict(value) if f.name == "detector" else value)
        return out

    def fingerprint(self) -> str:
        text = json.dumps(self.output_affecting(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
