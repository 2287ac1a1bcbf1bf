"""The capture app: source -> (registered depth) -> frame gate -> unprocessed layout, resumable.

    python -m src.capture capture/source=mkv source.path=rec.mkv output_dir=datasets/unprocessed/me
    run_capture(capture_config(["source.path=rec.mkv", "output_dir=datasets/unprocessed/me"]))  # from Python

Sources: capture/source=kinect (live, pyk4a) | mkv (recording) | faceworld (synthetic rig) | video (RGB only).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from src.capture.face_count import FaceCounter
from src.capture.gate import ACCEPTED, REASONS, FrameGate, GateDecision
from src.capture.sources import FrameSource, SourceFrame
from src.capture.writer import SplitPlan, UnprocessedWriter
from src.utils.errors import DatasetError

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class CaptureSummary:
    root: Path
    session: str
    counts: dict[str, int]  # complete frames per split on disk after this run
    reasons: dict[str, int] = field(default_factory=dict)  # gate outcomes of this run
    resumed_from: int = 0  # accepted frames already on disk when the run started
    complete: bool = False  # all quotas filled
    seconds: float = 0.0


def capture_config(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/capture.yaml composed with Hydra overrides, e.g. ["source.path=take.mkv", "output_dir=out"].

    For calling `run_capture` from Python or tests (not from inside another running Hydra app).
    """
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("capture", overrides=list(overrides))


def run_capture(cfg: Any, source: FrameSource | None = None, gate: FrameGate | None = None) -> CaptureSummary:
    """Run a capture from a composed config (DictConfig or nested dict); `source` / `gate` override the config's."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    if OmegaConf.is_missing(cfg, "output_dir") or not cfg.get("output_dir"):
        raise ValueError("capture: output_dir is required (the unprocessed dataset root)")
    if "source" in cfg and source is None and OmegaConf.is_missing(cfg.source, "path"):
        raise ValueError(f"capture: source.path is required for the {cfg.source.get('_target_', '?')} source")
    plan = SplitPlan(**OmegaConf.to_container(cfg.split, resolve=True))  # type: ignore[arg-type]
    own_source = source is None
    source = source if source is not None else instantiate(cfg.source)
    own_gate = gate is None
    try:
        writer = UnprocessedWriter(cfg.output_dir, str(cfg.session), plan, with_depth=source.has_depth)
        overwrite = bool(cfg.get("overwrite", False))
        on_disk = 0 if overwrite else sum(writer.scan().values())
        check_splits_reachable(plan, source, on_disk)  # before the detectors load and anything on disk changes
        if gate is None:
            gate = build_gate(cfg)
        return _capture(cfg, source, gate, writer)
    finally:
        if own_source:
            source.close()
        if own_gate and gate is not None:
            gate.close()


FACE_COUNTERS = ("tiled", "landmarks")


def build_gate(cfg: Any) -> FrameGate:
    """The frame gate of conf/capture.yaml: the landmark detector, the pose limit and the face counter."""
    from hydra.utils import instantiate

    counter_name = str(cfg.gate.get("face_counter", "tiled"))
    if counter_name not in FACE_COUNTERS:
        raise ValueError(f"gate.face_counter must be one of {FACE_COUNTERS}, got {counter_name!r}")
    max_angle = float(cfg.gate.max_angle_deg)
    counter = FaceCounter(min_face_px=float(cfg.gate.get("min_face_px", 40))) if counter_name == "tiled" else None
    detector = instantiate(cfg.landmarks)
    return FrameGate(detector, max_angle_deg=max_angle, face_counter=counter)


def _capture(cfg: Any, source: FrameSource, gate: FrameGate, writer: UnprocessedWriter) -> CaptureSummary:
    started = time.perf_counter()
    plan = writer.plan
    if cfg.get("overwrite", False):
        removed = writer.remove_session()
        log.info("overwrite: removed %d files of session %s", removed, writer.session)
    writer.scan()
    resumed_from = writer.accepted
    start, skip_accepted = _resume_point(writer, source, bool(cfg.get("resume", True)))
    writer.write_config(_config_entries(cfg, source, plan, writer))
    reasons: Counter[str] = Counter({reason: 0 for reason in REASONS})
    preview = _Preview(bool(cfg.get("preview", False)), float(gate.max_angle_deg))
    position = start - 1
    with _Progress(enabled=bool(cfg.get("progress", True)), total=plan.total, done=writer.accepted) as progress:
        for frame in source.frames(start):
            if writer.done:
                break
            position = frame.index
            decision = gate(frame.color, frame.intrinsics)
            reasons[decision.reason] += 1
            preview.show(frame, decision)
            if decision.accepted:
                if skip_accepted > 0:  # already on disk from the interrupted run
                    skip_accepted -= 1
                else:
                    writer.write(frame.color, frame.depth, frame.ir)
                if source.deterministic:
                    writer.write_state(position, {"reasons": dict(reasons)})
                progress.advance(writer.accepted)
            progress.describe(reasons)
    preview.close()
    counts = dict(writer.counts)
    writer.write_config({f"{writer.session}_{split}_frames": n for split, n in counts.items()})
    summary = CaptureSummary(
        writer.root, writer.session, counts, dict(reasons), resumed_from, writer.done, time.perf_counter() - started
    )
    log.info("capture: %s", summary)
    empty = plan.empty_splits(writer.accepted)
    if empty:
        gate_text = ", ".join(f"{reason} {n}" for reason, n in reasons.items() if n) or "no frames read"
        raise EmptySplitError(
            f"capture: the {' and '.join(empty)} split of session {writer.session} in {writer.root} is empty: the "
            f"source ended after {writer.accepted} accepted frames (gate this run: {gate_text}; {plan.describe()}); "
            f"the {writer.accepted} frames written stay on disk"
        )
    if not writer.done:
        log.warning(
            "capture: the source ended after %s accepted frames of %d wanted (%s)", counts, plan.total, dict(reasons)
        )
    return summary


class EmptySplitError(DatasetError):
    """A capture left a split that has a quota without a single frame: no usable train / eval dataset."""


def check_splits_reachable(plan: SplitPlan, source: FrameSource, on_disk: int = 0) -> None:
    """Fail before any work when a source of known length can never put a frame into a split that wants some.

    A deterministic source replays from the start, so its length bounds the session; a live one adds to what is on
    disk. Sources of unknown length (recordings, unbounded live streams) are checked after the capture instead.
    """
    count = getattr(source, "frame_count", None)  # duck-typed sources without it: unknown length
    if count is None:
        return
    most = count if source.deterministic else on_disk + count
    empty = plan.empty_splits(most)
    if empty:
        raise EmptySplitError(
            f"capture: the {' and '.join(empty)} split would stay empty: the {source.name} source gives at most "
            f"{count} frames{'' if source.deterministic else f' after the {on_disk} on disk'}, even if every one "
            f"passed the gate ({plan.describe()}); lower the quota or give the source more frames "
            "(source.num_frames / source.max_frames)"
        )


def _resume_point(writer: UnprocessedWriter, source: FrameSource, resume: bool) -> tuple[int, int]:
    """(first source index to read, accepted frames to skip because they are already on disk)."""
    on_disk = writer.accepted
    if on_disk == 0:
        return 0, 0
    if not resume:
        raise FileExistsError(
            f"{writer.root}: session {writer.session!r} already has {on_disk} frames; "
            "set resume=true to continue or overwrite=true"
        )
    if not source.deterministic:
        log.info("resume: live source, continuing after %d frames on disk", on_disk)
        return 0, 0
    state = writer.read_state()
    if state is not None:
        state_total = sum(int(v) for v in state.get("counts", {}).values())  # type: ignore[union-attr]
        if state_total <= on_disk:
            # Frames written after the last state update (a kill in between) are skipped when met again.
            log.info("resume: source position %s, %d frames on disk", state["source_position"], on_disk)
            return int(state["source_position"]) + 1, on_disk - state_total  # type: ignore[arg-type]
    log.info("resume: no usable state; re-gating the source and skipping the %d accepted frames on disk", on_disk)
    return 0, on_disk


def _config_entries(cfg: Any, source: FrameSource, plan: SplitPlan, writer: UnprocessedWriter) -> dict[str, object]:
    entries: dict[str, object] = {f"{writer.session}_{k}": v for k, v in source.describe().items()}
    entries.update(
        {
            "layout": "unprocessed",
            "depth_units": "mm (uint16 PNG, registered to the colour camera, 0 = no data)",
            "split_mode": plan.mode,
            "train_frames_wanted": plan.train_frames,
            "eval_frames_wanted": plan.eval_frames,
            "gate_max_angle_deg": float(cfg.gate.max_angle_deg),
            "gate_face_counter": str(cfg.gate.get("face_counter", "tiled")),
            "gate_min_face_px": float(cfg.gate.get("min_face_px", 40)),
            "landmark_detector": str(cfg.landmarks.get("_target_", "?")),
        }
    )
    if plan.mode == "interleaved":
        entries["interleave_every"] = plan.interleave_every
    # Intrinsics of the (cropped) colour images, for point clouds downstream; sessions share one device here.
    for key in ("fx", "fy", "cx", "cy"):
        session_key = f"{writer.session}_{key}"
        if session_key in entries:
            entries[key] = entries[session_key]
    return entries


class _Progress:
    """A rich progress bar with accepted / rejected counts by reason; silent when disabled or not a terminal."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled = enabled
        self.total, self.done = total, done
        self._progress = None
        self._last_log = 0.0

    def __enter__(self) -> _Progress:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("capture"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total, completed=self.done)
        return self

    def advance(self, accepted: int) -> None:
        self.done = accepted
        if self._progress is not None:
            self._progress.update(self._task, completed=accepted)

    def describe(self, reasons: Counter[str]) -> None:
        text = " ".join(f"{reason}={n}" for reason, n in reasons.items() if n)
        if self._progress is not None:
            self._progress.update(self._task, description=text)
        elif self.enabled and time.monotonic() - self._last_log > 10:
            self._last_log = time.monotonic()
            log.info("capture %d/%d %s", self.done, self.total, text)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


class _Preview:
    """Optional live window (colour + landmarks + decision); only with a display, else one clear message."""

    WINDOW = "facesynth capture"

    def __init__(self, enabled: bool, limit: float) -> None:
        self.enabled = enabled
        self.limit = limit
        if (
            enabled
            and sys.platform.startswith("linux")
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        ):
            log.warning(
                "preview=true but no display (DISPLAY/WAYLAND_DISPLAY unset): capturing without a preview window"
            )
            self.enabled = False

    def show(self, frame: SourceFrame, decision: GateDecision) -> None:
        if not self.enabled:
            return
        import cv2

        image = cv2.cvtColor(frame.color, cv2.COLOR_RGB2BGR)
        scale = 720 / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale) if scale < 1 else image
        scale = min(scale, 1.0)
        colour = (0, 200, 0) if decision.reason == ACCEPTED else (0, 0, 255)
        if decision.detection is not None:
            for x, y in np.asarray(decision.detection.landmarks) * scale:
                cv2.circle(image, (round(x), round(y)), 2, colour, -1)
        pose = "" if decision.pose_deg is None else " yaw {:.0f} pitch {:.0f} roll {:.0f}".format(*decision.pose_deg)
        cv2.putText(
            image,
            f"{decision.reason}{pose} (limit {self.limit:.0f})",
            (10, 30),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.7,
            colour,
            2,
        )
        try:
            cv2.imshow(self.WINDOW, image)
            cv2.waitKey(1)
        except cv2.error as err:
            log.warning("preview window failed (%s); continuing without it", err)
            self.enabled = False

    def close(self) -> None:
        if self.enabled:
            import cv2

            cv2.destroyWindow(self.WINDOW)
