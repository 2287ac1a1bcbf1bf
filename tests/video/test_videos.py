"""FaceWorld talking-head .mp4 files and their truth; the FaceForensics++ raw layout."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import identity_seed, world_for
from src.faceworld.writers.videos import (
    COMPRESSIONS,
    faceforensics_video_path,
    read_video_truth,
    truth_dir_for,
    video_camera_for,
    write_faceforensics_raw,
    write_talking_head_video,
)
from src.geometry.nmfc import orthographic_camera_from_misc
from src.utils.errors import DatasetError

SIZE, FRAMES = (160, 120), 12


def _decode(path: Path) -> tuple[list[np.ndarray], list[int], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, pts = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
        return frames, pts, float(stream.average_rate)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("videos") / "person.mp4"
    truth = write_talking_head_video(path, 7, FRAMES, size=SIZE, fps=25, seed=3, crf=10, absent_frames=[4])
    return path, truth


def test_video_is_h264_at_25_fps_and_shows_the_rendered_frames(video):
    path, _ = video
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    frames, pts, rate = _decode(path)
    assert rate == 25.0 and len(frames) == FRAMES and pts == sorted(pts) and len(set(pts)) == FRAMES
    assert frames[0].shape == (SIZE[1], SIZE[0], 3)
    # Re-render frame 7 independently: the decoded frame is that image up to the codec's loss.
    world = world_for()
    params = talking_head(world, 7, FRAMES, fps=25.0, seed=3)[7]
    rendered = world.render(params, video_camera_for(*SIZE), ("rgb",))["rgb"].astype(float)
    psnr = 10 * np.log10(255.0**2 / np.mean((frames[7].astype(float) - rendered) ** 2))
    assert psnr > 30.0
    other = world.render(talking_head(world, 7, FRAMES, fps=25.0, seed=3)[0], video_camera_for(*SIZE), ("rgb",))
    assert 10 * np.log10(255.0**2 / np.mean((frames[7].astype(float) - other["rgb"]) ** 2)) < psnr - 3


def test_truth_matches_the_motion_and_its_own_cameras(video):
    path, truth = video
    again = read_video_truth(path)  # found beside the video
    assert again.folder == truth_dir_for(path) and again.num_frames == FRAMES
    params = talking_head(world_for(), 7, FRAMES, fps=25.0, seed=3)
    np.testing.assert_allclose(truth.expression, np.stack([p.expression for p in params]))
    np.testing.assert_allclose(truth.identity, params[0].identity)
    np.testing.assert_allclose(truth.rotation_deg[:, 0], [p.yaw for p in params])
    assert truth.face_present.tolist() == [k != 4 for k in range(FRAMES)]
    assert np.isnan(truth.landmarks[4]).all() and not truth.nmfc(4).any()
    # misc-form orthographic camera: the model's landmarks land on the (perspective) image ones within ~4 %.
    world = world_for()
    k = 6
    model_lm = world.model.landmarks(world.face_vertices(params[k]))
    camera = orthographic_camera_from_misc(truth.ortho_scale[k], truth.rotation[k], truth.ortho_translation[k], *SIZE)
    projected = camera.project(model_lm)[:, :2]
    face_width = np.ptp(truth.landmarks[k, :68, 0])
    assert np.abs(projected - truth.landmarks[k, :68]).mean() < 0.04 * face_width
    # The NMFC is drawn where the face is: the nose tip's pixel is coloured, the image corner is not.
    nmfc = truth.nmfc(k)
    x, y = np.round(truth.landmarks[k, 30]).astype(int)
    assert nmfc[y, x].sum() > 0 and not nmfc[0, 0].any()


def test_absent_face_frame_shows_only_the_backdrop(video):
    path, _ = video
    frames, _, _ = _decode(path)
    world = world_for()
    params = talking_head(world, 7, FRAMES, fps=25.0, seed=3)[4]
    backdrop = world.background(params.background, *SIZE).astype(float)
    assert np.abs(frames[4].astype(float) - backdrop).mean() < 3.0
    assert np.abs(frames[5].astype(float) - backdrop).mean() > 6.0


def test_video_arguments_are_checked_up_front(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_talking_head_video(tmp_path / "a.mp4", 0, 3, size=(161, 120))
    with pytest.raises(ValueError, match="absent_frames"):
        write_talking_head_video(tmp_path / "a.mp4", 0, 3, size=(64, 64), absent_frames=[3])
    with pytest.raises(ValueError, match=r"\.mp4"):
        write_talking_head_video(tmp_path / "a.avi", 0, 3, size=(64, 64))
    assert not any(tmp_path.iterdir())
    with pytest.raises(DatasetError, match="no FaceWorld video truth"):
        read_video_truth(tmp_path / "missing.mp4")


def test_faceforensics_raw_layout_and_compressions(tmp_path):
    root = write_faceforensics_raw(
        tmp_path / "ffpp", 2, num_frames=(4, 6), size=(64, 48), compressions=("c0", "c40"), seed=1, progress=False
    )
    for compression in ("c0", "c40"):
        videos = sorted(p.name for p in (root / "original_sequences/youtube" / compression / "videos").iterdir())
        assert videos == ["000.mp4", "001.mp4"]
    c0 = faceforensics_video_path(root, "c0", "001")
    c40 = faceforensics_video_path(root, "c40", "001")
    assert c0.stat().st_size > c40.stat().st_size  # crf 0 vs crf 40
    truth = read_video_truth(c40)  # found in the FaceForensics++ truth folder
    frames, _, _ = _decode(c40)
    assert 4 <= truth.num_frames <= 6 and len(frames) == truth.num_frames
    assert truth.identity_seed == identity_seed(1, 1)  # video k is FaceWorld identity k
    assert COMPRESSIONS == {"c0": 0, "c23": 23, "c40": 40}
    # A rerun with the same settings resumes (nothing to do); other settings are refused.
    write_faceforensics_raw(
        root, 2, num_frames=(4, 6), size=(64, 48), compressions=("c0", "c40"), seed=1, progress=False
    )
    with pytest.raises(DatasetError, match="other settings"):
        write_faceforensics_raw(root, 3, num_frames=(4, 6), size=(64, 48), compressions=("c0",), progress=False)
