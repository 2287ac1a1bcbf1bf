"""Malformed recordings, videos and unprocessed captures given to `python -m src.capture` and `python -m src.convert`.

Each case expects ONE `error: ...` line naming the file or key (exit 1), with the input byte-identical afterwards
and nothing written where the output would go (or, where the output folder held something, that unchanged).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from src.convert.pipeline import REPORT_FILE
from tests.bad_inputs.bad_input_helpers import assert_one_line_error, run_entry, tree_hashes, truncate


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid 3-capture Azure Kinect recording and a plain 5-frame MJPEG video, to break copies of."""
    from tests.capture.capture_fixtures import astronaut_face, write_test_recording

    root = tmp_path_factory.mktemp("bad_recordings")
    write_test_recording(root / "take.mkv", [astronaut_face(shift=s) for s in (0, 2, 4)])
    writer = cv2.VideoWriter(str(root / "plain.mkv"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return root


def _recording(recordings: Path, folder: Path, name: str, damage: Callable[[Path], None] | None = None) -> Path:
    source = recordings / ("plain.mkv" if name.startswith("plain") else "take.mkv")
    path = folder / name
    shutil.copy(source, path)
    if damage is not None:
        damage(path)
    return path


# name -> (source kind, file name, damage, extra overrides, fragments of the error line)
CAPTURE_CASES: dict[str, tuple[str, str, Callable[[Path], None] | None, list[str], list[str]]] = {
    "zero-length recording": (
        "mkv", "zero.mkv", lambda p: p.write_bytes(b""), [], ["zero.mkv: not a readable Matroska recording"],
    ),
    "text file as recording": (
        "mkv", "notes.mkv", lambda p: p.write_text("take 3: good light\n"), [],
        ["notes.mkv: not a readable Matroska recording"],
    ),
    "recording cut inside its header": (
        "mkv", "cut.mkv", lambda p: p.write_bytes(p.read_bytes()[:300]), [], ["cut.mkv: "],
    ),
    "plain video given as a Kinect recording": (
        "mkv", "plain.mkv", None, [], ["plain.mkv: missing Azure Kinect track(s) ['COLOR', 'DEPTH', 'IR']"],
    ),
    "recording that is not there": (
        "mkv", "absent.mkv", lambda p: p.unlink(), [], ["source.path: recording", "absent.mkv not found"],
    ),
    "zero-length video": (
        "video", "plain_zero.mkv", lambda p: p.write_bytes(b""), [],
        ["source.path: OpenCV cannot open video", "plain_zero.mkv"],
    ),
    "video cut to a tenth": (
        "video", "plain_cut.mkv", lambda p: truncate(p, 0.1), [],
        ["source.path: OpenCV cannot open video", "plain_cut.mkv"],
    ),
    "unknown capture key": ("mkv", "take.mkv", None, ["bogus=1"], ["Could not override 'bogus'"]),
    "negative frame count": (
        "mkv", "take.mkv", None, ["split.train_frames=-5"], ["split.train_frames / eval_frames must be >= 0", "-5"],
    ),
    "session name with the id separator": (
        "mkv", "take.mkv", None, ["session=day_2"], ["capture.session must be letters, digits and '-' only", "'day_2'"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CAPTURE_CASES))
def test_malformed_recording_is_one_line_and_writes_nothing(
    case: str, recordings: Path, tmp_path: Path, project: Path
) -> None:
    kind, name, damage, extra, expected = CAPTURE_CASES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = _recording(recordings, inputs, name, damage)
    before = tree_hashes(inputs)
    out = tmp_path / "unprocessed"
    args = [f"capture/source={kind}", f"source.path={path}", f"output_dir={out}", "progress=false", *extra]
    outcome = run_entry("src.capture", args, project)
    assert_one_line_error(outcome, *expected)
    assert tree_hashes(inputs) == before and not out.exists()


def unprocessed_capture(root: Path, frames: int = 2) -> Path:
    """An unprocessed capture in the recorder's layout (src/io/rgbd_layout.py) of grey frames: valid files."""
    for split in ("train", "eval"):
        for index in range(frames):
            for kind, image in (
                ("Color", np.full((64, 48, 3), 90, np.uint8)),
                ("Depth", np.full((64, 48), 600, np.uint16)),
                ("Infrared", np.full((64, 48), 900, np.uint16)),
            ):
                (root / split / kind).mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(root / split / kind / f"{index}.png"), image)
    (root / "config.txt").write_text("fx: 50\nfy: 50\ncx: 23.5\ncy: 31.5\n")
    return root


def _each(root: Path, pattern: str, change: Callable[[Path], None]) -> None:
    for path in sorted(root.glob(pattern)):
        change(path)


# name -> (damage of the input folder, extra overrides, fragments of the error line)
CONVERT_CASES: dict[str, tuple[Callable[[Path], None], list[str], list[str]]] = {
    "input folder that is not there": (
        lambda r: shutil.rmtree(r), [], ["convert: input folder", "does not exist"],
    ),
    "empty input folder": (
        lambda r: [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in list(r.iterdir())], [],
        ["convert: no frames found under"],
    ),
    "colour frames without depth": (
        lambda r: _each(r, "*/Depth/*.png", Path.unlink), ["workers=1"],
        ["all 4 frame(s) were rejected (missing_depth 4)"],
    ),
    "truncated colour PNGs": (
        lambda r: _each(r, "*/Color/*.png", truncate), ["workers=1"],
        ["all 4 frame(s) were rejected (truncated_png 4)"],
    ),
    "8-bit depth": (
        lambda r: _each(r, "*/Depth/*.png", lambda p: cv2.imwrite(str(p), np.full((64, 48), 60, np.uint8))),
        ["workers=1"], ["all 4 frame(s) were rejected"],
    ),
    "colour with an alpha channel": (
        lambda r: _each(r, "*/Color/*.png", lambda p: cv2.imwrite(str(p), np.full((64, 48, 4), 90, np.uint8))),
        ["workers=1"], ["all 4 frame(s) were rejected"],
    ),
    "intrinsics that are not numbers": (
        lambda r: (r / "config.txt").write_text("fx: wide\nfy: 50\ncx: 23.5\ncy: 31.5\n"), [],
        ["config.txt: bad intrinsics", "'wide'"],
    ),
    "unknown convert key": (lambda r: None, ["bogus=1"], ["Could not override 'bogus'"]),
    "negative output size": (lambda r: None, ["size=-512"], ["convert.size: must be >= 16 px, got -512"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CONVERT_CASES))
def test_malformed_capture_is_one_line_and_converts_nothing(case: str, tmp_path: Path, project: Path) -> None:
    damage, extra, expected = CONVERT_CASES[case]
    source = unprocessed_capture(tmp_path / "unprocessed")
    damage(source)
    before = tree_hashes(source) if source.exists() else {}
    out = tmp_path / "processed"
    outcome = run_entry("src.convert", [f"input={source}", f"output={out}", "progress=false", *extra], project)
    assert_one_line_error(outcome, *expected)
    assert (tree_hashes(source) if source.exists() else {}) == before
    # No dataset is left behind; when frames were read and rejected, the report says why (documented).
    assert not out.exists() or [p.name for p in out.rglob("*")] == [REPORT_FILE]


def test_convert_into_a_folder_of_other_files_refuses_and_keeps_them(tmp_path: Path, project: Path) -> None:
    source = unprocessed_capture(tmp_path / "unprocessed")
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("\\section{Faces}\n")
    before = tree_hashes(source, out)
    outcome = run_entry("src.convert", [f"input={source}", f"output={out}", "progress=false"], project)
    assert_one_line_error(outcome, f"convert: output {out} is not empty", "overwrite=true")
    assert tree_hashes(source, out) == before
