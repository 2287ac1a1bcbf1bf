"""The generator an inference run uses and what it was trained with: image size, depth encoding, framing.

Two sources, one contract (`TrainedGenerator`):
- a training checkpoint (`ckpt=`): the module is rebuilt from the file alone (src.utils.checkpoint.load_module)
  and its deployable network is used (rgbd_face: EMA G when kept + the depth-as-mask rule, as export does);
  the image size, dataset, depth encoding and intrinsics come from the run config stored in the checkpoint and
  the dataset's config.txt;
- an exported TorchScript file (`exported=`, the export folder or its generator.torchscript.pt): image size,
  depth encoding and intrinsics come from export.json beside it, so a deployed user needs no checkpoint.

The framing facts (`dataset_size`, `face_box_fraction`) let a photo be cropped and drawn like the frames the
model was trained on; they are read from the training dataset when it is on this machine.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from src.io.rgbd_layout import CONFIG_FILE, DepthEncoding, intrinsics_from_config, parse_landmark_file, read_config
from src.utils.errors import CheckpointError, UserError

log = logging.getLogger(__name__)

Intrinsics = tuple[float, float, float, float]
# How many training landmark files are read to measure the typical face size (the median settles long before).
FACE_BOX_SAMPLE = 400


@dataclass(frozen=True)
class TrainedGenerator:
    """A callable (B, 1, H, W) [-1, 1] drawing -> (B, 4, H, W) [-1, 1] R, G, B, depth, and its training facts."""

    network: Callable[[torch.Tensor], torch.Tensor]
    image_size: int  # H = W of the network's input and output
    encoding: DepthEncoding  # turns the depth channel into mm (the training dataset's config.txt)
    dataset_size: int  # side of the processed frames it was trained on (where the drawing is made)
    intrinsics: Intrinsics | None  # pinhole intrinsics of those frames (at dataset_size), when recorded
    face_box_fraction: float | None  # median landmark-box side / dataset_size over training frames
    source: str  # what was loaded, for logs and infer.json
    device: torch.device

    def intrinsics_at_model_size(self) -> Intrinsics | None:
        """The dataset intrinsics scaled to the model's image size (pixel centres at integers)."""
        if self.intrinsics is None:
            return None
        from src.datamodules.rgbd import scale_intrinsics  # the datamodule's rule: its batches carry the same

        return scale_intrinsics(self.intrinsics, self.dataset_size, self.dataset_size, self.image_size)

    @torch.no_grad()
    def __call__(self, feature_unit: np.ndarray) -> np.ndarray:
        """(B, 1, H, W) float32 drawings in [-1, 1] -> (B, 4, H, W) float32 RGBD in [-1, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(feature_unit, dtype=np.float32)).to(self.device)
        out = self.network(x)
        if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[1] != 4:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise UserError(f"{self.source}: the generator must return (B, 4, H, W) R, G, B, depth; got {shape}")
        return out.float().cpu().numpy()


def encoding_from_mapping(entry: Mapping[str, Any], source: str) -> DepthEncoding:
    """A DepthEncoding from {near_mm, far_mm, bits | depth_bits}; one error naming `source` when incomplete."""
    try:
        bits = entry.get("bits", entry.get("depth_bits"))
        return DepthEncoding(float(entry["near_mm"]), float(entry["far_mm"]), int(bits))
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{source}: a depth encoding needs near_mm, far_mm and bits ({err})") from None


# --------------------------------------------------------------------------------------- the training dataset


@dataclass(frozen=True)
class DatasetFacts:
    """What the training dataset's folder tells about framing (all None when it is not on this machine)."""

    encoding: DepthEncoding | None = None
    size: int | None = None
    intrinsics: Intrinsics | None = None
    face_box_fraction: float | None = None


def read_dataset_facts(root: Path | None) -> DatasetFacts:
    """Depth encoding, frame size, intrinsics and median face size of a processed dataset, when it is here."""
    if root is None or not (root / CONFIG_FILE).is_file():
        return DatasetFacts()
    config = read_config(root / CONFIG_FILE)
    encoding = None
    if "near_mm" in config and "far_mm" in config:
        encoding = encoding_from_mapping(config, str(root / CONFIG_FILE))
    landmark_files = sorted((root / "train" / "Landmark").glob("*.txt"))
    size = int(float(config["size"])) if "size" in config else None
    if size is None:
        features = sorted((root / "train" / "Feature").glob("*.png"))[:1]
        image = cv2.imread(str(features[0]), cv2.IMREAD_UNCHANGED) if features else None
        size = int(image.shape[1]) if image is not None else None
    fraction = None
    if size and landmark_files:
        step = max(1, len(landmark_files) // FACE_BOX_SAMPLE)
        sides = []
        for path in landmark_files[::step]:
            try:
                points = parse_landmark_file(path).points
            except ValueError:
                continue  # the datamodule reports broken files; a typical size needs only the good ones
            sides.append(float(np.ptp(points, axis=0).max()))
        fraction = statistics.median(sides) / size if sides else None
    return DatasetFacts(encoding, size, intrinsics_from_config(config), fraction)


def _mapping_get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


# --------------------------------------------------------------------------------------------- checkpoint


def load_from_checkpoint(
    ckpt: str | Path,
    device: torch.device,
    use_ema: bool = True,
    depth_encoding: Mapping[str, Any] | None = None,
    image_size: int | None = None,
) -> TrainedGenerator:
    """Rebuild the checkpoint's module and take its deployable generator plus the run's training facts."""
    from src.export.checkpoint import dataset_root_of_run, deployable_modules, image_size_of_run
    from src.utils.checkpoint import load_module, stored_run_config

    if Path(ckpt).suffix == ".pt" and (Path(ckpt).parent / "export.json").is_file():
        raise CheckpointError(f"{ckpt}: this is an exported generator, not a checkpoint; pass it as exported={ckpt}")
    module, checkpoint = load_module(ckpt, map_location="cpu")
    run_config = stored_run_config(checkpoint)
    root = dataset_root_of_run(run_config)
    facts = read_dataset_facts(root)
    size = image_size or image_size_of_run(run_config, root)
    if size is None:
        raise CheckpointError(f"{ckpt}: the run records no image size and its dataset is not here; pass image_size=")
    # The very network export.py would export (rgbd_face: inference G, EMA when kept, + the depth-as-mask rule).
    spec = deployable_modules(module, ckpt, int(size), use_ema).get("generator")
    if spec is None or [tuple(i.shape)[:1] for i in spec.inputs] != [(1,)]:
        raise CheckpointError(f"{ckpt}: {type(module).__name__} has no generator reading one 1-channel drawing")
    network, what = spec.module.to(device).eval(), spec.source
    encoding = _choose_encoding(facts.encoding, depth_encoding, str(ckpt), root)
    dataset_size = facts.size
    if dataset_size is None and not _mapping_get(run_config, "data.root"):
        faceworld_size = _mapping_get(run_config, "data.faceworld.size")
        dataset_size = int(faceworld_size) if faceworld_size else None
    if dataset_size is None:
        log.warning(f"Training dataset {root} is not on this machine: drawing at the model's size {size}")
        dataset_size = int(size)
    return TrainedGenerator(
        network=network,
        image_size=int(size),
        encoding=encoding,
        dataset_size=int(dataset_size),
        intrinsics=facts.intrinsics,
        face_box_fraction=facts.face_box_fraction,
        source=f"{ckpt} ({what})",
        device=device,
    )


def _choose_encoding(
    found: DepthEncoding | None, given: Mapping[str, Any] | None, source: str, root: Path | None
) -> DepthEncoding:
    """The configured depth_encoding wins; else the dataset's; else one error that says what to pass."""
    if given:
        return encoding_from_mapping(given, "depth_encoding")
    if found is not None:
        return found
    raise UserError(
        f"{source}: the training dataset's depth encoding is unknown ({root or 'no dataset recorded'} is not on "
        "this machine); pass depth_encoding.near_mm=... depth_encoding.far_mm=... depth_encoding.bits=16"
    )


# --------------------------------------------------------------------------------------------- TorchScript


def resolve_exported(path: str | Path) -> tuple[Path, Path]:
    """(generator.torchscript.pt, export.json) from the export folder or the TorchScript file itself."""
    from src.export.generator import MANIFEST_FILE, TORCHSCRIPT_FILE

    p = Path(path)
    model_file = p / TORCHSCRIPT_FILE if p.is_dir() else p
    if not model_file.is_file():
        raise UserError(f"{model_file}: exported generator not found (exported=<export dir>/{TORCHSCRIPT_FILE})")
    manifest = model_file.parent / MANIFEST_FILE
    if not manifest.is_file():
        raise UserError(f"{manifest}: missing; an exported generator needs its {MANIFEST_FILE} (written by export)")
    return model_file, manifest


def load_exported(
    path: str | Path,
    device: torch.device,
    depth_encoding: Mapping[str, Any] | None = None,
) -> TrainedGenerator:
    """A TorchScript generator and the contract its export.json records."""
    model_file, manifest_path = resolve_exported(path)
    try:
        manifest = json.loads(manifest_path.read_text())
        shape = manifest["input"]["shape"]
        channels, height, width = int(shape[1]), int(shape[2]), int(shape[3])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise UserError(f"{manifest_path}: not an export manifest ({type(err).__name__}: {err})") from None
    if channels != 1 or height != width:
        raise UserError(f"{manifest_path}: expected a (batch, 1, H, H) landmark-drawing input, got {shape}")
    try:
        network = torch.jit.load(str(model_file), map_location=device).eval()
    except (RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{model_file}: not a loadable TorchScript file ({first[:200]})") from None
    recorded = manifest.get("depth_encoding") or None
    dataset = manifest.get("dataset")
    facts = read_dataset_facts(Path(dataset)) if dataset else DatasetFacts()
    encoding = _choose_encoding(
        encoding_from_mapping(recorded, str(manifest_path)) if recorded else facts.encoding,
        depth_encoding,
        str(manifest_path),
        Path(dataset) if dataset else None,
    )
    intrinsics = facts.intrinsics
    if intrinsics is None and recorded and all(k in recorded for k in ("fx", "fy", "cx", "cy")):
        intrinsics = tuple(float(recorded[k]) for k in ("fx", "fy", "cx", "cy"))  # type: ignore[assignment]
    dataset_size = facts.size
    if dataset_size is None and intrinsics is not None:
        # Processed datasets (convert, FaceWorld) put the principal point at the crop centre: size = 2 cx + 1.
        dataset_size = round(2 * intrinsics[2] + 1)
    return TrainedGenerator(
        network=network,
        image_size=height,
        encoding=encoding,
        dataset_size=int(dataset_size or height),
        intrinsics=intrinsics,
        face_box_fraction=facts.face_box_fraction,
        source=str(model_file),
        device=device,
    )


def load_generator(
    ckpt: str | None,
    exported: str | None,
    device: str = "cpu",
    use_ema: bool = True,
    depth_encoding: Mapping[str, Any] | None = None,
    image_size: int | None = None,
) -> TrainedGenerator:
    """Exactly one of ckpt / exported; see the module docstring."""
    if bool(ckpt) == bool(exported):
        raise UserError("give exactly one model: ckpt=<run>/checkpoints/last.ckpt or exported=<run>/export")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device} requested but CUDA is not available on this machine")
    torch_device = torch.device(device)
    if ckpt:
        return load_from_checkpoint(ckpt, torch_device, use_ema, depth_encoding, image_size)
    if image_size is not None:
        raise UserError("image_size applies to checkpoints only: an exported generator has its size in export.json")
    return load_exported(str(exported), torch_device, depth_encoding)
