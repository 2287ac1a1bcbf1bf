"""dg_rfg: DG's reenacted face generator (image space) and the full DG pipeline it ends.

Training (the original's core/solver_lm_perceptual.py, GAN + R1, L1, perceptual; weights in model.loss_weights):
RFG draws the source person's face on a landmark drawing, the style (AdaIN) coming from the source image:
fake = G(drawing, style_encoder(source)). With true targets (FaceWorld, 6-column lists) the drawing is the TRUE
target's landmarks and the answer its image (the RaFD branch's `lm src tgt`); without them RFG reconstructs the
reference image from its own drawing and the same person's other image (the VoxCeleb self-reconstruction).
    D update `D`:   real = BCE(D([target, drawing]), 1), fake = BCE(D([fake, drawing]), 0), r1 on the real pair
    G update `G`:   gan (non-saturating BCE), l1, perceptual (face-recognition features: src/models/components/
                    dg_face_features.py), fm (D feature matching; 0 in the original's default), landmark (this
                    framework's geometry term, 0 = the original: a frozen landmark regressor trained on the training
                    crops reads the output, distance to the drawn landmarks; src/models/components/dg_geometry.py)
EMA of the RFG (generator + style encoder) is what val / test / export use.

Evaluation is the FULL pipeline of the demo when model.idsg_checkpoint is set: IDSG(reference landmarks, source)
-> eye fix -> DG drawing -> RFG, scored against the TRUE target image: PSNR / SSIM (torchmetrics), LPIPS (when its
backbone weights are installed), identity consistency (1 - cosine of the IDSG face encoder's codes of source and
output) and pose / expression consistency (NME between mediapipe landmarks of output and true target, when
`pose_detector` finds both faces). Without an IDSG checkpoint RFG is scored on the TRUE target's drawing (an
oracle upper bound; the log says so). Baselines: "rfg_on_reference" (the same trained RFG on the reference's
landmarks, i.e. DG without IDSG) and the untrained RFG.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import hydra
import numpy as np
import torch
from torch import nn
from torchmetrics.functional import peak_signal_noise_ratio, structural_similarity_index_measure

from src.datamodules.dg import dg_drawing
from src.export.spec import ExportInput, ExportSpec
from src.models.components.dg_face_features import load_idsg_generator
from src.models.components.dg_idsg import eye_fix
from src.models.gan import Batch, GANModule
from src.models.system import HIGHER, LOWER
from src.utils.errors import UserError

log = logging.getLogger(__name__)

LANDMARK_SOURCES = ("idsg", "target", "reference")
DETECTOR_METRICS = ("pose_expression_nme",)


class ReferenceLandmarks(nn.Module):
    """Baseline marker: evaluate this system's RFG on the REFERENCE's drawing (DG without IDSG)."""

    def __init__(self) -> None:
        super().__init__()


def draw_batch(
    landmarks: torch.Tensor, size: int, half_face: str, supersample: int = 1, line_width: float | None = None
) -> torch.Tensor:
    """(B, 68 * D) landmarks in [0, 1] -> (B, 3, size, size) DG drawings in [0, 1] (src.datamodules.dg.dg_drawing:
    supersample 1 / line_width None is the original's drawing)."""
    points = landmarks.detach().float().cpu().reshape(landmarks.shape[0], 68, -1)[..., :2].numpy() * size
    drawings = [dg_drawing(p, size, half_face, supersample, line_width) for p in points]
    out = torch.from_numpy(np.stack(drawings)).float()
    return out[:, None].repeat(1, 3, 1, 1).to(landmarks.device)


class DGRFGModule(GANModule):
    """RFG + the DG pipeline at evaluation; see the module docstring. Extra arguments over GANModule:

    idsg_checkpoint: a dg_idsg checkpoint; its inference IDSG drives evaluation and export of the whole pipeline and
        its face encoder scores identity consistency (frozen, stored in this model's checkpoint too).
    eye_fix: apply the original demo's eye fix to IDSG's landmarks before drawing them.
    half_face: the drawing's half-face rule (src.landmarks.drawing.dg_face_part).
    drawing_supersample / drawing_line_width: how evaluation draws the pipeline's landmarks; they must be those the
        training drawings were made with (the config takes them from data.*; 1 / None = the original's drawing).
    lpips_metric: `_target_` config of src.metrics.LPIPSMetric (skipped with a warning when weights are missing).
    pose_detector: landmark detector name for pose / expression consistency (null: not scored).
    """

    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = ("gan", "l1", "perceptual", "fm", "landmark")
    DISCRIMINATOR_TERMS: ClassVar[tuple[str, ...]] = ("real", "fake", "r1")
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "gan": ("gan",),
        "real": ("gan",),
        "fake": ("gan",),
        "r1": ("r1",),
        "l1": ("l1",),
        "perceptual": ("perceptual",),
        "fm": ("fm",),
        "landmark": ("landmark",),
    }
    METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {
        "psnr": HIGHER,
        "ssim": HIGHER,
        "l1": LOWER,
        "lpips_alex": LOWER,
        "lpips_vgg": LOWER,
        "identity_distance": LOWER,
        "pose_expression_nme": LOWER,
    }
    HEADLINE_METRICS: ClassVar[tuple[str, ...]] = ("psnr", "ssim", "l1", "identity_distance", "pose_expression_nme")
    SUBSET_METRICS: ClassVar[tuple[str, ...]] = DETECTOR_METRICS  # pairs where the detector found both faces
    PROGRESS_BAR_METRIC: ClassVar[str | None] = "psnr"

    def __init__(
        self,
        *args: Any,
        idsg_checkpoint: str | None = None,
        eye_fix: bool = True,
        half_face: str = "symmetric",
        drawing_supersample: int = 1,
        drawing_line_width: float | None = None,
        lpips_metric: Mapping | None = None,
        pose_detector: str | None = "mediapipe",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.idsg = load_idsg_generator(idsg_checkpoint) if idsg_checkpoint else None
        self.use_eye_fix = bool(eye_fix)
        self.half_face = half_face
        self.drawing_supersample = int(drawing_supersample)
        self.drawing_line_width = drawing_line_width
        self.landmark_source = "idsg" if self.idsg is not None else "target"
        if self.idsg is None:
            log.warning("dg_rfg: no model.idsg_checkpoint: evaluation draws the TRUE target landmarks (oracle)")
        self.lpips_metric: nn.Module | None = None
        if lpips_metric:
            try:
                self.lpips_metric = hydra.utils.instantiate(lpips_metric).requires_grad_(False)
            except Exception as err:  # missing backbone weights: report, keep evaluating the rest
                cause = err.__cause__ or err
                log.warning(f"LPIPS metric disabled: {str(cause).splitlines()[0] if str(cause) else cause!r}")
        self.pose_detector_name = pose_detector
        self._detector: Any = None

    def all_networks(self) -> list[nn.Module]:
        idsg = getattr(self, "idsg", None)
        return [m for m in super().all_networks() if m is not idsg]

    # ------------------------------------------------------------------ training
    def _training_triplet(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(drawing, source image, answer, the drawing's landmarks) RFG learns from (see the module docstring)."""
        if "target_image" in batch:
            return batch["target_drawing"], batch["source_image"], batch["target_image"], batch["target_landmarks"]
        return batch["reference_drawing"], batch["same_image"], batch["reference_image"], batch["reference_landmarks"]

    def on_fit_start(self) -> None:
        """Train the geometry term's landmark regressor once on the training crops (not again on resume)."""
        super().on_fit_start()
        geometry = self.criteria["landmark"] if "landmark" in self.criteria else None  # noqa: SIM401 (no .get)
        if geometry is None or bool(geometry.fitted):
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        loader = (
            datamodule.train_dataloader() if datamodule is not None else self.trainer.fit_loop._data_source.dataloader()
        )
        pairs = [
            (batch[f"{kind}_image"], batch[f"{kind}_landmarks"])
            for batch in loader
            for kind in ("source", "target", "reference")
            if f"{kind}_image" in batch and f"{kind}_landmarks" in batch
        ]
        if not pairs:
            raise UserError("model.loss_weights.landmark: the training batches hold no image with its landmarks")
        fitted = geometry.fit(pairs)
        log.info(
            f"dg_rfg: geometry regressor trained on {sum(len(p[0]) for p in pairs)} training crops, "
            f"{fitted['steps']} steps, {fitted['cpu_seconds']:.0f} CPU-s, error {fitted['train_error_px']:.2f} px"
        )

    def pipeline_landmarks(self, batch: Batch) -> torch.Tensor:
        """The landmarks the evaluated pipeline draws: IDSG's (eye-fixed), the true target's, or the reference's."""
        if self.landmark_source == "reference":
            return batch["reference_landmarks"]
        if self.landmark_source == "target" or self.idsg is None:
            if "target_landmarks" not in batch:
                raise UserError("dg_rfg: scoring needs model.idsg_checkpoint or a 6-column list with true targets")
            return batch["target_landmarks"]
        predicted = self.idsg(batch["reference_landmarks"], batch["source_image"])
        return eye_fix(predicted, batch["reference_landmarks"]) if self.use_eye_fix else predicted

    def generate(self, batch: Batch, generator: nn.Module) -> dict[str, Any]:
        if self.training:
            drawing, source, answer, landmarks = self._training_triplet(batch)
            return {"image": generator(drawing, source), "drawing": drawing, "answer": answer, "landmarks": landmarks}
        landmarks = self.pipeline_landmarks(batch)
        drawing = self.draw(landmarks, int(batch["source_image"].shape[-1]))
        answer = batch["target_image"] if "target_image" in batch else batch["reference_image"]
        image = generator(drawing, batch["source_image"])
        return {"image": image, "drawing": drawing, "answer": answer, "landmarks": landmarks}

    def draw(self, landmarks: torch.Tensor, size: int) -> torch.Tensor:
        """(B, 68 * D) landmarks in [0, 1] -> (B, 3, size, size) drawings made as the training drawings were."""
        return draw_batch(landmarks, size, self.half_face, self.drawing_supersample, self.drawing_line_width)

    def _discriminate(self, image: torch.Tensor, drawing: torch.Tensor) -> list[torch.Tensor]:
        return self.discriminator(torch.cat([image, drawing], dim=1))

    def generator_losses(self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]) -> dict[str, torch.Tensor]:
        fake, drawing, answer = outputs["image"], outputs["drawing"], outputs["answer"]
        losses: dict[str, torch.Tensor] = {}
        if terms & {"gan", "fm"}:
            fake_outputs = self._discriminate(fake, drawing)
            if "gan" in terms:
                losses["gan"] = self.criteria["gan"].generator_loss(fake_outputs[-1])
            if "fm" in terms:
                with torch.no_grad():
                    real_outputs = self._discriminate(answer, drawing)
                losses["fm"] = self.criteria["fm"]([fake_outputs], [real_outputs])
        if "l1" in terms:
            losses["l1"] = self.criteria["l1"](fake, answer)
        if "perceptual" in terms:
            losses["perceptual"] = self.criteria["perceptual"](fake, answer)
        if "landmark" in terms:
            losses["landmark"] = self.criteria["landmark"](fake, outputs["landmarks"])
        return losses

    def discriminator_losses(
        self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        answer = outputs["answer"].detach().requires_grad_("r1" in terms)
        real_logits = self._discriminate(answer, outputs["drawing"])[-1]
        losses: dict[str, torch.Tensor] = {}
        if "real" in terms:
            losses["real"] = self.criteria["gan"](real_logits, True)
        if "fake" in terms:
            losses["fake"] = self.criteria["gan"](self._discriminate(outputs["image"], outputs["drawing"])[-1], False)
        if "r1" in terms:
            losses["r1"] = self.criteria["r1"](real_logits, answer)
        return losses

    # ------------------------------------------------------------------ evaluation
    def _detect(self, images: torch.Tensor) -> list[np.ndarray | None]:
        """68 landmarks (pixels) of the largest face in each image, None where the detector finds none."""
        if self._detector is None:
            from src.landmarks.detectors import build_detector

            self._detector = build_detector(self.pose_detector_name)
        found = []
        for image in images:
            rgb = (image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            if rgb.shape[0] < 128:  # the detector needs a face of ~100 px: enlarge small crops
                import cv2

                rgb = cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_CUBIC)
            faces = self._detector.detect(rgb)
            found.append(faces[0].landmarks[:68] * (image.shape[-1] / rgb.shape[0]) if faces else None)
        return found

    def sample_metrics(self, batch: Batch, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        from src.landmarks.nme import normalised_mean_error

        fake, answer = outputs["image"].float().clamp(0, 1), outputs["answer"].float()
        metrics = {
            "psnr": peak_signal_noise_ratio(fake, answer, data_range=1.0, reduction="none", dim=(1, 2, 3)),
            "ssim": structural_similarity_index_measure(fake, answer, data_range=1.0, reduction="none"),
            "l1": (fake - answer).abs().flatten(1).mean(1),
        }
        if self.lpips_metric is not None:
            metrics.update({k: v for k, v in self.lpips_metric(fake * 2 - 1, answer * 2 - 1).items()})
        if self.idsg is not None:
            encoder = self.idsg.module.face_encoder
            source_code, fake_code = encoder(batch["source_image"]), encoder(fake)
            metrics["identity_distance"] = 1 - torch.nn.functional.cosine_similarity(source_code, fake_code, dim=1)
        if self.pose_detector_name:
            nme = torch.full((fake.shape[0],), float("nan"))
            for index, (mine, truth) in enumerate(zip(self._detect(fake), self._detect(answer))):
                if mine is not None and truth is not None:
                    nme[index] = normalised_mean_error(mine, truth)
            metrics["pose_expression_nme"] = nme
        return metrics

    def baselines(self, datamodule: Any) -> dict[str, nn.Module]:
        """ "rfg_on_reference": this trained RFG drawing the REFERENCE's landmarks (DG without IDSG)."""
        return {"rfg_on_reference": ReferenceLandmarks()}

    @contextlib.contextmanager
    def baseline_scope(self, network: nn.Module) -> Iterator[None]:
        if not isinstance(network, ReferenceLandmarks):
            with super().baseline_scope(network):
                yield
            return
        previous = self.landmark_source
        self.landmark_source = "reference"
        try:
            yield
        finally:
            self.landmark_source = previous

    # ------------------------------------------------------------------ export
    def export_modules(self, image_size: int, deployable: bool = True) -> dict[str, ExportSpec]:
        """`rfg`: (drawing (3, S, S), source image (3, S, S)) -> face (3, S, S), all in [0, 1]."""
        module = (self.inference_generator if deployable else self.generator).eval()
        size = int(image_size)
        drawing = ExportInput("drawing", (3, size, size), 0.0, 1.0, description="DG landmark drawing, white on black")
        source = ExportInput("source_image", (3, size, size), 0.0, 1.0, description="RGB face crop of the source")
        what = "EMA RFG" if deployable and module is not self.generator else "RFG"
        # How to draw the input as the RFG was trained (src.datamodules.dg.dg_drawing): a deployer needs it.
        how = {"half_face": self.half_face, "drawing_supersample": self.drawing_supersample}
        how["drawing_line_width"] = self.drawing_line_width
        return {"rfg": ExportSpec(module, (drawing, source), ("image",), source=what, metadata={"drawing": how})}

    # ------------------------------------------------------------------ pictures
    def _row(self, batch: Batch, outputs: dict[str, Any], index: int) -> list[np.ndarray]:
        def rgb(t: torch.Tensor) -> np.ndarray:
            return (t[index].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

        return [rgb(batch["source_image"]), rgb(outputs["drawing"]), rgb(outputs["image"]), rgb(outputs["answer"])]

    def sample_grid(self, batch: Batch, outputs: dict[str, Any]) -> np.ndarray:
        from src.utils.visualize import make_grid

        rows = [self._row(batch, outputs, i) for i in range(outputs["image"].shape[0])]
        return make_grid(rows, col_labels=["source", "drawing", "output", "truth"])

    def report_samples(self, stage: str = "test") -> list[Any]:
        from src.eval.items import ImageGridSample

        samples = []
        for batch, outputs in self.eval_results.get(stage, {}).get("samples", []):
            for index in range(outputs["image"].shape[0]):
                name = str(batch["frame_id"][index]) if "frame_id" in batch else f"{stage}_{len(samples)}"
                labels = ("source", "drawing", "output", "truth")
                samples.append(ImageGridSample(name, list(zip(labels, self._row(batch, outputs, index)))))
        return samples
