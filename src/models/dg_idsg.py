"""dg_idsg: DG's ID-preserving shape generator. Reference landmarks + source face -> target landmarks.

The original (core_IDSG/solver_lm_perceptual_tran.py, RaFD / VoxCeleb branch) per iteration, in this order:
1. D (update `D`): non-saturating BCE on the reference landmarks (real) and on the cross-identity output (fake),
   plus R1 = 0.5 ||d D / d real||^2 on the real ones;
2. the identity classifier (update `C`): cross-entropy of classifier(reference landmarks) against their identity;
3. landmark encoder + decoder (+ the default face encoder) (update `G`), with the terms (weights in
   model.loss_weights, all 1 in the original):
   gan             BCE(D(cross), real) on the cross-identity output cross = dec(enc(ref), face(source))
   cycle           same = dec(enc(ref), face(same_image)), same_image being the reference's own person: the sum
                   over the 68 points of the batch-mean point distance between same and ref (the original's loop)
   cycle_target    the same distance between cross and the TRUE target (the RaFD branch's cyc_2; needs targets)
   content         mean |enc(ref) - enc(same)|
   classification  cross-entropy of classifier(cross) against the SOURCE identity
   shape           part-wise shape (triplet) loss per region r: |m_r + d(same, ref) - d(cross, ref)|, d summing
                   the batch-mean point distance over the region's points; jaw 0-16 m 0.2; brows 17-26, nose
                   27-35, eyes 36-47, mouth 48-67 m 0.01
   identity        (new) cross-entropy of the default face encoder's identity head on both faces: what trains
                   the face encoder that replaces the original's frozen VGG-Face (0 with model.generator
                   face_encoder vgg_face, which is frozen)
The classifier's output passes a sigmoid before the cross-entropy, as in the original. Landmarks are divided by
the crop side (the original's 256); 2D or 3D (data.landmark_dims, model.generator.landmark_dims).

Evaluation against the TRUE target landmarks (FaceWorld writes them): landmark error in pixels of a 256 crop,
overall and by the target's |yaw| (0-20, 20-40, 40-60 degrees); baselines "copy_reference" (the reference's
landmarks unchanged) and the untrained generator.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from src.export.spec import ExportInput, ExportSpec
from src.landmarks.drawing import draw_dg_landmarks
from src.models.components.dg_idsg import CopyReferenceLandmarks, IDSGLandmarkHead
from src.models.gan import Batch, GANModule
from src.models.system import LOWER
from src.utils.errors import UserError

log = logging.getLogger(__name__)

# Regions of the part-wise shape loss and their margins (the original's values, landmarks divided by 256).
SHAPE_REGIONS: dict[str, tuple[range, float]] = {
    "jaw": (range(0, 17), 0.2),
    "brows": (range(17, 27), 0.01),
    "nose": (range(27, 36), 0.01),
    "eyes": (range(36, 48), 0.01),
    "mouth": (range(48, 68), 0.01),
}
YAW_BUCKETS = ((0.0, 20.0), (20.0, 40.0), (40.0, 60.0))
PIXELS = 256.0  # errors are reported in pixels of the original's 256 crop


def bucket_name(low: float, high: float) -> str:
    return f"lm_error_px_yaw{int(low):02d}_{int(high):02d}"


BUCKET_METRICS = tuple(bucket_name(lo, hi) for lo, hi in YAW_BUCKETS)


def points(landmarks: torch.Tensor) -> torch.Tensor:
    """(B, 68 * D) -> (B, 68, D)."""
    return landmarks.reshape(landmarks.shape[0], 68, -1)


def point_distance_sum(a: torch.Tensor, b: torch.Tensor, indices: range | None = None) -> torch.Tensor:
    """Sum over points of the batch-mean Euclidean distance (the original's landmark loss loop), x and y only."""
    diff = (points(a)[..., :2] - points(b)[..., :2]).norm(dim=2)
    if indices is not None:
        diff = diff[:, list(indices)]
    return diff.mean(dim=0).sum()


def landmark_error_px(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) mean point distance in pixels of a 256 crop (x, y)."""
    return (points(predicted)[..., :2] - points(target)[..., :2]).norm(dim=2).mean(dim=1) * PIXELS


class DGIDSGModule(GANModule):
    """IDSG; see the module docstring. The generator is an IDSGenerator (landmark encoder, face encoder, decoder);
    the single `discriminator` is the landmark D; `networks.classifier` the identity classifier.

    num_identities: identity labels the classifier and the face encoder's head cover (checked against the data).
    """

    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = (
        "gan",
        "cycle",
        "cycle_target",
        "content",
        "classification",
        "shape",
        "identity",
    )
    DISCRIMINATOR_TERMS: ClassVar[tuple[str, ...]] = ("real", "fake", "r1")
    ADVERSARIAL_TERMS: ClassVar[tuple[str, ...]] = ("gan",)
    LOSS_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {"classifier_losses": ("classification",)}
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "gan": ("gan",),
        "real": ("gan",),
        "fake": ("gan",),
        "r1": ("r1",),
    }
    METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {
        "lm_error_px": LOWER,
        "same_identity_error_px": LOWER,
        **dict.fromkeys(BUCKET_METRICS, LOWER),
    }
    HEADLINE_METRICS: ClassVar[tuple[str, ...]] = ("lm_error_px", *BUCKET_METRICS)
    SUBSET_METRICS: ClassVar[tuple[str, ...]] = BUCKET_METRICS  # each bucket's own pairs
    # The generator's landmark standardisation (model.generator.normalize_landmarks), fitted once on the training
    # split and kept in the checkpoint; left at mean 0 / std 1 (no pass over the data) when the setting is off.
    FITTED_STATISTICS: ClassVar[tuple[str, ...]] = ("landmark_mean", "landmark_std")

    def __init__(self, *args: Any, num_identities: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if int(num_identities) < 1:
            raise UserError(f"model.num_identities must be >= 1, got {num_identities}")
        self.num_identities = int(num_identities)
        classifier = getattr(self, "classifier", None)
        if not isinstance(classifier, nn.Module):
            raise UserError("model.networks.classifier: the identity classifier is required")
        if self.loss_weights.get("identity", 0.0) and not hasattr(self.generator.face_encoder, "classify"):
            raise UserError(
                "model.loss_weights.identity must be 0 with a frozen face encoder (vgg_face): it has no identity head"
            )

    # ------------------------------------------------------------------ data checks
    def on_fit_start(self) -> None:
        super().on_fit_start()
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "num_train_identities"):
            needed = datamodule.num_train_identities()
            if needed > self.num_identities:
                raise UserError(
                    f"model.num_identities is {self.num_identities} but the training list has labels up to "
                    f"{needed - 1}: set model.num_identities={needed}"
                )

    # ------------------------------------------------------------------ fitted statistics
    @property
    def landmark_mean(self) -> torch.Tensor:
        return self.generator.landmark_mean

    @property
    def landmark_std(self) -> torch.Tensor:
        return self.generator.landmark_std

    def fit_statistics(self, train_batches: Any) -> dict[str, torch.Tensor]:
        """Per-value mean and standard deviation of the landmarks IDSG reads (reference, same and source landmarks of
        the training pairs; with their mirror images when the datamodule flips). The datamodule's
        `landmark_statistics()` gives them without reading an image; other loaders are read batch by batch."""
        if not getattr(self.generator, "normalize_landmarks", False):
            return {"landmark_mean": self.landmark_mean.clone(), "landmark_std": self.landmark_std.clone()}
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "landmark_statistics"):
            mean, std = datamodule.landmark_statistics()
        else:
            stacked = torch.cat(
                [b[k].double() for b in train_batches for k in ("reference_landmarks", "source_landmarks") if k in b]
            )
            if stacked.shape[0] < 2:
                raise UserError("dg_idsg: the training split has too few landmark sets to fit their statistics")
            mean, std = stacked.mean(0), stacked.std(0)
        mean, std = torch.as_tensor(mean).float(), torch.as_tensor(std).float()
        if mean.shape != self.landmark_mean.shape:
            raise UserError(
                f"dg_idsg: the data has {mean.numel()} landmark values, the generator {self.landmark_mean.numel()}: "
                "set model.generator.landmark_dims to data.landmark_dims"
            )
        return {"landmark_mean": mean, "landmark_std": std.clamp_min(1e-4)}

    # ------------------------------------------------------------------ forward
    def generate(self, batch: Batch, generator: nn.Module) -> dict[str, Any]:
        reference = batch["reference_landmarks"]
        if not self.training or not hasattr(generator, "decoder"):
            # Evaluation / baselines: any module (landmarks, image) -> landmarks.
            outputs = {"landmarks": generator(reference, batch["source_image"])}
            if hasattr(generator, "decoder"):
                outputs["same"] = generator(reference, batch["same_image"])
            return outputs
        reference_code = generator.encode_landmarks(reference)
        source_code = generator.encode_identity(batch["source_image"])
        same_code = generator.encode_identity(batch["same_image"])
        return {
            # fake_lm_1: the cross-identity output; fake_lm_2: the reference's own person
            "landmarks": generator.decode_from_code(reference, reference_code, source_code),
            "same": generator.decode_from_code(reference, reference_code, same_code),
            "reference_code": reference_code,
            "source_code": source_code,
            "same_code": same_code,
        }

    def _classify(self, landmarks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(landmarks)
        if logits.shape[1] <= int(labels.max()):
            raise UserError(
                f"model.num_identities ({logits.shape[1]}) does not cover identity label {int(labels.max())}"
            )
        return F.cross_entropy(logits, labels)

    def generator_losses(self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]) -> dict[str, torch.Tensor]:
        reference, cross, same = batch["reference_landmarks"], outputs["landmarks"], outputs["same"]
        losses: dict[str, torch.Tensor] = {}
        if "gan" in terms:
            losses["gan"] = self.criteria["gan"].generator_loss(self.discriminator(cross))
        if "cycle" in terms:
            losses["cycle"] = point_distance_sum(same, reference)
        if "cycle_target" in terms:
            if "target_landmarks" not in batch:
                raise UserError("model.loss_weights.cycle_target needs true targets: a 6-column list (csv4)")
            losses["cycle_target"] = point_distance_sum(cross, batch["target_landmarks"])
        if "content" in terms:
            losses["content"] = (outputs["reference_code"] - self.generator.encode_landmarks(same)).abs().mean()
        if "classification" in terms:
            losses["classification"] = self._classify(cross, batch["source_label"])
        if "shape" in terms:
            total = cross.new_zeros(())
            for region, margin in SHAPE_REGIONS.values():
                positive = point_distance_sum(same, reference, region)
                negative = point_distance_sum(cross, reference, region)
                total = total + (margin + positive - negative).abs()
            losses["shape"] = total
        if "identity" in terms:
            encoder = self.generator.face_encoder
            losses["identity"] = 0.5 * (
                F.cross_entropy(encoder.classify(outputs["source_code"]), batch["source_label"])
                + F.cross_entropy(encoder.classify(outputs["same_code"]), batch["reference_label"])
            )
        return losses

    def discriminator_losses(
        self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        real = batch["reference_landmarks"].detach().requires_grad_("r1" in terms)
        real_logits = self.discriminator(real)
        losses: dict[str, torch.Tensor] = {}
        if "real" in terms:
            losses["real"] = self.criteria["gan"](real_logits, True)
        if "fake" in terms:
            losses["fake"] = self.criteria["gan"](self.discriminator(outputs["landmarks"]), False)
        if "r1" in terms:
            losses["r1"] = self.criteria["r1"](real_logits, real)
        return losses

    def classifier_losses(
        self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        return {"classification": self._classify(batch["reference_landmarks"], batch["reference_label"])}

    # ------------------------------------------------------------------ evaluation
    def sample_metrics(self, batch: Batch, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        metrics: dict[str, torch.Tensor] = {}
        if "same" in outputs:
            metrics["same_identity_error_px"] = landmark_error_px(outputs["same"], batch["reference_landmarks"])
        if "target_landmarks" not in batch:
            return metrics
        error = landmark_error_px(outputs["landmarks"], batch["target_landmarks"])
        metrics["lm_error_px"] = error
        yaw = batch["target_yaw_deg"].to(error).abs()
        for low, high in YAW_BUCKETS:
            inside = (yaw >= low) & ((yaw < high) | ((high == YAW_BUCKETS[-1][1]) & (yaw <= high)))
            metrics[bucket_name(low, high)] = torch.where(inside, error, torch.full_like(error, float("nan")))
        return metrics

    def baselines(self, datamodule: Any) -> dict[str, nn.Module]:
        """ "copy_reference": the reference's landmarks as the answer (ignores who the source is)."""
        return {"copy_reference": CopyReferenceLandmarks()}

    # ------------------------------------------------------------------ export
    def export_modules(self, image_size: int, deployable: bool = True) -> dict[str, ExportSpec]:
        """`idsg`: (landmarks (K,), identity_code (C,)) -> target_landmarks (K,); `face_encoder`: image -> code."""
        generator = self.inference_generator if deployable else self.generator
        generator = generator.eval()
        features = int(generator.decoder.mlp.main[-1].out_features)
        code_dim = int(generator.face_encoder.code_dim)
        source = "EMA generator" if deployable and generator is not self.generator else "generator"
        landmarks = ExportInput("landmarks", (features,), 0.0, 1.0, description="68 points x, y[, z] / crop side")
        code = ExportInput("identity_code", (code_dim,), -1.0, 1.0, description="face_encoder output")
        image = ExportInput("image", (3, int(image_size), int(image_size)), 0.0, 1.0, description="RGB crop in [0, 1]")
        return {
            "idsg": ExportSpec(IDSGLandmarkHead(generator), (landmarks, code), ("target_landmarks",), source=source),
            "face_encoder": ExportSpec(generator.face_encoder, (image,), ("identity_code",), source=source),
        }

    # ------------------------------------------------------------------ pictures
    def _pixels(self, landmarks: torch.Tensor, size: int) -> np.ndarray:
        return points(landmarks.detach().float().cpu())[..., :2].numpy() * size

    def sample_grid(self, batch: Batch, outputs: dict[str, Any]) -> np.ndarray:
        """source | reference drawing | prediction over the true target (red / green)."""
        from src.eval.items import LandmarkPlotSample
        from src.utils.visualize import make_grid

        rows = []
        for sample in self.report_samples_from(batch, outputs):
            source = (batch["source_image"][len(rows)].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
            reference = batch["reference_landmarks"][len(rows)].reshape(68, -1)[:, :2].cpu().numpy()
            drawing = draw_dg_landmarks(reference * source.shape[0], source.shape[0])
            plot = sample.plot() if isinstance(sample, LandmarkPlotSample) else source
            rows.append([source, drawing, plot])
        return make_grid(rows, col_labels=["source", "reference", "prediction (red) vs truth (green)"])

    def report_samples_from(self, batch: Batch, outputs: dict[str, Any]) -> list[Any]:
        from src.eval.items import LandmarkPlotSample

        size = int(batch["source_image"].shape[-1])
        predicted = self._pixels(outputs["landmarks"], size)
        truth = self._pixels(batch["target_landmarks"], size) if "target_landmarks" in batch else None
        images = batch.get("target_image", batch.get("reference_image", batch["source_image"]))
        samples = []
        for index in range(predicted.shape[0]):
            image = (images[index].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            name = str(batch["frame_id"][index]) if "frame_id" in batch else str(index)
            samples.append(
                LandmarkPlotSample(name, predicted[index], None if truth is None else truth[index], image=image)
            )
        return samples

    def report_samples(self, stage: str = "test") -> list[Any]:
        samples = []
        for batch, outputs in self.eval_results.get(stage, {}).get("samples", []):
            samples += self.report_samples_from(batch, outputs)
        return samples
