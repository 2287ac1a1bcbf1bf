"""Helpers of the framework tests: a tiny processed RGBD dataset written by the test, tiny configs, compose."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.io.atomic import write_image_atomic, write_text_atomic
from src.io.rgbd_layout import DepthEncoding, format_landmark_file, processed_paths, write_config
from src.landmarks.drawing import draw_feature_image
from src.landmarks.scheme import NUM_LANDMARKS

NEAR_MM, FAR_MM = 480.0, 700.0


def _face(rng: np.random.Generator, size: int, template: np.ndarray, encoding: DepthEncoding):
    """An ellipsoid 'face' whose position and size follow the landmarks, so input and output are related."""
    shift = rng.uniform(-0.08, 0.08, size=2) * size
    scale = rng.uniform(0.9, 1.1)
    centre = np.array([size / 2, size / 2])
    points = (template - centre) * scale + centre + shift
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy = centre + shift
    rx, ry = 0.3 * size * scale, 0.38 * size * scale
    r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    inside = r2 < 1.0
    depth_mm = np.where(inside, 560.0 + 60.0 * r2, 0.0)
    shade = np.clip(1.0 - 0.5 * r2, 0, 1)
    tone = rng.uniform(0.7, 1.0)
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[inside] = (np.stack([230 * shade, 180 * shade, 150 * shade], -1)[inside] * tone).astype(np.uint8)
    return rgb, encoding.encode(depth_mm), points


def write_synthetic_rgbd(
    root: Path,
    train_groups: tuple[str, ...] = ("s1", "s2", "s3", "s4"),
    eval_groups: tuple[str, ...] = ("s9",),
    frames: int = 3,
    size: int = 32,
    depth_bits: int = 16,
    seed: int = 0,
) -> Path:
    """A processed-layout dataset (src/io/rgbd_layout.py) with frame ids <group>_<index:06d>."""
    rng = np.random.default_rng(seed)
    encoding = DepthEncoding(NEAR_MM, FAR_MM, depth_bits)
    angles = np.linspace(0, 2 * np.pi, NUM_LANDMARKS, endpoint=False)
    template = np.stack([size / 2 + 0.25 * size * np.cos(angles), size / 2 + 0.3 * size * np.sin(angles)], 1)
    for split, groups in (("train", train_groups), ("eval", eval_groups)):
        for group in groups:
            for index in range(frames):
                frame_id = f"{group}_{index:06d}"
                rgb, depth, points = _face(rng, size, template, encoding)
                paths = processed_paths(root, split, frame_id)
                write_image_atomic(paths["Color"], rgb[..., ::-1])
                write_image_atomic(paths["Depth"], depth)
                write_image_atomic(paths["Feature"], draw_feature_image(points, size))
                write_text_atomic(paths["Landmark"], format_landmark_file(points))
    write_config(
        root / "config.txt", {"near_mm": NEAR_MM, "far_mm": FAR_MM, "depth_bits": depth_bits, "source": "test"}
    )
    return root


REPO = Path(__file__).resolve().parents[2]
CONF_DIR = str(REPO / "conf")

TINY_MODEL = [
    "model/generator=resnet_6blocks",
    "model.generator.ngf=8",
    "model/discriminator=n_layers",
    "model.discriminator.ndf=8",
    "model.discriminator.n_layers=2",
    "model.lpips_metric=null",
    "model.num_kept_samples=2",
]


# experiment=rgbd_face shrunk to seconds on a CPU (data.root and paths are added by the callers).
TINY_RGBD_RUN = (
    "experiment=rgbd_face",
    *TINY_MODEL,
    "data.image_size=32",
    "data.batch_size=3",
    "model.scheduler.n_epochs=1",
    "model.scheduler.n_epochs_decay=1",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_model_summary=false",
)


def tiny_train_overrides(dataset: Path, out: Path, *extra: str, fixed_output_dir: bool = True) -> list[str]:
    """experiment=rgbd_face shrunk to seconds on a CPU: 32 px, ngf 8, two short epochs, CSV logs.

    fixed_output_dir=False leaves the run folder to Hydra (multirun: one folder per job under out/logs).
    """
    outputs = [f"paths.output_dir={out}"] if fixed_output_dir else []
    return [
        *TINY_RGBD_RUN,
        f"data.root={dataset}",
        "data.val_fraction=0.25",
        "logger=csv",
        "extras.print_config=false",
        *outputs,
        f"paths.log_dir={out}/logs",
        f"paths.data_dir={out}/data",
        *extra,
    ]


def compose_config(config_name: str, overrides: list[str]):
    """Compose like the entry point does (Hydra's compose API; hydra node kept for ${hydra:...})."""
    import os

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    os.environ.setdefault("PROJECT_ROOT", str(REPO))
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    return cfg
