"""Finding the input frames: both naming schemes, ids for held-out splits by session, problems reported."""

from __future__ import annotations

import pytest

from src.convert.frames import list_frames


def _touch(root, split, name):
    path = root / split / "Color" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_plain_and_grouped_names_become_group_index_ids_in_a_fixed_order(tmp_path):
    root = tmp_path / "new_data"  # the original's layout names frames 0.png, 1.png, ...
    for name in ("10.png", "2.png", "sessB_7.png", "sessA_000003.png", "notes.txt"):
        _touch(root, "train", name)
    _touch(root, "eval", "1.png")
    frames, problems = list_frames(root)
    assert [(f.split, f.frame_id) for f in frames] == [
        ("train", "new-data_000002"),  # the folder name, without its underscore, is the session
        ("train", "new-data_000010"),
        ("train", "sessA_000003"),
        ("train", "sessB_000007"),
        ("eval", "new-data_000001"),
    ]
    assert frames[1].name == "10" and not problems
    frames, _ = list_frames(root, group="kinect1")
    assert frames[0].frame_id == "kinect1_000002"


def test_bad_names_and_duplicate_ids_are_reported_not_dropped_silently(tmp_path):
    root = tmp_path / "cap"
    for name in ("s1_5.png", "s1_005.png", "face shot.png"):
        _touch(root, "train", name)
    frames, problems = list_frames(root)
    assert [f.frame_id for f in frames] == ["s1_000005"]
    assert len(problems) == 2 and any("face shot.png" in p for p in problems) and any("same id" in p for p in problems)


def test_missing_input_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_frames(tmp_path / "nowhere")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no frames found"):
        list_frames(tmp_path / "empty")
