"""Write accepted frames into the original's unprocessed layout, split train / eval, and resume.

Layout (src.io.rgbd_layout): <root>/{train,eval}/{Color,Depth,Infrared}/<session>_<index:06d>.png plus
<root>/config.txt. Every file is written atomically; a frame counts as complete only when all of its files exist,
so a kill between two files leaves an incomplete frame that the next run deletes and redoes.

Split modes:
  block        the first `train_frames` accepted frames -> train, the next `eval_frames` -> eval: eval is a
               contiguous block held out in time (default).
  sessions     every frame of this run goes to `session_split` (train or eval): record eval as its own session.
  interleaved  the original: every 7th accepted frame -> eval (not held out in time; for comparisons).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from src.io.atomic import remove_stale_temporaries, write_image_atomic, write_text_atomic
from src.io.rgbd_layout import CONFIG_FILE, SPLITS, UNPROCESSED_KINDS, unprocessed_paths, write_config

SPLIT_MODES = ("block", "sessions", "interleaved")
STATE_FILE = "capture_state.json"


@dataclass(frozen=True)
class SplitPlan:
    mode: str = "block"
    train_frames: int = 1500
    eval_frames: int = 250
    interleave_every: int = 7
    session_split: str = "train"

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise ValueError(f"split.mode must be one of {SPLIT_MODES}, got {self.mode!r}")
        if self.train_frames < 0 or self.eval_frames < 0 or self.train_frames + self.eval_frames == 0:
            raise ValueError(
                "split.train_frames / eval_frames must be >= 0 and not both 0, "
                f"got {self.train_frames} / {self.eval_frames}"
            )
        if self.interleave_every < 2:
            raise ValueError(f"split.interleave_every must be >= 2, got {self.interleave_every}")
        if self.session_split not in SPLITS:
            raise ValueError(f"split.session_split must be one of {SPLITS}, got {self.session_split!r}")

    @property
    def quotas(self) -> dict[str, int]:
        if self.mode == "sessions":
            return {
                s: (self.train_frames if s == "train" else self.eval_frames) if s == self.session_split else 0
                for s in SPLITS
            }
        return {"train": self.train_frames, "eval": self.eval_frames}

    @property
    def total(self) -> int:
        return sum(self.quotas.values())

    def split_of(self, ordinal: int) -> str:
        """The split of the `ordinal`-th accepted frame (0-based): a pure function, so resume is exact."""
        if self.mode == "sessions":
            return self.session_split
        if self.mode == "block":
            return "train" if ordinal < self.train_frames else "eval"
        return self._interleaved()[ordinal] if ordinal < self.total else "eval"

    def splits_reached(self, accepted: int) -> set[str]:
        """The splits that hold at least one frame once `accepted` frames have passed the gate."""
        return {self.split_of(k) for k in range(min(accepted, self.total))}

    def empty_splits(self, accepted: int) -> list[str]:
        """Splits with a quota that `accepted` frames leave without a single frame (in SPLITS order)."""
        reached = self.splits_reached(accepted)
        return [split for split in SPLITS if self.quotas[split] > 0 and split not in reached]

    def describe(self) -> str:
        """The split settings as the config keys a user would change, for error messages."""
        text = f"split.mode={self.mode}, split.train_frames={self.train_frames}, split.eval_frames={self.eval_frames}"
        if self.mode == "interleaved":
            text += f", split.interleave_every={self.interleave_every}"
        if self.mode == "sessions":
            text += f", split.session_split={self.session_split}"
        return text

    def _interleaved(self) -> list[str]:
        """Each `interleave_every`-th accepted frame -> eval while eval has room; the rest fill train."""
        if not hasattr(self, "_interleaved_cache"):
            counts = {"train": 0, "eval": 0}
            order = []
            for k in range(self.total):
                wants_eval = (k + 1) % self.interleave_every == 0
                full_train = counts["train"] >= self.train_frames
                split = "eval" if (wants_eval and counts["eval"] < self.eval_frames) or full_train else "train"
                counts[split] += 1
                order.append(split)
            object.__setattr__(self, "_interleaved_cache", order)
        return self._interleaved_cache  # type: ignore[attr-defined]


class UnprocessedWriter:
    """Owns one session's frames in an unprocessed dataset root."""

    def __init__(self, root: str | os.PathLike, session: str, plan: SplitPlan, with_depth: bool = True) -> None:
        if not re.fullmatch(r"[A-Za-z0-9-]+", session or ""):
            # the frame-group part of `<session>_<index>` ids (src/io/rgbd_layout.py): no '_'
            raise ValueError(f"capture.session must be letters, digits and '-' only, got {session!r}")
        self.root = Path(root)
        self.session = session
        self.plan = plan
        self.kinds = UNPROCESSED_KINDS if with_depth else ("Color",)
        self.counts = {split: 0 for split in SPLITS}

    def frame_id(self, index: int) -> str:
        return f"{self.session}_{index:06d}"

    def scan(self) -> dict[str, int]:
        """Count this session's complete frames; delete incomplete ones and everything after them.

        The accepted frames fill the splits in a fixed order (SplitPlan.split_of), so the frames already captured
        are the longest run of that order whose files are all on disk. A kill leaves at most the last frame
        incomplete; whatever lies beyond the first incomplete frame is removed so that the resumed run rewrites
        it and the result equals an uninterrupted run.
        """
        if self.root.exists():
            remove_stale_temporaries(self.root)
        counts = {split: 0 for split in SPLITS}
        ordinal = 0
        while ordinal < self.plan.total:
            split = self.plan.split_of(ordinal)
            paths = unprocessed_paths(self.root, split, self.frame_id(counts[split]))
            if not all(paths[kind].is_file() for kind in self.kinds):
                break
            counts[split] += 1
            ordinal += 1
        for split in SPLITS:
            for kind in UNPROCESSED_KINDS:
                for path in (self.root / split / kind).glob(f"{self.session}_*.png"):
                    index = path.stem.rsplit("_", 1)[1]
                    if index.isdigit() and int(index) >= counts[split]:
                        path.unlink()
        self.counts = counts
        return dict(counts)

    @property
    def accepted(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> bool:
        return self.accepted >= self.plan.total

    def write(self, color_rgb: np.ndarray, depth: np.ndarray | None, ir: np.ndarray | None) -> tuple[str, str]:
        """Write the next accepted frame; returns (split, frame_id). Depth/IR uint16 as 16-bit PNG, colour BGR."""
        split = self.plan.split_of(self.accepted)
        frame_id = self.frame_id(self.counts[split])
        paths = unprocessed_paths(self.root, split, frame_id)
        images = {"Color": cv2.cvtColor(color_rgb, cv2.COLOR_RGB2BGR), "Depth": depth, "Infrared": ir}
        # A frame counts as complete only once all of its files exist (see scan()).
        for kind in self.kinds:
            image = images[kind]
            if image is None:
                raise ValueError(f"frame {frame_id}: the source gave no {kind} image")
            if kind != "Color" and image.dtype != np.uint16:
                raise ValueError(f"frame {frame_id}: {kind} must be uint16, got {image.dtype}")
            write_image_atomic(paths[kind], image)
        self.counts[split] += 1
        return split, frame_id

    def write_state(self, source_position: int, extra: dict[str, object] | None = None) -> None:
        """Where the source stood after the last written frame (for deterministic sources' resume)."""
        state = {"session": self.session, "source_position": source_position, "counts": self.counts, **(extra or {})}
        write_text_atomic(self._state_path, json.dumps(state, indent=1))

    def read_state(self) -> dict[str, object] | None:
        path = self._state_path
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}: corrupt capture state ({err}); delete it to re-scan the source from the start"
            ) from None

    @property
    def _state_path(self) -> Path:
        return self.root / f".{self.session}.{STATE_FILE}"

    def remove_session(self) -> int:
        """Delete this session's frames and state (capture.overwrite); other sessions stay. Returns files removed."""
        removed = 0
        for split in SPLITS:
            for kind in UNPROCESSED_KINDS:
                for path in (self.root / split / kind).glob(f"{self.session}_*.png"):
                    path.unlink()
                    removed += 1
        self._state_path.unlink(missing_ok=True)
        self.counts = {split: 0 for split in SPLITS}
        return removed

    def write_config(self, entries: dict[str, object]) -> None:
        """Merge this session's facts into <root>/config.txt (other sessions' keys are kept)."""
        from src.io.rgbd_layout import read_config

        path = self.root / CONFIG_FILE
        merged: dict[str, object] = dict(read_config(path)) if path.is_file() else {}
        merged.update(entries)
        write_config(path, merged)
