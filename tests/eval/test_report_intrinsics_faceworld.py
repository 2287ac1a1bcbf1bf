"""PLY point clouds use the dataset's intrinsics, scaled to the size the model ran at: checked on FaceWorld truth.

Identity 0, frame 0 of a FaceWorld processed dataset is rendered with exactly the config.txt focal length and its
nose already at the desired depth (the writer normalises every frame to that first frame), so back-projecting its
depth map with config.txt's fx, fy, cx, cy gives the true camera-space face: the distance between the outer eye
corners in the PLY must equal FaceWorld's own 3D landmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.datamodules.faceworld import SETTINGS_FILE, ensure_faceworld_dataset
from src.datamodules.rgbd import RGBDDataModule
from src.eval.report import ReportSample, write_report
from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import identity_seed, world_for
from src.io.ply import backproject, default_intrinsics, read_ply
from src.io.rgbd_layout import read_config
from src.landmarks.scheme import OUTER_EYE_CORNERS
from src.utils.visualize import rgbd_to_numpy

SETTINGS = {"num_identities": 2, "frames_per_identity": 1, "eval_identities": 1, "size": 128, "seed": 0}


@pytest.fixture(scope="module")
def faceworld_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_faceworld_dataset(tmp_path_factory.mktemp("cache"), "rgbd-processed", SETTINGS)


def _true_eye_distance_mm() -> float:
    world = world_for()
    params = talking_head(world, identity_seed(SETTINGS["seed"], 0), 1, fps=15.0, seed=SETTINGS["seed"])[0]
    a, b = world.landmarks3d(params)[list(OUTER_EYE_CORNERS)]
    return float(np.linalg.norm(a - b))


def _ply_point_at(points: np.ndarray, depth_mm: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The PLY point of the foreground pixel nearest to image position xy (PLY order = row-major foreground pixels;
    FaceWorld leaves the eye openings without depth, so the corner pixel itself may be background)."""
    height, width = depth_mm.shape
    rows, cols = np.mgrid[0:height, 0:width]
    distance = np.hypot(cols - float(xy[0]), rows - float(xy[1]))
    distance[depth_mm <= 0] = np.inf
    nearest = int(np.argmin(distance))
    assert distance.reshape(-1)[nearest] < 1.5, "no face pixel next to the landmark"
    foreground = np.flatnonzero(depth_mm.reshape(-1) > 0)
    return points[int(np.searchsorted(foreground, nearest))]


@pytest.mark.parametrize("image_size", [128, 64])
def test_point_cloud_uses_the_dataset_intrinsics(faceworld_root: Path, tmp_path: Path, image_size: int) -> None:
    config = read_config(faceworld_root / "config.txt")
    fx, fy, cx, cy = (float(config[k]) for k in ("fx", "fy", "cx", "cy"))
    dm = RGBDDataModule(root=str(faceworld_root), image_size=image_size, val_fraction=0.0)
    dm.setup()
    sample = dm.datasets["train"][0]
    assert sample["frame_id"] == "id000_000000"
    scale = image_size / 128
    expected = (fx * scale, fy * scale, (cx + 0.5) * scale - 0.5, (cy + 0.5) * scale - 0.5)
    np.testing.assert_allclose(sample["intrinsics"].numpy(), expected, rtol=1e-6)

    rgb, depth_mm = rgbd_to_numpy(sample["rgbd"], dm.encoding)
    feature = np.zeros(depth_mm.shape, np.uint8)
    intrinsics = tuple(sample["intrinsics"].tolist())
    report = ReportSample("id000_000000", feature, rgb, rgb, depth_mm, depth_mm, intrinsics=intrinsics)
    write_report(tmp_path, {}, [report], "t", {}, num_point_clouds=1)
    cloud = read_ply(tmp_path / "pointclouds" / "id000_000000_true.ply")
    assert b"intrinsics (dataset)" in (tmp_path / "pointclouds" / "id000_000000_true.ply").read_bytes()[:300]

    landmarks = sample["landmarks"].numpy()
    a, b = (_ply_point_at(cloud.points, depth_mm, landmarks[i]) for i in OUTER_EYE_CORNERS)
    measured, truth = float(np.linalg.norm(a - b)), _true_eye_distance_mm()
    print(f"{image_size} px: eye corners {measured:.2f} mm apart in the PLY, {truth:.2f} mm in FaceWorld")
    # pixel rounding of the two corners (~66 px apart at 128 px, ~33 at 64) is the only error left
    assert measured == pytest.approx(truth, rel=0.04 if image_size == 128 else 0.08)
    # the made-up field of view (src.io.ply.default_intrinsics) is far off: the check can tell them apart
    made_up, _ = backproject(depth_mm, default_intrinsics(image_size, image_size))
    a, b = (_ply_point_at(made_up, depth_mm, landmarks[i]) for i in OUTER_EYE_CORNERS)
    assert abs(float(np.linalg.norm(a - b)) / truth - 1) > 0.3


def test_faceworld_cache_is_keyed_by_writer_and_resolved_settings(faceworld_root: Path) -> None:
    cache = faceworld_root.parent
    spelled_out = {**SETTINGS, "depth_bits": 16, "workers": 2}  # 16 is the writer's default; workers is runtime
    assert ensure_faceworld_dataset(cache, "rgbd-processed", spelled_out) == faceworld_root
    assert (faceworld_root / SETTINGS_FILE).is_file()
    assert faceworld_root.name.startswith("rgbd-processed-")
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1  # nothing generated twice


def test_rgbd_face_report_samples_carry_the_batch_intrinsics(faceworld_root: Path) -> None:
    from torch.utils.data import DataLoader

    from src.models.rgbd_face import RGBDFaceModule

    adam = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-4}
    generator = {
        "_target_": "src.models.components.generators.build_generator",
        "name": "resnet_6blocks", "input_nc": 1, "output_nc": 4, "ngf": 4, "norm": "batch", "dropout": False,
    }  # fmt: skip
    module = RGBDFaceModule(
        generator=generator,
        discriminator=None,
        criteria={"l1": {"_target_": "src.losses.reconstruction.L1ReconstructionLoss"}},
        loss_weights={"l1": 1.0},
        optimizer_g=adam,
        lpips_metric=None,
    ).eval()
    dm = RGBDDataModule(root=str(faceworld_root), image_size=64, batch_size=2, val_fraction=0.0)
    dm.setup()
    batch = next(iter(DataLoader(dm.datasets["test"], batch_size=2)))
    with torch.no_grad():
        outputs = module.generate(batch, module.inference_generator)
    module.eval_results = {"test": {"samples": [(batch, outputs)]}}
    samples = module.report_samples("test")
    assert [s.name for s in samples] == list(batch["frame_id"])
    for index, sample in enumerate(samples):
        np.testing.assert_allclose(sample.intrinsics, batch["intrinsics"][index].numpy(), rtol=1e-6)
