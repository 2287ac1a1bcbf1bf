"""python -m src.faceworld.write: every layout is reachable, bad options end with one line naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.faceworld.write import build_parser, main

LAYOUTS = ("rgbd-processed", "rgbd-unprocessed", "head2head", "dg", "dfdn", "prnet")


def test_every_layout_has_a_subcommand():
    parser = build_parser()
    for layout in LAYOUTS:
        args = parser.parse_args([layout, "--out", "x"])
        assert callable(args.writer) and args.seed == 0 and args.workers == 2


def test_cli_writes_a_small_dataset(tmp_path, capsys):
    out = tmp_path / "h2h"
    argv = [
        "head2head", "--out", str(out), "--num-identities", "1", "--frames-per-video", "3", "--size", "32",
        "--part-frames", "2",
    ]  # fmt: skip
    assert main([*argv, "--workers", "1", "--no-progress"]) == 0
    assert "head2head: wrote" in capsys.readouterr().out
    assert len(list((out / "dataset" / "train" / "images" / "id000_000000").glob("*.png"))) == 2
    assert len(list((out / "dataset" / "test" / "images" / "id000").glob("*.png"))) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dfdn", "--out", "x", "--map-size", "16"], "map_size must be >= 32, got 16"),
        (["dfdn", "--out", "x", "--expressions", "wink"], "unknown expression ['wink']"),
        (["rgbd-unprocessed", "--out", "x", "--size", "big"], "expected HEIGHTxWIDTH"),
        (["prnet", "--out", "x", "--num-identities", "2", "--test-identities", "2"], "test_identities must be in"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, argv, message):
    argv = [argv[0], "--out", str(tmp_path / "x"), *argv[3:]]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--workers", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.png"))


def test_faceforensics_layout_from_the_command_line(tmp_path: Path) -> None:
    """The FF++ raw layout as it ships: one H.264 .mp4 per video per compression, WIDTHxHEIGHT as given."""
    import av

    out = tmp_path / "ff"
    argv = ["faceforensics", "--out", str(out), "--num-videos", "2", "--num-frames", "3", "--size", "96x64"]
    assert main([*argv, "--compressions", "c23,c40", "--workers", "1", "--no-progress"]) == 0
    for compression in ("c23", "c40"):
        videos = sorted((out / "original_sequences" / "youtube" / compression / "videos").glob("*.mp4"))
        assert [v.name for v in videos] == ["000.mp4", "001.mp4"]
        with av.open(str(videos[0])) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 3 and frames[0].shape == (64, 96, 3)


def test_dfdn_presets_from_the_command_line(tmp_path: Path, capsys) -> None:
    """--preset picks the writer's preset; a contradicting explicit size is one error line."""
    with pytest.raises(SystemExit) as exit_info:
        main(["dfdn", "--out", str(tmp_path / "d"), "--preset", "cpu", "--map-size", "512", "--workers", "1"])
    assert exit_info.value.code == 2
    assert "preset cpu sets" in capsys.readouterr().err.strip().splitlines()[-1]
