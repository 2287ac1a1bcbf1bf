"""PRNet as a system: face crop -> UV position map (resfcn256), trained with the original's weighted loss, no D.

PRNet released no training code; this trains it in the framework: one update (G) on the term `posmap`, the
squared position-map error weighted by PRNet's UV weight mask (src.models.components.prnet_resfcn). The network
ends in a sigmoid; times 1.1 x map size it is the position map in crop pixels (the original's MaxPos).

Fitted statistics (from the training split once, kept in the checkpoint): the UV weights, face mask and keypoint
texels of the dataset's uv-data, and the mean training position map, which is the input-independent baseline
(`mean_position_map`) a trained network must beat.

Metrics per sample (held-out identities), all normalised by the face size sqrt(w h) of the true 68-keypoint box
(as 3DDFA / PRNet on AFLW2000): `nme_kpt68` (2D keypoints), `nme_dense_2d` and `nme_dense_3d` (every face-mask
vertex, x y and x y z). `bench/prnet_eval.py` splits them by yaw bucket.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from src.export.spec import ExportInput, ExportSpec
from src.models.components.prnet_resfcn import MAX_POS_FACTOR
from src.models.gan import Batch, GANModule
from src.models.system import LOWER
from src.utils.errors import UserError
from src.utils.visualize import make_grid

NUM_KEYPOINTS = 68


def add_prior(normalised: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """prior + (network's sigmoid output - 0.5): the mean map moved by an offset in (-0.5, 0.5) x 1.1 size.

    Additive, not in logit space: a face shifted in the crop is the SAME offset at every texel, which a network
    without biases makes easily from a spatially uniform feature; in logit space that offset would have to vary
    with the mean map's value at each texel (measured: logit-space training stayed at the mean map for 200 steps,
    the additive form fell from 0.206 to 0.152 NME in 300; docs/faces2one/comparison.md)."""
    return prior + (normalised - 0.5)


class PositionMapInPixels(nn.Module):
    """The deployable PRNet: image (B,3,S,S) in [0, 1] -> position map (B,3,S,S) in crop pixels (with the mean map
    prior when the system trained with one)."""

    def __init__(self, network: nn.Module, max_pos: float, prior: torch.Tensor | None = None) -> None:
        super().__init__()
        self.network = network
        self.max_pos = float(max_pos)
        self.use_prior = prior is not None
        self.register_buffer("prior", prior.detach().clone() if prior is not None else torch.zeros(0))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.network(image)
        if self.use_prior:
            out = add_prior(out, self.prior)
        return out * self.max_pos


class MeanPositionMap(nn.Module):
    """Baseline: the mean training position map (normalised like the network's output) whatever the input."""

    def __init__(self, mean_normalised: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean_normalised.detach().clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.mean[None].expand(image.shape[0], -1, -1, -1)


def face_size(keypoints_xy: torch.Tensor) -> torch.Tensor:
    """(B,) sqrt(width x height) of the box of (B,68,2) keypoints."""
    extent = keypoints_xy.amax(1) - keypoints_xy.amin(1)
    return (extent[:, 0] * extent[:, 1]).clamp(min=1e-6).sqrt()


def position_map_nme(prediction: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, keypoints: torch.Tensor):
    """{nme_kpt68, nme_dense_2d, nme_dense_3d} per sample of (B,3,P,P) maps in pixels (see the module docstring)."""
    flat_pred, flat_true = prediction.flatten(2), truth.flatten(2)  # (B,3,P*P)
    kpt_pred, kpt_true = flat_pred[:, :, keypoints], flat_true[:, :, keypoints]  # (B,3,68)
    size = face_size(kpt_true[:, :2].transpose(1, 2))
    face = mask.flatten().nonzero().squeeze(1)
    dense_pred, dense_true = flat_pred[:, :, face], flat_true[:, :, face]
    return {
        "nme_kpt68": (kpt_pred[:, :2] - kpt_true[:, :2]).norm(dim=1).mean(1) / size,
        "nme_dense_2d": (dense_pred[:, :2] - dense_true[:, :2]).norm(dim=1).mean(1) / size,
        "nme_dense_3d": (dense_pred - dense_true).norm(dim=1).mean(1) / size,
    }


def position_map_image(normalised: torch.Tensor) -> np.ndarray:
    """(3,P,P) map / (1.1 size) -> (P,P,3) uint8 RGB (x red, y green, z blue), PRNet's preview."""
    return np.round(normalised.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


class PRNetModule(GANModule):
    """PRNet (resfcn256) trained on UV position maps; see the module docstring.

    map_size: the position-map side (the dataset's; the fitted buffers have this shape).
    mean_prior: False (the original): the network's sigmoid output is the map. True (CPU quick start): the output
        is the mean training map + (network's sigmoid output - 0.5) and the last batch norm starts with gamma 0, so
        an untrained network answers the mean map and a short run learns only the differences from it. The layers
        and parameters are the original's either way. Why additive: a bias-free conv net makes a spatially uniform
        offset (the face shifted in the crop) easily, but not a fixed spatial pattern such as the mean map itself
        (only zero padding carries position), and an offset in logit space would have to vary texel by texel.
    """

    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = ("posmap",)
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {"posmap": ("posmap",)}
    FITTED_STATISTICS: ClassVar[tuple[str, ...]] = ("uv_weight", "uv_face_mask", "uv_keypoints", "mean_posmap")
    METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {"nme_kpt68": LOWER, "nme_dense_2d": LOWER, "nme_dense_3d": LOWER}
    HEADLINE_METRICS: ClassVar[tuple[str, ...]] = ("nme_kpt68", "nme_dense_2d", "nme_dense_3d")

    def __init__(self, *args: Any, map_size: int = 256, mean_prior: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mean_prior = bool(mean_prior)
        if self.mean_prior:
            norms = [m for m in self.generator.modules() if isinstance(m, nn.BatchNorm2d)]
            if not norms:
                raise UserError("model.mean_prior needs a generator that ends in a batch norm (resfcn256)")
            nn.init.zeros_(norms[-1].weight)
        if int(map_size) < 32 or int(map_size) % 32:
            raise UserError(f"model.map_size must be a multiple of 32 (resfcn256 halves it 5 times), got {map_size}")
        self.map_size = int(map_size)
        self.max_pos = MAX_POS_FACTOR * self.map_size
        size = self.map_size
        self.register_buffer("uv_weight", torch.zeros(size, size))
        self.register_buffer("uv_face_mask", torch.zeros(size, size, dtype=torch.bool))
        self.register_buffer("uv_keypoints", torch.zeros(NUM_KEYPOINTS, dtype=torch.long))
        self.register_buffer("mean_posmap", torch.zeros(3, size, size))

    # ------------------------------------------------------------------ statistics
    def fit_statistics(self, train_batches: Any) -> dict[str, torch.Tensor]:
        total, count, first = None, 0, None
        for batch in train_batches:
            posmap = batch["posmap"].double()
            if posmap.shape[-1] != self.map_size:
                raise UserError(
                    f"model.map_size={self.map_size}, but the training maps are {posmap.shape[-1]} px: set it to "
                    f"{posmap.shape[-1]}"
                )
            total = posmap.sum(0) if total is None else total + posmap.sum(0)
            count += posmap.shape[0]
            if first is None:
                first = batch
        if first is None:
            raise UserError("PRNet: the training split is empty; nothing to fit the mean position map on")
        return {
            "uv_weight": first["uv_weight"][0].float(),
            "uv_face_mask": first["uv_face_mask"][0].bool(),
            "uv_keypoints": first["uv_keypoints"][0].long(),
            "mean_posmap": (total / count).float() / self.max_pos,
        }

    # ------------------------------------------------------------------ forward and loss
    def generate(self, batch: Batch, generator: nn.Module) -> dict[str, torch.Tensor]:
        out = generator(batch["image"])
        if self.mean_prior and not isinstance(generator, MeanPositionMap):  # the baseline is a whole answer
            out = add_prior(out, self.mean_posmap)
        return {"posmap": out}

    def generator_losses(self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]) -> dict:
        target = batch["posmap"] / self.max_pos
        return {"posmap": self.criteria["posmap"](outputs["posmap"], target, self.uv_weight)}

    # ------------------------------------------------------------------ evaluation
    def sample_metrics(self, batch: Batch, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        prediction = outputs["posmap"].float() * self.max_pos
        return position_map_nme(prediction, batch["posmap"].float(), self.uv_face_mask, self.uv_keypoints)

    def baselines(self, datamodule: Any) -> dict[str, nn.Module]:
        """The mean training position map (fitted once; no extra pass over the data)."""
        return {"mean_position_map": MeanPositionMap(self.mean_posmap)}

    def export_model(self) -> nn.Module:
        prior = self.mean_posmap if self.mean_prior else None
        return PositionMapInPixels(self.inference_generator, self.max_pos, prior).eval()

    def export_modules(self, image_size: int, deployable: bool = True) -> dict[str, ExportSpec]:
        """One `prnet` module: RGB crop in [0, 1] -> position map (in crop pixels when deployable)."""
        module = self.export_model() if deployable else self.generator.eval()
        image = ExportInput("image", (3, self.map_size, self.map_size), 0.0, 1.0, description="RGB / 255")
        metadata = {"max_pos": self.max_pos, "output_units": "crop pixels" if deployable else "1.1 x map size"}
        spec = ExportSpec(module, inputs=(image,), outputs=("position_map",), source="export_model()")
        return {"prnet": dataclasses.replace(spec, metadata=metadata)}

    # ------------------------------------------------------------------ pictures
    def _row(self, batch: Batch, outputs: dict[str, Any], index: int) -> list[tuple[str, np.ndarray]]:
        image = np.round(batch["image"][index].detach().float().cpu().numpy().transpose(1, 2, 0) * 255)
        truth = batch["posmap"][index] / self.max_pos
        prediction = outputs["posmap"][index].detach().float().cpu()
        mask = self.uv_face_mask.cpu()
        error = ((prediction - truth.cpu()).norm(dim=0) * mask / 0.05).clamp(0, 1)  # 5% of 1.1 x size = red
        error_rgb = np.round(torch.stack([error, 1 - error, 1 - error], -1).numpy() * 255).astype(np.uint8)
        keypoints = prediction.flatten(1)[:2, self.uv_keypoints.cpu()].numpy().T * self.max_pos
        keypoints = np.clip(np.round(keypoints), 0, self.map_size - 1)
        marked = image.astype(np.uint8).copy()
        marked[keypoints[:, 1].astype(int), keypoints[:, 0].astype(int)] = (0, 255, 0)
        return [
            ("input + predicted keypoints", marked),
            ("prediction", position_map_image(prediction * mask)),
            ("truth", position_map_image(truth * mask)),
            ("|error| (red = 5%)", error_rgb),
        ]

    def sample_grid(self, batch: Batch, outputs: dict[str, Any]) -> np.ndarray:
        rows = [self._row(batch, outputs, i) for i in range(outputs["posmap"].shape[0])]
        return make_grid([[image for _, image in row] for row in rows], col_labels=[label for label, _ in rows[0]])

    def report_samples(self, stage: str = "test") -> list[Any]:
        from src.eval.items import ImageGridSample

        samples = []
        for batch, outputs in self.eval_results.get(stage, {}).get("samples", []):
            for index in range(outputs["posmap"].shape[0]):
                name = str(batch["frame_id"][index]) if "frame_id" in batch else f"{stage}_{len(samples)}"
                samples.append(ImageGridSample(name=name, images=self._row(batch, outputs, index)))
        return samples
