"""rgbd_face: landmark drawing -> RGBD face (conditional pix2pix, the face-synthesizer original).

G maps the 1-channel feature image to 4 channels (R, G, B, depth; tanh); D judges concat(feature, RGBD), 5
channels. Loss table (weights in model.loss_weights; zero = not computed): gan, fm (pix2pixHD feature matching),
l1 (all 4 channels, x100 in the original), mse (mean squared error on the same masked images, all 4 channels or
the criterion's `channels`; not in the original), lpips (with a real gradient, unlike the original), vgg,
depth_l1_mm and depth_grad (depth in millimetres inside the true face, through the batch's DepthEncoding).
Why mse: L1 predicts the median, MSE the mean. Where an unseen face's colour or silhouette is uncertain, the mean
is what PSNR rewards (bench/RESULTS.md, "rgbd_face quick start").

The depth-as-mask rule (`depth_mask_rule`):
- "original": the original's training rule: where the real OR the generated depth is background, all four
  channels of both become -1 (src.losses.depth.apply_depth_mask). Pixels masked because the REAL depth is
  background get no gradient, so the generator never learns its own background there.
- "prediction" (default): the target keeps its own background (-1 in all channels where its depth is
  background); the prediction is -1 in all channels where ITS depth is background, with a straight-through
  gradient so masked pixels still learn. Training then sees exactly what inference produces.
At inference (val / test / predict / export) there is no real image: only the generated depth can mask, which
is what both rules reduce to. Metrics are therefore honest (the original scored with the real mask applied).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import hydra
import numpy as np
import torch
from torch import nn

from src.datamodules.rgbd import depth_encoding_from_batch, depth_unit_to_mm
from src.export.spec import ExportSpec
from src.losses.depth import apply_depth_mask
from src.metrics import depth_metrics_mm, rgbd_image_metrics
from src.models.components.rgbd_masking import (
    DEPTH,
    GENERATED_BACKGROUND_THRESHOLD,
    MaskedGenerator,
    MeanFaceGenerator,
    mask_background,
    mask_background_straight_through,
)
from src.models.gan import Batch, GANModule
from src.models.system import HIGHER, LOWER
from src.utils.errors import UserError
from src.utils.visualize import depth_to_color, error_map, make_grid, rgbd_to_numpy, unit_to_uint8

log = logging.getLogger(__name__)

DEPTH_MASK_RULES = ("prediction", "original")


class SquaredReconstructionLoss(nn.Module):
    """Mean squared error; ``channels`` selects e.g. [0, 1, 2] (colour) of RGBD, None = all channels."""

    def __init__(self, channels: list[int] | None = None) -> None:
        super().__init__()
        self.channels = list(channels) if channels is not None else None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        if self.channels is not None:
            pred, target = pred[:, self.channels], target[:, self.channels]
        return nn.functional.mse_loss(pred, target)


class RGBDFaceModule(GANModule):
    """Conditional pix2pix for RGBD faces; see the module docstring. Extra arguments over GANModule:

    depth_mask_rule: "prediction" (default) or "original" (see the module docstring).
    background_threshold: generated depth below this ([-1, 1] units) is background (GENERATED_BACKGROUND_THRESHOLD)
        at inference (val / test / predict / export, the mean face) and, unless the next one is set, in training.
    training_background_threshold: the cut of the training-time mask (None = background_threshold). A pixel stops
        getting a gradient once its generated depth crosses the training cut, so background ends up just below
        it; a tighter training cut than the inference cut keeps that cluster below the inference cut.
    lpips_metric: optional `_target_` config of src.metrics.LPIPSMetric for val / test (needs backbone weights;
        when they are missing the metric is skipped with a warning, never silently).
    mirror_probability: in training, each sample's drawing, RGBD and face mask are mirrored left-right together
        with this probability (0 = off). A mirrored face is another plausible face (FaceWorld's poses and lights
        are left-right symmetric, the principal point is centred), so the model sees up to twice as many faces
        for no data-generation cost. Validation, test and export never mirror.
    """

    MIRRORED_KEYS: ClassVar[tuple[str, ...]] = ("feature", "rgbd", "face_mask")

    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = (
        "gan",
        "fm",
        "l1",
        "mse",
        "lpips",
        "vgg",
        "depth_l1_mm",
        "depth_grad",
    )
    DISCRIMINATOR_TERMS: ClassVar[tuple[str, ...]] = ("real", "fake")
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "gan": ("gan",),
        "real": ("gan",),
        "fake": ("gan",),
        "fm": ("fm",),
        "l1": ("l1",),
        "mse": ("mse",),
        "lpips": ("lpips",),
        "vgg": ("vgg",),
        "depth_l1_mm": ("depth_l1_mm",),
        "depth_grad": ("depth_grad",),
    }

    def __init__(
        self,
        *args: Any,
        depth_mask_rule: str = "prediction",
        background_threshold: float = GENERATED_BACKGROUND_THRESHOLD,
        training_background_threshold: float | None = None,
        lpips_metric: Mapping | None = None,
        mirror_probability: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if depth_mask_rule not in DEPTH_MASK_RULES:
            raise UserError(f"model.depth_mask_rule must be one of {DEPTH_MASK_RULES}, got {depth_mask_rule!r}")
        if not 0.0 <= mirror_probability <= 1.0:
            raise UserError(f"model.mirror_probability must be in [0, 1], got {mirror_probability}")
        self.mirror_probability = float(mirror_probability)
        self.depth_mask_rule = depth_mask_rule
        self.background_threshold = background_threshold
        self.training_background_threshold = (
            background_threshold if training_background_threshold is None else training_background_threshold
        )
        self.lpips_metric: nn.Module | None = None
        if lpips_metric:
            try:
                self.lpips_metric = hydra.utils.instantiate(lpips_metric)
                self.lpips_metric.requires_grad_(False)
            except Exception as err:  # missing backbone weights: report, keep evaluating the rest
                cause = err.__cause__ or err
                log.warning(f"LPIPS metric disabled: {str(cause).splitlines()[0] if str(cause) else cause!r}")

    # ------------------------------------------------------------------ forward and losses
    def training_step(self, batch: Batch, batch_idx: int) -> None:
        if self.mirror_probability > 0.0:
            batch = self.mirror_samples(batch, torch.rand(batch["feature"].shape[0]) < self.mirror_probability)
        super().training_step(batch, batch_idx)

    def mirror_samples(self, batch: Batch, chosen: torch.Tensor) -> Batch:
        """The batch with the samples where `chosen` (N,) is True mirrored left-right (MIRRORED_KEYS only)."""
        mirrored = dict(batch)
        for key in self.MIRRORED_KEYS:
            if key in batch:
                where = chosen.to(batch[key].device).view(-1, *([1] * (batch[key].dim() - 1)))
                mirrored[key] = torch.where(where, batch[key].flip(-1), batch[key])
        return mirrored

    def generate(self, batch: Batch, generator: nn.Module) -> dict[str, torch.Tensor]:
        raw = generator(batch["feature"])
        real = batch["rgbd"]
        if self.training and self.depth_mask_rule == "original":
            fake, target = apply_depth_mask(raw, real, self.training_background_threshold)
        elif self.training:
            fake = mask_background_straight_through(raw, self.training_background_threshold)
            target = mask_background(real)  # real background is exactly level 0
        else:
            fake = mask_background(raw, self.background_threshold)
            target = mask_background(real)
        return {"rgbd": fake, "target": target}

    def _discriminate(self, condition: torch.Tensor, rgbd: torch.Tensor) -> Any:
        return self.discriminator(torch.cat([condition, rgbd], dim=1))

    def generator_losses(
        self, batch: Batch, outputs: dict[str, torch.Tensor], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        fake, target, condition = outputs["rgbd"], outputs["target"], batch["feature"]
        losses: dict[str, torch.Tensor] = {}
        if terms & {"gan", "fm"}:
            fake_outputs = self._discriminate(condition, fake)
            if "gan" in terms:
                losses["gan"] = self.criteria["gan"].generator_loss(fake_outputs)
            if "fm" in terms:
                with torch.no_grad():
                    real_outputs = self._discriminate(condition, target)
                losses["fm"] = self.criteria["fm"](fake_outputs, real_outputs)
        if "l1" in terms:
            losses["l1"] = self.criteria["l1"](fake, target)
        for name in ("mse", "lpips", "vgg"):
            if name in terms:
                losses[name] = self.criteria[name](fake, target)
        if terms & {"depth_l1_mm", "depth_grad"}:
            fake_mm = depth_unit_to_mm(fake[:, DEPTH], batch)
            target_mm = depth_unit_to_mm(target[:, DEPTH], batch)
            for name in ("depth_l1_mm", "depth_grad"):
                if name in terms:
                    losses[name] = self.criteria[name](fake_mm, target_mm, batch["face_mask"])
        return losses

    def discriminator_losses(
        self, batch: Batch, outputs: dict[str, torch.Tensor], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        condition = batch["feature"]
        losses = {}
        if "real" in terms:
            losses["real"] = self.criteria["gan"](self._discriminate(condition, outputs["target"]), True)
        if "fake" in terms:
            losses["fake"] = self.criteria["gan"](self._discriminate(condition, outputs["rgbd"]), False)
        return losses

    # ------------------------------------------------------------------ evaluation
    # Every per-sample metric sample_metrics returns, with its direction; the comparison ranks by the headline five.
    METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {
        "psnr_rgbd": HIGHER,
        "psnr_rgb": HIGHER,
        "ssim_rgbd": HIGHER,
        "ssim_rgb": HIGHER,
        "pixel_accuracy": HIGHER,
        "threshold_pixel_accuracy": HIGHER,
        "depth_mae_mm": LOWER,
        "depth_rmse_mm": LOWER,
        "background_as_face": LOWER,
        "face_as_background": LOWER,
        "lpips_alex_rgb": LOWER,
        "lpips_alex_depth": LOWER,
        "lpips_vgg_rgb": LOWER,
        "lpips_vgg_depth": LOWER,
    }
    HEADLINE_METRICS: ClassVar[tuple[str, ...]] = (
        "psnr_rgbd",
        "psnr_rgb",
        "ssim_rgbd",
        "depth_mae_mm",
        "depth_rmse_mm",
        "background_as_face",
    )

    def sample_metrics(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fake, target = outputs["rgbd"].float(), outputs["target"].float()
        metrics = rgbd_image_metrics(fake, target)
        encodings = {depth_encoding_from_batch(batch, i) for i in range(fake.shape[0])}
        if len(encodings) != 1:
            raise UserError("a batch mixes depth encodings; evaluate one dataset at a time")
        encoding = encodings.pop()
        mm_per_unit = encoding.mm_per_level * encoding.max_level / 2.0
        metrics.update(depth_metrics_mm(fake, target, mm_per_unit, batch["face_mask"], depth_channel=3))
        if self.lpips_metric is not None:
            metrics.update(self.lpips_metric(fake, target))
        return metrics

    def export_model(self) -> nn.Module:
        """The deployable generator: inference G (EMA when enabled) + the inference depth-as-mask rule."""
        return MaskedGenerator(self.inference_generator, self.background_threshold).eval()

    def export_modules(self, image_size: int, deployable: bool = True) -> dict[str, ExportSpec]:
        """One `generator` (feature drawing -> RGBD image), as the original deployed it; see SystemHooks."""
        specs = super().export_modules(image_size, deployable)
        generator = specs["generator"]
        metadata = {"output_channels": ["R", "G", "B", "depth"], "depth_as_mask_in_graph": deployable}
        return {"generator": dataclasses.replace(generator, metadata={**generator.metadata, **metadata})}

    def baselines(self, datamodule: Any) -> dict[str, nn.Module]:
        """Input-independent baselines a trained model must beat: the mean training face."""
        batches = (b for b in datamodule.train_dataloader())
        return {"mean_face": MeanFaceGenerator.from_batches(batches, self.background_threshold)}

    # ------------------------------------------------------------------ pictures
    def _views(self, batch: Batch, outputs: dict[str, torch.Tensor], index: int) -> dict[str, np.ndarray]:
        encoding = depth_encoding_from_batch(batch, index)
        pred_rgb, pred_mm = rgbd_to_numpy(outputs["rgbd"][index], encoding)
        true_rgb, true_mm = rgbd_to_numpy(outputs["target"][index], encoding)
        return {
            "feature": unit_to_uint8(batch["feature"][index]),
            "pred_rgb": pred_rgb,
            "true_rgb": true_rgb,
            "pred_depth_mm": pred_mm,
            "true_depth_mm": true_mm,
        }

    def sample_grid(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> np.ndarray:
        """input | prediction | truth | depth pred | depth true | depth error, one row per sample."""
        rows, names = [], []
        for index in range(outputs["rgbd"].shape[0]):
            views = self._views(batch, outputs, index)
            encoding = depth_encoding_from_batch(batch, index)
            near, far = encoding.near_mm, encoding.far_mm
            error, _ = error_map(views["pred_depth_mm"], views["true_depth_mm"])
            rows.append(
                [
                    views["feature"],
                    views["pred_rgb"],
                    views["true_rgb"],
                    depth_to_color(views["pred_depth_mm"], near, far, legend=True),
                    depth_to_color(views["true_depth_mm"], near, far, legend=True),
                    error,
                ]
            )
            names.append(str(batch["frame_id"][index]) if "frame_id" in batch else str(index))
        labels = ["input", "prediction", "truth", "depth pred", "depth true", "depth |err|"]
        return make_grid(rows, col_labels=labels, row_labels=names if len(names[0]) < 24 else None)

    def report_samples(self, stage: str = "test") -> list[Any]:
        """The kept evaluation samples as src.eval.report.ReportSample (for the eval report)."""
        from src.eval.report import ReportSample

        samples = []
        for batch, outputs in self.eval_results.get(stage, {}).get("samples", []):
            for index in range(outputs["rgbd"].shape[0]):
                name = str(batch["frame_id"][index]) if "frame_id" in batch else f"{stage}_{len(samples)}"
                intrinsics = tuple(batch["intrinsics"][index].tolist()) if "intrinsics" in batch else None
                samples.append(ReportSample(name=name, intrinsics=intrinsics, **self._views(batch, outputs, index)))
        return samples
