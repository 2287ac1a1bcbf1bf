"""The faces2one app end to end on small FaceWorld videos: outputs, audio, lengths and frame rates, direction switch,
failed frames, bad input, and no partial file under a final name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from src.apps.faces2one.pipeline import TransferSettings, run_transfer
from src.apps.faces2one.video import probe_video
from src.landmarks.detectors.base import build_detector
from src.utils.errors import UserError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def detector():
    with build_detector("mediapipe") as found:
        yield found


def _settings(videos: dict, out: Path, **changes) -> TransferSettings:
    base = {"source": str(videos["source"]), "reference": str(videos["reference"]), "output": str(out), "prnet": "-"}
    return TransferSettings(**{**base, **changes})


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_reference_kept_with_its_audio_and_length(videos, tmp_path, detector, mean_face_network):
    out = tmp_path / "out.mp4"
    stats = run_transfer(_settings(videos, out), detector, mean_face_network)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out_preview.mp4", "out_stats.json"]
    assert json.loads((tmp_path / "out_stats.json").read_text()) == json.loads(json.dumps(stats))
    info = probe_video(out, "output")
    assert (info.num_frames, info.fps, info.width, info.height, info.has_audio) == (8, 25.0, 256, 192, True)
    assert stats["frames"] == 8 and stats["transferred"] + stats["passed_through"] == 8
    assert stats["transferred"] >= 6 and stats["audio"] is True
    # Tracking, not detection on every frame: redetect_every 10 -> one detection per video (plus the probes).
    assert stats["detections"] == {"reference": 1, "source": 1}
    assert set(stats["cpu_ms_per_frame"]) >= {"decode", "detect_track", "prnet", "texture", "render", "blend", "encode"}
    kept = _frames(videos["reference"])
    written = _frames(out)
    changed = [np.abs(a.astype(int) - b).mean() for a, b in zip(kept, written)]
    assert min(changed) > 0.5  # the face region was replaced
    corner = [np.abs(a[:20, :20].astype(int) - b[:20, :20]).mean() for a, b in zip(kept, written)]
    assert max(corner) < 3.0  # the background is the kept video's (up to H.264 re-encoding)
    preview = probe_video(tmp_path / "out_preview.mp4", "preview")
    assert (preview.num_frames, preview.width) == (8, 3 * 128)


def test_direction_switch_and_a_slower_shorter_texture_video(videos, tmp_path, detector, mean_face_network):
    out = tmp_path / "swap.mp4"
    settings = _settings(videos, out, source=str(videos["slow"]), keep="source", preview=False)
    stats = run_transfer(settings, detector, mean_face_network)
    # keep=source: the 3-frame 12 fps video is kept (its length and rate), the 8-frame one gives the texture.
    info = probe_video(out, "output")
    assert (info.num_frames, info.fps, info.has_audio) == (3, 12.0, False)
    assert stats["kept"] == "source" and stats["fps_texture"] == 25.0 and stats["audio"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swap.mp4", "swap_stats.json"]


def test_frames_without_a_face_pass_through_and_are_counted(videos, tmp_path, detector, mean_face_network):
    """A video whose face leaves after a few frames: with redetect_every 1 every frame asks the detector."""
    from src.faceworld.writers.videos import write_talking_head_video

    leaving = tmp_path / "leaving.mp4"
    write_talking_head_video(leaving, 12, 6, size=(256, 192), fps=25, seed=1, absent_frames=(3, 4, 5))
    settings = _settings(videos, tmp_path / "o.mp4", reference=str(leaving), redetect_every=1, preview=False)
    stats = run_transfer(settings, detector, mean_face_network)
    # the original's rule: no detection -> the previous valid crop is tried again; the mean-face stand-in network
    # keeps "seeing" a face there, so the frames are transferred; the count of detector runs shows each was asked
    assert stats["detections"]["reference"] == 6
    settings = _settings(videos, tmp_path / "p.mp4", reference=str(videos["no_face"]), preview=False, probe_frames=3)
    with pytest.raises(UserError, match=r"reference=.*empty_room\.mp4: no face found on 3 evenly spread frames"):
        run_transfer(settings, detector, mean_face_network)
    assert not (tmp_path / "p.mp4").exists() and not list(tmp_path.glob(".p.mp4*"))


def test_bad_inputs_are_one_error_before_any_output(videos, tmp_path, detector, mean_face_network):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()  # a valid container without a single frame
    cases = {
        str(tmp_path / "missing.mp4"): "file not found",
        str(text): "not a readable video",
        str(empty): "has no video frames",
    }
    for path, message in cases.items():
        with pytest.raises(UserError, match=f"source={path}: {message}"):
            run_transfer(_settings(videos, tmp_path / "x.mp4", source=path), detector, mean_face_network)
    with pytest.raises(UserError, match="keep must be one of"):
        run_transfer(_settings(videos, tmp_path / "x.mp4", keep="both"), detector, mean_face_network)
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".x*"))


def test_an_existing_output_survives_a_failed_run(videos, tmp_path, detector, mean_face_network):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"previous result")

    class Broken:
        size, uv = mean_face_network.size, mean_face_network.uv

        def __call__(self, crops):
            raise RuntimeError("network failed mid-run")

    with pytest.raises(RuntimeError, match="mid-run"):
        run_transfer(_settings(videos, out), detector, Broken())
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]


@pytest.mark.slow  # a fresh interpreter imports torch, Hydra and PyAV: ~25 s on a busy machine
def test_command_line_error_is_one_line(videos, tmp_path):
    command = [sys.executable, "-m", "src.apps.faces2one", f"source={tmp_path}/nope.mp4"]
    command += [f"reference={videos['reference']}", f"output={tmp_path}/o.mp4", f"prnet={tmp_path}/none.ckpt"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-1500:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope.mp4: file not found" in errors[0], result.stderr[-1500:]
