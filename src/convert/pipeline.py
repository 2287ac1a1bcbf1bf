"""Unprocessed capture -> processed RGBD dataset: two passes, parallel workers, resumable, byte-deterministic.

Pass 1 measures every frame (detect, gate, fill, nose depth) and stores one small JSON per frame under
`<output>/.convert_state/measure/`; pass 2 renders every accepted frame into the processed layout. Every file
is written under a temporary name and renamed, each frame's result depends on that frame (and the dataset-wide
plan) only, so a run killed at any point and started again finishes with exactly the bytes of an uninterrupted
run: finished frames are skipped, unfinished ones are redone from scratch.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2

from src.capture.calibration import CameraIntrinsics
from src.capture.gate import FrameGate, default_intrinsics
from src.convert.frames import FrameRejectedError, SourceFrame, list_frames, read_frame
from src.convert.report import REPORT_FILE, ConversionReport, RunStats
from src.convert.settings import ConvertSettings
from src.convert.steps import (
    ConversionPlan,
    Measurement,
    build_face_counter,
    measure_frame,
    output_encoding,
    plan_conversion,
    render_frame,
)
from src.io.atomic import remove_stale_temporaries, write_image_atomic, write_text_atomic
from src.io.rgbd_layout import (
    CONFIG_FILE,
    LANDMARK_KIND,
    PROCESSED_IMAGE_KINDS,
    SPLITS,
    intrinsics_from_config,
    processed_paths,
    read_config,
    write_config,
)

log = logging.getLogger(__name__)

STATE_DIR = ".convert_state"
SETTINGS_FILE = "settings.json"
PLAN_FILE = "plan.json"

# The original's unprocessed frames are this crop of the Azure Kinect 3072P colour image (x=1050, y=400).
ORIGINAL_CROP_SIZE = (1900, 2270)  # width, height
ORIGINAL_CROP_INTRINSICS = (1955.0, 1954.0, 2044.0 - 1050.0, 1557.0 - 400.0)


class NothingUsableError(RuntimeError):
    """Every frame was rejected: there is no dataset to write."""


# ------------------------------------------------------------------------------------------------ helpers


def _state(root: Path) -> Path:
    return root / STATE_DIR


def _measure_record_path(root: Path, frame: SourceFrame) -> Path:
    return _state(root) / "measure" / frame.split / f"{frame.frame_id}.json"


def _render_reject_path(root: Path, frame: SourceFrame) -> Path:
    return _state(root) / "render_rejected" / frame.split / f"{frame.frame_id}.json"


def _outputs_complete(root: Path, frame: SourceFrame) -> bool:
    return all(p.is_file() for p in processed_paths(root, frame.split, frame.frame_id).values())


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: the frame is simply redone


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, sort_keys=True, indent=1) + "\n")


def source_intrinsics(input_root: Path) -> tuple[float, float, float, float] | None:
    """Colour intrinsics of the unprocessed frames: from <input>/config.txt when the capture recorded them."""
    config_path = Path(input_root) / CONFIG_FILE
    if not config_path.is_file():
        return None
    try:
        return intrinsics_from_config(read_config(config_path))
    except ValueError as err:
        raise ValueError(f"{config_path}: bad intrinsics ({err})") from None


def source_camera(intrinsics: tuple[float, float, float, float] | None, width: int, height: int) -> CameraIntrinsics:
    """The source frame's camera for the pose gate: recorded intrinsics, else the original's crop, else the gate's
    default (a ~53 degree field of view; PnP angles depend only weakly on the focal length)."""
    if intrinsics is not None:
        return CameraIntrinsics(width, height, *intrinsics)
    if (width, height) == ORIGINAL_CROP_SIZE:
        return CameraIntrinsics(width, height, *ORIGINAL_CROP_INTRINSICS)
    return default_intrinsics(width, height)


def _prepare_output(settings: ConvertSettings) -> None:
    """Create the output or check that an existing one was made with the same settings (resume)."""
    root = settings.output
    state_settings = _state(root) / SETTINGS_FILE
    if settings.overwrite and root.exists():
        looks_like_ours = (root / CONFIG_FILE).exists() or _state(root).exists() or (root / REPORT_FILE).exists()
        if any(root.iterdir()) and not looks_like_ours:
            raise FileExistsError(f"convert: output {root} exists and is not a conversion output; refusing to delete")
        shutil.rmtree(root)
    if root.exists() and any(root.iterdir()):
        previous = _read_json(state_settings)
        if previous is None:
            raise FileExistsError(
                f"convert: output {root} is not empty and has no {STATE_DIR}/{SETTINGS_FILE} to resume from; "
                "pass overwrite=true to replace it"
            )
        current = json.loads(json.dumps(settings.output_affecting(), default=str))
        if previous.get("settings") != current:
            differing = sorted(
                k
                for k in set(current) | set(previous.get("settings", {}))
                if current.get(k) != previous.get("settings", {}).get(k)
            )
            raise FileExistsError(
                f"convert: output {root} was made with different settings ({', '.join(differing)}); "
                "pass overwrite=true to start over"
            )
        removed = remove_stale_temporaries(root)
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted run", removed)
        return
    root.mkdir(parents=True, exist_ok=True)
    _write_json(state_settings, {"fingerprint": settings.fingerprint(), "settings": settings.output_affecting()})


# ------------------------------------------------------------------------------------------------ workers

_WORKER: dict[str, Any] = {}


def _build_detector(spec: Mapping[str, Any]):
    """A detector from its config: a short `name` (build_detector) or a Hydra-style `_target_` class path."""
    from src.landmarks.detectors.base import build_detector

    kwargs = {k: v for k, v in spec.items() if k not in ("name", "_target_")}
    if "_target_" in spec:
        module, _, cls = str(spec["_target_"]).rpartition(".")
        return build_detector(f"{module}:{cls}", **kwargs)
    return build_detector(str(spec["name"]), **kwargs)


def _init_worker(settings: ConvertSettings, plan: ConversionPlan | None, with_detector: bool) -> None:
    # Each worker is one core's worth of work: keep OpenCV from spawning its own thread pool on top.
    cv2.setNumThreads(1)
    _WORKER.clear()
    _WORKER.update(settings=settings, plan=plan, intrinsics=source_intrinsics(settings.input))
    if with_detector:
        # The capture's gate; with max_pose_deg null it still needs exactly one face but accepts any pose.
        limit = settings.max_pose_deg if settings.max_pose_deg is not None else math.inf
        counter = build_face_counter(settings)
        _WORKER["gate"] = FrameGate(_build_detector(settings.detector), max_angle_deg=limit, face_counter=counter)


def _close_worker() -> None:
    gate = _WORKER.pop("gate", None)
    if gate is not None:
        gate.close()


def _source_signature(root: Path, frame: SourceFrame) -> dict[str, list[int] | None]:
    """Size and modification time of a frame's input files: a changed file is measured again on resume."""
    out: dict[str, list[int] | None] = {}
    for kind in ("Color", "Depth"):
        try:
            stat = frame.paths(root)[kind].stat()
            out[kind] = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            out[kind] = None
    return out


def _measure_task(frame: SourceFrame) -> tuple[SourceFrame, dict]:
    """Pass 1 on one frame; writes and returns its record. Never raises for a bad frame."""
    settings: ConvertSettings = _WORKER["settings"]
    signature = _source_signature(settings.input, frame)
    try:
        colour, depth = read_frame(frame, settings.input)
        camera = source_camera(_WORKER["intrinsics"], colour.shape[1], colour.shape[0])
        measurement = measure_frame(colour, depth, _WORKER["gate"], camera, settings)
        record = {"frame_id": frame.frame_id, "status": "accepted", "measurement": measurement.to_json()}
    except FrameRejectedError as err:
        record = {"frame_id": frame.frame_id, "status": "rejected", "reason": err.reason, "message": str(err)}
    except Exception as err:  # one bad frame must never end the run; the report names it
        record = {"frame_id": frame.frame_id, "status": "rejected", "reason": "error", "message": repr(err)}
    record["source"] = signature
    _write_json(_measure_record_path(settings.output, frame), record)
    return frame, record


def _render_task(item: tuple[SourceFrame, Measurement]) -> tuple[SourceFrame, dict | None]:
    """Pass 2 on one frame: writes its four outputs (atomically), or a rejection record."""
    frame, measurement = item
    settings: ConvertSettings = _WORKER["settings"]
    try:
        colour, depth = read_frame(frame, settings.input)
        rendered = render_frame(colour, depth, measurement, _WORKER["plan"], settings)
    except FrameRejectedError as err:
        record = {"frame_id": frame.frame_id, "reason": err.reason, "message": str(err)}
    except Exception as err:
        record = {"frame_id": frame.frame_id, "reason": "error", "message": repr(err)}
    else:
        paths = processed_paths(settings.output, frame.split, frame.frame_id)
        write_image_atomic(paths["Color"], rendered.colour_bgr)
        write_image_atomic(paths["Depth"], rendered.depth_levels)
        write_image_atomic(paths["Feature"], rendered.feature)
        write_text_atomic(paths[LANDMARK_KIND], rendered.landmark_text)
        return frame, None
    _write_json(_render_reject_path(settings.output, frame), record)
    return frame, record


def _run_tasks(
    task,
    items: list,
    settings: ConvertSettings,
    plan: ConversionPlan | None,
    with_detector: bool,
    description: str,
    counter: list[int],
) -> Iterator:
    """Run a task over items on `settings.workers` processes (in-process for 1), with a progress bar + ETA."""
    if not items:
        return
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=description, unit="frame", disable=not settings.progress, file=sys.stderr)
    workers = min(settings.workers, len(items))
    try:
        if workers == 1:
            _init_worker(settings, plan, with_detector)
            try:
                results: Iterable = map(task, items)
                yield from _tick(results, bar, settings, counter)
            finally:
                _close_worker()
        else:
            context = mp.get_context("spawn")  # fork is unsafe with OpenCV / mediapipe thread pools
            with context.Pool(workers, initializer=_init_worker, initargs=(settings, plan, with_detector)) as pool:
                yield from _tick(pool.imap_unordered(task, items, chunksize=1), bar, settings, counter)
    finally:
        bar.close()


def _tick(results: Iterable, bar, settings: ConvertSettings, counter: list[int]) -> Iterator:
    for result in results:
        bar.update(1)
        counter[0] += 1
        yield result
        if settings.exit_after_frames is not None and counter[0] >= settings.exit_after_frames:
            os._exit(3)  # test hook: an abrupt end, no clean-up (like a kill)


# ------------------------------------------------------------------------------------------------ the run


def run_conversion(cfg: ConvertSettings | Mapping[str, Any] | None = None, **overrides: Any) -> ConversionReport:
    """Convert an unprocessed capture into the processed layout; returns the report (also written as JSON).

    `cfg` is a ConvertSettings, or a Hydra / plain mapping of conf/convert.yaml's keys; keyword overrides
    replace keys. Raises NothingUsableError (one line) when every frame is rejected; nothing is written then.
    """
    if isinstance(cfg, ConvertSettings):
        settings = cfg if not overrides else ConvertSettings.from_config({**_settings_mapping(cfg), **overrides})
    else:
        settings = ConvertSettings.from_config({**_as_dict(cfg), **overrides})
    started = time.perf_counter()
    frames, naming_problems = list_frames(settings.input, settings.group)
    # Read in every worker's initializer too: a bad config.txt must fail here, once, because a multiprocessing
    # Pool whose initializer raises respawns its workers forever (the conversion hung instead of failing).
    source_intrinsics(settings.input)
    # A detector that cannot be built fails here, with its own message, before anything is written (and not
    # once in every worker of the pool).
    _build_detector(settings.detector).close()
    output_existed = settings.output.exists()
    _prepare_output(settings)
    stats = RunStats()
    counter = [0]

    # Pass 1: measure every frame not measured yet.
    records: dict[SourceFrame, dict] = {}
    todo = []
    for frame in frames:
        record = _read_json(_measure_record_path(settings.output, frame))
        if (
            record is not None
            and record.get("frame_id") == frame.frame_id
            and record.get("source") == _source_signature(settings.input, frame)
        ):
            records[frame] = record
        else:
            todo.append(frame)
            # Whatever an earlier run rendered for this frame came from other input: it is redone.
            for path in processed_paths(settings.output, frame.split, frame.frame_id).values():
                path.unlink(missing_ok=True)
            _render_reject_path(settings.output, frame).unlink(missing_ok=True)
    stats.reused += len(records)
    pass1_started = time.perf_counter()
    for frame, record in _run_tasks(_measure_task, todo, settings, None, True, "convert 1/2 detect + measure", counter):
        records[frame] = record
        stats.measured += 1
    stats.pass1_s = time.perf_counter() - pass1_started

    report = ConversionReport(
        input=str(settings.input),
        output=str(settings.output),
        frames_total=len(frames),
        accepted=dict.fromkeys(SPLITS, 0),
        naming_problems=naming_problems,
        settings=json.loads(json.dumps(settings.output_affecting(), default=str)),
    )
    accepted: list[tuple[SourceFrame, Measurement]] = []
    for frame in frames:
        record = records[frame]
        if record["status"] == "accepted":
            accepted.append((frame, Measurement.from_json(record["measurement"])))
        else:
            report.reject(frame.split, frame.frame_id, record["reason"], record["message"])
    if not accepted:
        _give_up(settings, report, output_existed)

    # Between passes: the dataset-wide plan (depends only on pass-1 records, in frame order).
    plan = plan_conversion([m for _, m in accepted], settings)
    report.desired_nose_depth_mm = plan.desired_nose_depth_mm
    report.global_scale = plan.global_scale
    _check_plan(settings.output, plan)

    # Pass 2: render every accepted frame whose outputs are not complete yet.
    render_rejects: dict[SourceFrame, dict] = {}
    todo2 = []
    for frame, measurement in accepted:
        previous = _read_json(_render_reject_path(settings.output, frame))
        if previous is not None:
            render_rejects[frame] = previous
        elif not _outputs_complete(settings.output, frame):
            todo2.append((frame, measurement))
    stats.reused += len(accepted) - len(todo2)
    if todo2:
        # config.txt marks a finished dataset: it is (re)written only after the last frame.
        (settings.output / CONFIG_FILE).unlink(missing_ok=True)
    pass2_started = time.perf_counter()
    for frame, record in _run_tasks(_render_task, todo2, settings, plan, False, "convert 2/2 crop + write", counter):
        stats.rendered += 1
        if record is not None:
            render_rejects[frame] = record
    stats.pass2_s = time.perf_counter() - pass2_started
    for frame, _ in accepted:
        if frame in render_rejects:
            record = render_rejects[frame]
            report.reject(frame.split, frame.frame_id, record["reason"], record["message"])
        else:
            report.accepted[frame.split] += 1
    report.rejected_frames.sort(key=lambda r: (SPLITS.index(r["split"]), r["frame_id"]))
    if report.accepted_total == 0:
        _give_up(settings, report, output_existed)

    _remove_unlisted_outputs(settings.output, {(f.split, f.frame_id) for f, _ in accepted if f not in render_rejects})
    _write_dataset_config(settings, plan, report)
    stats.time_s = time.perf_counter() - started
    stats.frames_per_s = (stats.measured + stats.rendered) / 2 / stats.time_s if stats.time_s > 0 else 0.0
    report.this_run = stats
    _write_json(settings.output / REPORT_FILE, report.to_json())
    return report


def _check_plan(root: Path, plan: ConversionPlan) -> None:
    """Outputs rendered under another plan (the input changed between runs) are redone, never mixed."""
    path = _state(root) / PLAN_FILE
    current = {"desired_nose_depth_mm": plan.desired_nose_depth_mm, "global_scale": plan.global_scale}
    previous = _read_json(path)
    if previous is not None and previous != current:
        log.warning("convert: the input changed since the last run (new plan %s): re-rendering every frame", current)
        for split in SPLITS:
            shutil.rmtree(root / split, ignore_errors=True)
        shutil.rmtree(_state(root) / "render_rejected", ignore_errors=True)
    _write_json(path, current)


def _remove_unlisted_outputs(root: Path, keep: set[tuple[str, str]]) -> None:
    """Delete processed files of frames that are no longer in the input (or no longer accepted)."""
    for split in SPLITS:
        for kind in (*PROCESSED_IMAGE_KINDS, LANDMARK_KIND):
            folder = root / split / kind
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.is_file() and (split, path.stem) not in keep:
                        path.unlink()


def _give_up(settings: ConvertSettings, report: ConversionReport, output_existed: bool) -> None:
    """Nothing usable: leave no dataset behind (only the report when the output folder was ours)."""
    shutil.rmtree(_state(settings.output), ignore_errors=True)
    for split in SPLITS:
        shutil.rmtree(settings.output / split, ignore_errors=True)
    reasons = ", ".join(f"{k} {v}" for k, v in report.rejected.items() if v) or "no frames"
    message = (
        f"convert: nothing usable in {settings.input}: all {report.frames_total} frame(s) were rejected ({reasons})"
    )
    if output_existed or settings.output.exists():
        _write_json(settings.output / REPORT_FILE, report.to_json())
    raise NothingUsableError(message)


def _write_dataset_config(settings: ConvertSettings, plan: ConversionPlan, report: ConversionReport) -> None:
    encoding = output_encoding(plan, settings)
    entries: dict[str, object] = {
        "near_mm": encoding.near_mm,
        "far_mm": encoding.far_mm,
        "depth_bits": encoding.bits,
    }
    intrinsics = source_intrinsics(settings.input)
    if intrinsics is None:
        first = next(iter(settings.input.glob("*/Color/*.png")), None)
        if first is not None:
            image = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
            if image is not None and (image.shape[1], image.shape[0]) == ORIGINAL_CROP_SIZE:
                intrinsics = ORIGINAL_CROP_INTRINSICS
    if intrinsics is not None:
        # A processed frame is its source scaled by s_i * g about pixel centres and cropped around the face;
        # at the nose plane (depth shifted to the desired depth) its focal length is g * f. The principal point
        # moves with each crop: the crop centre stands for a virtual camera looking at the face.
        fx, fy, _, _ = intrinsics
        centre = (settings.size - 1) / 2
        entries.update(fx=fx * plan.global_scale, fy=fy * plan.global_scale, cx=centre, cy=centre)
        entries["principal_point"] = "crop_centre"
    entries.update(
        face_depth_mm=settings.face_depth,
        depth_padding_mm=settings.depth_padding,
        nose_depth_mm=plan.desired_nose_depth_mm,
        global_scale=plan.global_scale,
        size=settings.size,
        padding=settings.padding,
        depth_fill=settings.fill.method,
        frames_train=report.accepted["train"],
        frames_eval=report.accepted["eval"],
        source="src.convert",
    )
    write_config(settings.output / CONFIG_FILE, entries)


def _as_dict(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    if cfg is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def _settings_mapping(settings: ConvertSettings) -> dict[str, Any]:
    from dataclasses import asdict, fields

    out = {f.name: getattr(settings, f.name) for f in fields(settings)}
    fill = asdict(out.pop("fill"))
    fill["margin"] = out.pop("fill_margin")
    out["depth_fill"] = fill
    return out
