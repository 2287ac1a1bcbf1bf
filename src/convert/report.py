"""The conversion report: accepted frames per split, rejections counted by reason, and this run's timing.

Everything outside `this_run` depends only on the input and the settings, so a resumed conversion writes the
same report body as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from src.convert.frames import REJECTION_REASONS

REPORT_FILE = "conversion_report.json"


@dataclass
class RunStats:
    """What this invocation did (differs between a fresh and a resumed run)."""

    time_s: float = 0.0
    pass1_s: float = 0.0  # detect + gate + fill + nose depth
    pass2_s: float = 0.0  # scale + crop + encode + write
    measured: int = 0  # frames detected and measured in this run (pass 1)
    rendered: int = 0  # frames written in this run (pass 2)
    reused: int = 0  # frames whose pass-1 or pass-2 results an earlier run had already finished
    frames_per_s: float = 0.0  # input frames handled by this run per second (both passes)


@dataclass
class ConversionReport:
    input: str
    output: str
    frames_total: int
    accepted: dict[str, int]
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECTION_REASONS, 0))
    rejected_frames: list[dict[str, str]] = field(default_factory=list)
    naming_problems: list[str] = field(default_factory=list)
    desired_nose_depth_mm: float | None = None
    global_scale: float | None = None
    settings: dict = field(default_factory=dict)
    this_run: RunStats = field(default_factory=RunStats)

    @property
    def accepted_total(self) -> int:
        return sum(self.accepted.values())

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reject(self, split: str, frame_id: str, reason: str, message: str) -> None:
        self.rejected[reason] += 1
        self.rejected_frames.append({"split": split, "frame_id": frame_id, "reason": reason, "message": message})

    def to_json(self) -> dict:
        out = asdict(self)
        out["accepted_total"] = self.accepted_total
        out["rejected_total"] = self.rejected_total
        return out

    def table(self) -> str:
        """A short human-readable summary (printed at the end of a conversion)."""
        rows = [("frames", str(self.frames_total))]
        rows += [(f"accepted {split}", str(n)) for split, n in self.accepted.items()]
        rows += [(f"rejected {reason}", str(n)) for reason, n in self.rejected.items() if n]
        if self.naming_problems:
            rows.append(("badly named files", str(len(self.naming_problems))))
        if self.desired_nose_depth_mm is not None:
            rows.append(("desired nose depth", f"{self.desired_nose_depth_mm:.1f} mm"))
        if self.global_scale is not None:
            rows.append(("global scale", f"{self.global_scale:.4f}"))
        run = self.this_run
        rows.append(("time", f"{run.time_s:.1f} s ({run.frames_per_s:.2f} frames/s)"))
        rows.append(("this run", f"measured {run.measured}, rendered {run.rendered}, reused {run.reused}"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
