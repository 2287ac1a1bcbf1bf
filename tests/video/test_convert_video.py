"""Video preprocessing end to end: FaceWorld .mp4 files -> Head2Head layout (the original's rules) -> datamodule batch;
faceless, corrupt, too-short and unreadable videos counted in the report; resume; the pieces against references."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from src.convert.video.pipeline import (
    VideoSettings,
    crop_square,
    find_videos,
    fixed_square_box,
    frame_to_crop,
    run_video_conversion,
)
from src.datamodules.head2head import Head2HeadDataModule
from src.faceworld.writers.head2head import read_misc
from src.faceworld.writers.videos import read_video_truth, write_talking_head_video
from src.io.images import read_image
from src.landmarks.nme import normalised_mean_error
from src.utils.errors import UserError

SIZE, FRAMES, PART, CROP = (320, 240), 40, 10, 96
ABSENT = (12, 13)
# int(0.33 * 40) = 13 test frames meant; 27 train frames floor to 20 (2 whole parts); test = frames 20-39.
FIRST_TEST = 20


def _settings(**changes) -> VideoSettings:
    return VideoSettings(size=CROP, part_frames=PART, identity_frames=8, **changes)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, Path, object]:
    videos = tmp_path_factory.mktemp("videos")
    write_talking_head_video(videos / "alice.mp4", 21, FRAMES, size=SIZE, absent_frames=ABSENT)
    write_talking_head_video(videos / "bob_b.mp4", 22, FRAMES, size=SIZE)
    write_talking_head_video(videos / "short.mp4", 23, 8, size=SIZE)
    (videos / "broken.mp4").write_bytes(b"this is not a video")
    # carol: bob's file with a run of zeroed bytes in the middle (the decoder rejects some packets)
    data = bytearray((videos / "bob_b.mp4").read_bytes())
    middle = len(data) // 2
    data[middle : middle + len(data) // 20] = bytes(len(data) // 20)
    (videos / "carol.mp4").write_bytes(bytes(data))
    # dan: one identity in two parts (dan_0, dan_1): one global frame counter, only the last part split
    write_talking_head_video(videos / "dan_0.mp4", 24, 30, size=SIZE)
    write_talking_head_video(videos / "dan_1.mp4", 24, 30, size=SIZE, seed=1)
    output = tmp_path_factory.mktemp("out") / "dataset_root"
    report = run_video_conversion(videos, output, _settings(), workers=1, progress=False)
    return videos, output, report


def test_report_counts_every_kind_of_trouble(converted):
    _, output, report = converted
    by_name = {v.name: v for v in report.videos}
    assert sorted(by_name) == ["alice", "bob", "broken", "carol", "dan", "short"]  # the text before the first `_`
    assert by_name["alice"].status == "ok" and by_name["bob"].status == "ok"
    assert by_name["alice"].faceless_frames == len(ABSENT) and by_name["alice"].missing_boxes == len(ABSENT)
    assert by_name["bob"].faceless_frames == 0 and by_name["bob"].corrupt_frames == 0
    assert by_name["short"].status == "too_short"
    assert by_name["broken"].status == "unreadable"
    assert by_name["carol"].corrupt_frames >= 1 and by_name["carol"].frames < FRAMES
    assert by_name["carol"].status == "ok"
    saved = json.loads((output / "convert_video_report.json").read_text())
    assert saved["status"] == {"ok": 4, "too_short": 1, "unreadable": 1}
    assert saved["totals"]["faceless_frames"] == sum(v.faceless_frames for v in report.videos)


def test_layout_follows_the_originals_rules(converted):
    _, output, _ = converted
    train, test = output / "dataset" / "train", output / "dataset" / "test"
    for kind in ("images", "nmfcs", "landmarks70", "misc", "exp_coeffs", "eye_gaze"):
        assert sorted(p.name for p in (train / kind).iterdir()) == [
            "alice_000000", "alice_000001", "bob_000000", "bob_000001", "carol_000000", "carol_000001",
            *(f"dan_{part:06d}" for part in range(5)),
        ]  # fmt: skip
        assert sorted(p.name for p in (test / kind).iterdir()) == ["alice", "bob", "carol", "dan"]
    for part in (0, 1):  # whole parts: frame // PART, faceless frames dropped
        frames = sorted(int(p.stem) for p in (train / "images" / f"alice_{part:06d}").iterdir())
        assert frames == [f for f in range(part * PART, (part + 1) * PART) if f not in ABSENT]
        first = min(p.name for p in (train / "images" / f"bob_{part:06d}").iterdir())
        assert first == f"{part * PART:06d}.png"
    assert sorted(int(p.stem) for p in (test / "images" / "bob").iterdir()) == list(range(FIRST_TEST, FRAMES))
    for split in (train, test):
        names = ["alice.txt", "bob.txt", "carol.txt", "dan.txt"]
        assert sorted(p.name for p in (split / "id_coeffs").iterdir()) == names
    # dan's parts: frames 0-29 and 30-59; the last part has int(0.33 * 30) = 9 test frames meant, the train frames
    # before them floor to 50: test = 50-59, train = five whole parts 0-49 across both files
    assert sorted(int(p.stem) for p in (test / "images" / "dan").iterdir()) == list(range(50, 60))
    assert sorted(int(p.stem) for p in (train / "images" / "dan_000003").iterdir()) == list(range(30, 40))
    misc = test / "misc" / "bob" / "000025.txt"
    assert len(misc.read_text().splitlines()) == 7
    _, rotation, _ = read_misc(misc)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    assert np.loadtxt(test / "landmarks70" / "bob" / "000025.txt").shape == (70, 2)
    assert len(np.loadtxt(test / "exp_coeffs" / "bob" / "000025.txt")) == 9


def test_landmarks_and_nmfc_agree_with_the_truth(converted):
    videos, output, report = converted
    truth = read_video_truth(videos / "bob_b.mp4")
    box = next(v for v in report.videos if v.name == "bob").box
    errors, ious = [], []
    for frame in (3, 17, 30):
        split, seq = ("train", f"bob_{frame // PART:06d}") if frame < FIRST_TEST else ("test", "bob")
        found = np.loadtxt(output / "dataset" / split / "landmarks70" / seq / f"{frame:06d}.txt")
        true = frame_to_crop(truth.landmarks[frame], box, CROP)
        errors.append(normalised_mean_error(found[:68], true[:68]))
        nmfc = crop_square(truth.nmfc(frame), box, CROP)
        fitted = read_image(output / "dataset" / split / "nmfcs" / seq / f"{frame:06d}.png")
        a, b = nmfc.max(-1) > 0, fitted.max(-1) > 0
        ious.append((a & b).sum() / (a | b).sum())
    assert np.mean(errors) < 0.08, errors
    assert np.mean(ious) > 0.75, ious


def test_end_to_end_batch_from_the_converted_layout(converted):
    _, output, _ = converted
    module = Head2HeadDataModule(root=str(output), image_size=64, batch_size=2, sequence_length=4, eye_noise=False)
    module.setup()
    # alice's faceless frames 12, 13 split her second part into contiguous runs
    runs = [r.frames for r in module.items["train"] if r.name == "alice_000001"]
    assert runs == [(10, 11), tuple(range(14, 20))]
    batch = next(iter(module.train_dataloader()))
    short = any(s == "alice_000001" and int(f[0]) in (10, 11) for s, f in zip(batch["sequence"], batch["frame_index"]))
    assert batch["nmfc"].shape == (2, 2 if short else 4, 3, 64, 64)  # the shortest run of the batch caps T
    assert batch["image"].shape[:2] == batch["nmfc"].shape[:2] and batch["landmarks"].shape[-2:] == (70, 2)
    assert (torch.diff(batch["frame_index"], dim=1) == 1).all()
    test = next(iter(module.test_dataloader()))
    assert test["sequence"] == ["alice"] and int(test["frame_index"][0, 0]) == FIRST_TEST


def test_rerun_resumes_and_other_settings_are_refused(converted):
    videos, output, _ = converted
    marker = output / "dataset" / "train" / "images" / "alice_000000" / "000000.png"
    before = marker.stat().st_mtime_ns
    report = run_video_conversion(videos, output, _settings(), workers=1, progress=False)
    assert marker.stat().st_mtime_ns == before  # nothing redone
    assert {v.name: v.status for v in report.videos}["alice"] == "ok"
    # an interrupted video (no done marker, a stale file of a part it will not write) is redone from scratch
    (output / ".convert_video" / "done" / "bob.json").unlink()
    stale = output / "dataset" / "train" / "images" / "bob_000009" / "000099.png"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    bob_file = output / "dataset" / "test" / "images" / "bob" / "000030.png"
    bob_before = bob_file.read_bytes()
    run_video_conversion(videos, output, _settings(), workers=1, progress=False)
    assert not stale.parent.exists() and bob_file.read_bytes() == bob_before  # deterministic redo
    assert marker.stat().st_mtime_ns == before  # alice was not redone
    with pytest.raises(UserError, match="other settings \\(box_scale\\)"):
        run_video_conversion(videos, output, _settings(box_scale=2.0), workers=1, progress=False)


def test_bad_inputs_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        find_videos(tmp_path / "nothing")
    with pytest.raises(UserError, match=r"no \.mp4 file"):
        find_videos(tmp_path)
    (tmp_path / "a_2.mp4").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a_1.mp4").write_bytes(b"x")
    (tmp_path / "b.mp4").write_bytes(b"x")
    assert find_videos(tmp_path) == {
        "a": [tmp_path / "a_2.mp4", tmp_path / "sub" / "a_1.mp4"],
        "b": [tmp_path / "b.mp4"],
    }
    assert find_videos(tmp_path / "a_2.mp4") == {"a2": [tmp_path / "a_2.mp4"]}  # a single file: `_` removed
    (tmp_path / "_c.mp4").write_bytes(b"x")
    with pytest.raises(UserError, match="empty identity name"):
        find_videos(tmp_path)
    with pytest.raises(UserError, match="size must be an integer >= 32"):
        VideoSettings(size=8).check()


def test_fixed_box_smooths_interpolates_and_covers_the_union():
    rng = np.random.default_rng(0)
    t = np.arange(60)
    x = 100 + 20 * np.sin(t / 10)
    boxes = np.stack([x, 50 + 0 * t, x + 80, 130 + 0 * t], 1) + rng.normal(0, 3, (60, 4))
    boxes[[5, 6, 40]] = np.nan
    x0, y0, side = fixed_square_box(boxes, window=15, order=2, scale=1.0)
    # naive reference: interpolate, smooth with scipy directly, union
    from scipy.signal import savgol_filter

    ok = ~np.isnan(boxes[:, 0])
    filled = np.stack([np.interp(t, t[ok], boxes[ok, c]) for c in range(4)], 1)
    smooth = savgol_filter(filled, 15, 2, axis=0)
    lo, hi = smooth[:, :2].min(0), smooth[:, 2:].max(0)
    assert side == round(max(hi - lo))
    assert abs(x0 + side / 2 - (lo[0] + hi[0]) / 2) <= 1 and abs(y0 + side / 2 - (lo[1] + hi[1]) / 2) <= 1
    # a smoothed box is tighter than the union of the noisy ones
    raw = fixed_square_box(boxes, window=0, order=2, scale=1.0)[2]
    assert side < raw


def test_crop_maps_points_like_frame_to_crop():
    frame = np.zeros((100, 120, 3), np.uint8)
    frame[40, 70] = 255  # one bright pixel
    box = (50, 20, 50)
    crop = crop_square(frame, box, 100)  # enlarged 2x: the pixel lands where frame_to_crop says
    y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    np.testing.assert_allclose(frame_to_crop([[70, 40]], box, 100)[0], [x, y], atol=1.0)
    outside = crop_square(frame, (-30, -30, 60), 60)
    assert not outside[:29].any() and not outside[:, :29].any()  # black where the box leaves the frame


@pytest.mark.slow
def test_entry_point_converts_with_hydra(converted, tmp_path):
    import subprocess
    import sys

    videos, _, _ = converted
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "src.convert.video", f"input={videos / 'bob_b.mp4'}", f"output={out}", "size=64",
         "part_frames=10", "fitting.identity_frames=4", "workers=1", "progress=false",
         "hydra.run.dir=" + str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 of 1 videos converted" in result.stdout
    assert (out / "dataset" / "test" / "nmfcs" / "bobb").is_dir()  # a single file: `_` removed
    bad = subprocess.run(
        [sys.executable, "-m", "src.convert.video", f"input={tmp_path / 'none'}", f"output={out}",
         "hydra.run.dir=" + str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("error: input:")
