"""head2head inference entries: a trained checkpoint -> an .mp4 with a progress bar.

Modes (`mode=`):
- self: self-reenactment of `target` on its held-out test frames (dataset/test/<target>), where the truth is known:
  each output frame is [NMFC | generated | truth].
- head: full head reenactment (pose, expression, gaze of `source`) from the reenactment inputs
  dataset/test/source_{nmfcs,landmarks70,images}/<target>_<source> (the target's identity moved by the source,
  as the original's preprocessing/reenact.py writes them), after the original's source-to-target camera
  adaptation: the source's mean scale and translation (its test misc files) are replaced by the target's (its
  train misc files), an exact image-space similarity per frame for an orthographic camera. Each output frame is
  [driving NMFC | generated | source frame].
- face: expression only: the target's own held-out pose and gaze with the source's expression coefficients,
  NMFC re-rendered with the FaceWorld model (id_coeffs / exp_coeffs / misc of a FaceWorld dataset; a real dataset
  needs its fitting 3DMM, which the project does not ship). Each output frame is [NMFC | generated | target frame].

Frames run through the model's own chunk loop (`generate_whole`), so a sequence streamed in windows is generated
as one video with the previous-frame feedback carried across windows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
import torch
from tqdm import tqdm

from src.utils.checkpoint import load_module, stored_run_config
from src.utils.errors import UserError
from src.utils.visualize import unit_to_uint8

log = logging.getLogger(__name__)

MODES = ("self", "head", "face")
HEAD2HEAD_CLASS = "src.models.head2head.Head2HeadModule"


@dataclass(frozen=True)
class AppSettings:
    ckpt: str
    mode: str = "self"
    target: str | None = None
    source: str | None = None
    data_root: str | None = None
    output: str | None = None
    fps: float = 25.0
    device: str = "cpu"
    window: int = 50
    camera_adaptation: bool = True
    side_by_side: bool = True
    max_frames: int | None = None
    progress: bool = True

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class AppSummary:
    output: Path
    frames: int
    mode: str
    target: str
    source: str | None

    def describe(self) -> str:
        driver = f" driven by {self.source}" if self.source else ""
        return f"head2head {self.mode}-reenactment of {self.target}{driver}: {self.frames} frames -> {self.output}"


# ---------------------------------------------------------------------------------------------------- misc files
def read_misc(path: Path) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, rotation 3x3, translation 3) from a Head2Head misc file (7 lines: S; R as 3 lines; tx; ty; tz)."""
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable camera (misc) file ({err})") from None
    if values.size != 13:
        raise UserError(f"{path}: a misc file holds 13 values (scale, 3x3 rotation, translation), got {values.size}")
    return float(values[0]), values[1:10].reshape(3, 3), values[10:13]


def mean_camera(folders: list[Path]) -> tuple[float, np.ndarray]:
    """Mean scale and mean (tx, ty) over every misc file of the folders."""
    files = sorted(p for folder in folders for p in folder.glob("*.txt"))
    if not files:
        raise UserError(f"no camera (misc) files in {', '.join(str(f) for f in folders) or 'no folder'}")
    cameras = [read_misc(p) for p in files]
    return float(np.mean([c[0] for c in cameras])), np.mean([c[2][:2] for c in cameras], axis=0)


def adaptation_matrix(
    scale: float, translation: np.ndarray, source_mean: tuple[float, np.ndarray], target_mean: tuple[float, np.ndarray]
) -> np.ndarray:
    """2x3 pixel map of one frame: scale * a about the frame's translation t, then t -> t - t_src + t_tgt.

    For an orthographic camera p = S (R X)[:2] + t, replacing S by S * a (a = S_tgt / S_src, the mean scales) and t
    by t - t_src + t_tgt (mean translations) moves every pixel as p' = a (p - t) + t - t_src + t_tgt.
    """
    ratio = target_mean[0] / source_mean[0]
    shift = (1.0 - ratio) * translation[:2] - source_mean[1] + target_mean[1]
    return np.array([[ratio, 0.0, shift[0]], [0.0, ratio, shift[1]]], np.float64)


def warp_frames(images: torch.Tensor, matrices: list[np.ndarray], nearest: bool) -> torch.Tensor:
    """(T, 3, H, W) in [-1, 1] warped by one 2x3 pixel map per frame (black outside)."""
    out = []
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    for image, matrix in zip(images, matrices):
        array = image.permute(1, 2, 0).cpu().numpy()
        size = (array.shape[1], array.shape[0])
        warped = cv2.warpAffine(array, matrix, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
        out.append(torch.from_numpy(warped).permute(2, 0, 1))
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------------- the app
class Head2HeadApp:
    """Loads the checkpoint and its data settings once; `run()` writes the video."""

    def __init__(self, settings: AppSettings) -> None:
        if settings.mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {settings.mode!r}")
        if settings.mode in ("head", "face") and not settings.source:
            raise UserError(f"mode={settings.mode} needs source=<identity name> (the driving video)")
        self.settings = settings
        self.model, checkpoint = load_module(settings.ckpt, expected_class=HEAD2HEAD_CLASS)
        self.model.eval().to(settings.device)
        self.run_config = stored_run_config(checkpoint)
        data = dict(self.run_config.get("data") or {})
        if not data:
            raise UserError(f"{settings.ckpt}: the checkpoint records no data settings (written outside train.py)")
        self.target = settings.target or data.get("target_name")
        if not self.target:
            raise UserError("target=<identity name> is required (the checkpoint was trained on several identities)")
        self.data_config = data

    def datamodule(self, reenact_source: str | None) -> Any:
        overrides: dict[str, Any] = {
            "target_name": self.target,
            "reenact_source": reenact_source,
            "eval_batch_size": 1,
            "eval_sequence_length": int(self.settings.window),
            "num_workers": 0,
            "val_fraction": 0.0,
        }
        if self.settings.data_root:
            overrides["root"] = self.settings.data_root
        config = {k: v for k, v in self.data_config.items()}
        config.update(overrides)
        datamodule = hydra.utils.instantiate(config, _convert_="all")
        datamodule.setup("test")
        return datamodule

    def windows(self, datamodule: Any) -> Iterator[dict[str, Any]]:
        loader = datamodule.test_dataloader()
        if not loader:
            raise UserError(f"no test sequence for target {self.target!r} in {datamodule.root}")
        yield from loader

    def generate(self, batch: dict[str, Any]) -> torch.Tensor:
        device = self.settings.device
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with torch.no_grad():
            return self.model.generate_whole(moved, self.model.inference_generator)["frames"].cpu()

    def output_path(self) -> Path:
        if self.settings.output:
            return Path(self.settings.output)
        suffix = f"_{self.settings.source}" if self.settings.source else ""
        return Path("results") / f"head2head_{self.settings.mode}_{self.target}{suffix}.mp4"

    # ------------------------------------------------------------------ modes
    def _head_adaptation(self, root: Path) -> tuple[tuple[float, np.ndarray], tuple[float, np.ndarray], Path]:
        dataset = root / "dataset" if (root / "dataset").is_dir() else root
        target_folders = sorted(p for p in (dataset / "train" / "misc").glob(f"{self.target}_*") if p.is_dir())
        source_folder = dataset / "test" / "misc" / str(self.settings.source)
        return mean_camera([source_folder]), mean_camera(target_folders), source_folder

    def _adapt(self, batch: dict[str, Any], source_misc: Path, means: tuple, size_on_disk: int) -> dict[str, Any]:
        side = batch["nmfc"].shape[-1]
        to_pixels = side / size_on_disk
        matrices = []
        for frame in batch["frame_index"][0].tolist():
            scale, _, translation = read_misc(source_misc / f"{frame:06d}.txt")
            source_mean = (means[0][0], means[0][1] * to_pixels)
            target_mean = (means[1][0], means[1][1] * to_pixels)
            matrices.append(adaptation_matrix(scale, translation * to_pixels, source_mean, target_mean))
        adapted = dict(batch)
        adapted["nmfc"] = warp_frames(batch["nmfc"][0], matrices, nearest=True)[None]
        adapted["eyes"] = warp_frames(batch["eyes"][0], matrices, nearest=True)[None]
        points = batch["landmarks"][0].numpy()
        moved = [p @ m[:, :2].T + m[:, 2] for p, m in zip(points, matrices)]
        adapted["landmarks"] = torch.from_numpy(np.stack(moved).astype(np.float32))[None]
        return adapted

    def run(self) -> AppSummary:
        settings = self.settings
        source = settings.source if settings.mode == "head" else None
        datamodule = self.datamodule(source)
        root = Path(datamodule.root)
        adaptation = None
        if settings.mode == "head" and settings.camera_adaptation:
            source_mean, target_mean, source_misc = self._head_adaptation(root)
            size_on_disk = _image_side(root, self.target, settings.source)
            adaptation = (source_misc, (source_mean, target_mean), size_on_disk)
        face_driver = FaceDriver(root, self.target, str(settings.source)) if settings.mode == "face" else None
        total = sum(len(r) for r in datamodule.datasets["test"].records)
        if settings.max_frames:
            total = min(total, int(settings.max_frames))
        output = self.output_path()
        output.parent.mkdir(parents=True, exist_ok=True)
        from src.apps.faces2one.video import VideoWriter

        writer = None
        written = 0
        with tqdm(total=total, desc=f"head2head {settings.mode}", unit="frame", disable=not settings.progress) as bar:
            for batch in self.windows(datamodule):
                if written >= total:
                    break
                if adaptation is not None:
                    batch = self._adapt(batch, adaptation[0], adaptation[1], adaptation[2])
                if face_driver is not None:
                    batch = face_driver.drive(batch)
                frames = self.generate(batch)
                for t in range(frames.shape[1]):
                    if written >= total:
                        break
                    row = [unit_to_uint8(frames[0, t])]
                    if settings.side_by_side:
                        row = [unit_to_uint8(batch["nmfc"][0, t]), row[0], unit_to_uint8(batch["image"][0, t])]
                    image = np.concatenate(row, axis=1)
                    if writer is None:
                        writer = VideoWriter(output, image.shape[1], image.shape[0], settings.fps)
                    writer.write(image)
                    written += 1
                    bar.update(1)
        if writer is None:
            raise UserError(f"no frames to write for target {self.target!r}")
        writer.close()
        return AppSummary(output, written, settings.mode, self.target, settings.source)


def _image_side(root: Path, target: str, source: str | None) -> int:
    dataset = root / "dataset" if (root / "dataset").is_dir() else root
    folder = dataset / "test" / "source_images" / f"{target}_{source}"
    first = next(iter(sorted(folder.glob("*.png"))), None) or next(iter(sorted(folder.glob("*.jpg"))), None)
    if first is None:
        raise UserError(f"no reenactment inputs in {folder} (write them with the FaceWorld writer's reenactments=)")
    return int(cv2.imread(str(first)).shape[0])


class FaceDriver:
    """Expression-only reenactment on a FaceWorld dataset: the target's pose (misc) and identity (id_coeffs) with the
    source's expression (exp_coeffs, frame k of the source's test frames for frame k of the target's), re-rendered."""

    def __init__(self, root: Path, target: str, source: str) -> None:
        from src.faceworld.writers.common import world_for

        dataset = root / "dataset" if (root / "dataset").is_dir() else root
        self.dataset = dataset
        self.world = world_for()
        id_file = dataset / "test" / "id_coeffs" / f"{target}.txt"
        source_folder = dataset / "test" / "exp_coeffs" / source
        if not id_file.is_file() or not source_folder.is_dir():
            raise UserError(f"face mode needs {id_file} and {source_folder} (a FaceWorld Head2Head dataset)")
        self.identity = np.loadtxt(id_file, ndmin=1)
        self.expressions = [np.loadtxt(p, ndmin=1) for p in sorted(source_folder.glob("*.txt"))]
        if not self.expressions:
            raise UserError(f"{source_folder}: no expression files")
        self.target = target
        self.count = 0
        first = next(iter(sorted((dataset / "test" / "images" / target).glob("*.png"))), None)
        if first is None:
            raise UserError(f"{dataset / 'test' / 'images' / target}: no frames")
        self.side = int(cv2.imread(str(first)).shape[0])

    def render(self, frame: int, side: int) -> np.ndarray:
        from src.geometry.nmfc import orthographic_camera_from_misc, render_nmfc

        misc = self.dataset / "test" / "misc" / self.target / f"{frame:06d}.txt"
        scale, rotation, translation = read_misc(misc)
        expression = self.expressions[min(self.count, len(self.expressions) - 1)]
        self.count += 1
        model = self.world.model
        vertices = model.identity_shape(self.identity) + model.expression_offsets(expression)
        camera = orthographic_camera_from_misc(scale, rotation, translation, self.side, self.side)
        nmfc = render_nmfc(vertices, model.triangles, self.world.nmfc_colors, camera)
        return cv2.resize(nmfc, (side, side), interpolation=cv2.INTER_NEAREST)

    def drive(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        side = batch["nmfc"].shape[-1]
        frames = [self.render(int(f), side) for f in batch["frame_index"][0].tolist()]
        nmfc = torch.from_numpy(np.stack(frames).astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
        return {**batch, "nmfc": nmfc[None]}


def run_app(settings: AppSettings) -> AppSummary:
    return Head2HeadApp(settings).run()
