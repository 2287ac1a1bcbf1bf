"""head2head: video head reenactment (Koujan, Doukas et al. 2020), vid2vid-style, on the shared base.

Per frame t the generator sees the conditioning of frames t-2..t (NMFC + eye-gaze image: 3 x 6 channels) and its
own two previous outputs (detached; zeros before the first frame), the original's sequential loop. Sequences run
on the base's chunk path (SEQUENCE_KEYS, model.chunk_frames): each chunk is one round of updates, and the carry
holds the last conditioning frames, the last generated frames and the detached real / generated history the
temporal discriminators need, so no graph reaches into an earlier chunk. At the start of a sequence the
conditioning is padded with copies of its first frame, so every frame gets an output.

Discriminators are the base's named tables: `image` (9 channels: current conditioning + frame), `mouth` (the same
on mouth crops), optional `eyes`, and `temporal_<skip>` (3 frames skipped by <skip> + the 2 reference flows / 20:
13 channels). A temporal table whose window does not fit in the frames seen so far contributes 0 for that chunk.
G terms: `<table>/gan`, `<table>/fm` (LSGAN, feature matching), `vgg`, `warp` (masked L1 between the frame and the
previous generated frame warped by the real frames' flow, mask = flow confidence). The reference flow comes from
`flow_estimator` (FlowNet2 with the original weights, or the light DIS estimator), a frozen helper of the base
(never trained, kept out of the state dict).

Sequence-length curriculum: in training the batch is cut to `sequence_length.start * 2 ** (epoch //
sequence_length.double_every)` frames (a random window), as the original's n_frames_total.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from src.export.spec import ExportInput, ExportSpec
from src.models.components.flownet2 import FlowEstimator, build_flow_estimator
from src.models.components.flownet2_ops import resample2d
from src.models.components.head2head_parts import (
    NearestTrainingFrame,
    crop_around,
    crop_size,
    eye_centers,
    keep_history,
    mouth_centers,
    sequence_apd,
    sequence_flicker,
    sequence_mapd,
    sequence_mouth_apd,
    skipped_windows,
)
from src.models.components.head2head_refit import REFIT_DISTANCES, FaceRefitter, refit_distances
from src.models.gan import Batch, GANModule
from src.models.system import LOWER
from src.utils.errors import UserError
from src.utils.visualize import make_grid, unit_to_uint8

log = logging.getLogger(__name__)

TEMPORAL = re.compile(r"^temporal_(\d+)$")
CROPPED_TABLES = ("mouth", "eyes")
FLOW_SCALE = 20.0  # the temporal D sees flow / 20, as the original


def _every_training_frame(datamodule: Any) -> Iterator[dict[str, Any]]:
    """Every frame of every training sequence, one sequence at a time (the Head2Head datamodule's datasets take
    (sequence, start, length) keys); other datamodules: their training loader (clips of the curriculum length)."""
    dataset = getattr(datamodule, "datasets", {}).get("train") if hasattr(datamodule, "datasets") else None
    records = getattr(dataset, "records", None)
    if records is None:
        yield from datamodule.train_dataloader()
        return
    for index, record in enumerate(records):
        item = dataset[(index, 0, len(record))]
        yield {key: item[key].unsqueeze(0) for key in ("nmfc", "image")}


class Head2HeadModule(GANModule):
    """See the module docstring. Extra arguments over GANModule:

    flow_estimator: `_target_` config of a src.models.components.flownet2.FlowEstimator (reference flow).
    n_frames_d: frames per temporal-D window (3).
    sequence_length: {start, double_every, max} of the training curriculum, or None (whole sequences).
    eval_flicker: compute the flicker metric in val / test (needs the flow estimator on the real frames).
    eval_refit: compute the expression / pose / identity distances by re-fitting the 3DMM to real and generated
        frames in val / test (mediapipe landmarks + src.geometry.sequence_fitting; head2head_refit.py).
    """

    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = ("vgg", "warp", "l1")
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "gan": ("gan",),
        "real": ("gan",),
        "fake": ("gan",),
        "fm": ("fm",),
        "vgg": ("vgg",),
        "l1": ("l1",),
    }
    SEQUENCE_KEYS: ClassVar[tuple[str, ...]] = ("nmfc", "eyes", "image", "landmarks", "frame_index")
    METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {
        "apd": LOWER,
        "mapd": LOWER,
        "mouth_apd": LOWER,
        "flicker": LOWER,
        "empty_nmfc_frames": LOWER,
        "expression_distance": LOWER,
        "pose_distance_deg": LOWER,
        "identity_distance": LOWER,
        "refit_missing_frames": LOWER,
    }
    HEADLINE_METRICS: ClassVar[tuple[str, ...]] = ("apd", "mapd", "mouth_apd", "flicker", *REFIT_DISTANCES)
    SUBSET_METRICS: ClassVar[tuple[str, ...]] = REFIT_DISTANCES  # clips where both videos have faces to fit
    PROGRESS_BAR_METRIC: ClassVar[str | None] = "apd"

    def __init__(
        self,
        *args: Any,
        flow_estimator: Mapping | FlowEstimator | None = None,
        n_frames_d: int = 3,
        sequence_length: Mapping[str, Any] | None = None,
        eval_flicker: bool = True,
        eval_refit: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        generator = self.generator
        for attribute in ("n_frames", "input_nc", "output_nc"):
            if not hasattr(generator, attribute):
                raise UserError(f"model.generator: head2head needs a sequential generator with `{attribute}`")
        self.n_frames_g = int(generator.n_frames)
        self.n_frames_d = int(n_frames_d)
        self.temporal_skips: dict[str, int] = {}
        for name in self.discriminator_tables:
            match = TEMPORAL.match(name)
            if match:
                self.temporal_skips[name] = int(match.group(1))
            elif name not in ("image", *CROPPED_TABLES):
                raise UserError(
                    f"model.discriminators.{name}: head2head knows image, mouth, eyes and temporal_<skip> tables"
                )
        self.history_frames = max([s * (self.n_frames_d - 1) for s in self.temporal_skips.values()], default=0)
        self.curriculum = self._parse_curriculum(sequence_length)
        self.eval_flicker = bool(eval_flicker)
        self.refitter = FaceRefitter() if eval_refit else None
        needs_flow = bool(self.temporal_skips) or "warp" in self._active_generator_terms() or self.eval_flicker
        if needs_flow and flow_estimator is None:
            raise UserError("model.flow_estimator is required (warp loss, temporal discriminators or flicker)")
        estimator = build_flow_estimator(flow_estimator) if flow_estimator is not None else None
        # frozen: FlowNet2's 620 MB stay out of every checkpoint and optimizer, and it never trains
        self.add_frozen_module("flow_estimator", estimator)

    @staticmethod
    def _parse_curriculum(spec: Mapping[str, Any] | None) -> dict[str, int | None] | None:
        if not spec:
            return None
        unknown = sorted(set(spec) - {"start", "double_every", "max"})
        if unknown:
            raise UserError(f"model.sequence_length: unknown key(s) {unknown}; allowed: start, double_every, max")
        start, every = spec.get("start"), spec.get("double_every")
        if not isinstance(start, int) or start < 1 or not isinstance(every, int) or every < 1:
            raise UserError(f"model.sequence_length: start and double_every must be integers >= 1, got {dict(spec)}")
        return {"start": start, "double_every": every, "max": spec.get("max")}

    def _active_generator_terms(self) -> set[str]:
        return {t for u in self.update_specs for t, w in u.loss_weights.items() if w}

    def sequence_length(self, epoch: int) -> int | None:
        """Training frames per sequence at `epoch` (None: whole sequences)."""
        if self.curriculum is None:
            return None
        length = self.curriculum["start"] * 2 ** (epoch // self.curriculum["double_every"])
        return min(length, self.curriculum["max"]) if self.curriculum["max"] else length

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        length = self.sequence_length(self.current_epoch)
        total = int(batch["nmfc"].shape[1])
        if length is not None and total > length:
            start = int(torch.randint(0, total - length + 1, ()).item())
            batch = {k: v[:, start : start + length] if k in self.SEQUENCE_KEYS else v for k, v in batch.items()}
        super().training_step(batch, batch_idx)

    # ------------------------------------------------------------------ forward
    @staticmethod
    def conditioning_frames(batch: Batch) -> torch.Tensor:
        """(B, T, 6, H, W): NMFC + eye-gaze image of every frame."""
        return torch.cat([batch["nmfc"], batch["eyes"]], 2)

    def generate(self, batch: Batch, generator: nn.Module) -> dict[str, Any]:
        conditioning = self.conditioning_frames(batch)
        carry = batch.get("carry")
        past = self.n_frames_g - 1
        batch_size, length = conditioning.shape[:2]
        height, width = conditioning.shape[-2:]
        if carry is None:
            past_conditioning = conditioning[:, :1].expand(-1, past, -1, -1, -1)
            previous = conditioning.new_zeros(batch_size, past, 3, height, width)
        else:
            past_conditioning, previous = carry["conditioning"], carry["fakes"]
        window = torch.cat([past_conditioning, conditioning], 1)
        frames = []
        for t in range(length):
            frame = generator(window[:, t : t + self.n_frames_g].flatten(1, 2), previous.detach().flatten(1, 2))
            frames.append(frame)
            previous = torch.cat([previous[:, 1:], frame.unsqueeze(1)], 1)
        fakes = torch.stack(frames, 1)
        next_carry: dict[str, Any] = {"conditioning": window[:, -past:], "fakes": previous}
        outputs: dict[str, Any] = {"frames": fakes}
        if self.training:
            self._training_targets(batch, carry, fakes, outputs, next_carry)
        outputs["carry"] = next_carry
        return outputs

    def _training_targets(
        self, batch: Batch, carry: Any, fakes: torch.Tensor, outputs: dict[str, Any], next_carry: dict[str, Any]
    ) -> None:
        """Reference flows + confidence, the warp targets and the temporal windows of this chunk (see docstring)."""
        real = batch["image"]
        last_real = carry.get("last_real") if carry else None
        last_fake = carry.get("last_fake") if carry else None
        estimator = self.flow_estimator
        if estimator is not None and "warp" in self._active_generator_terms():
            reals = real if last_real is None else torch.cat([last_real, real], 1)
            # a one-frame first chunk (chunk_frames 1) has no frame pair yet: empty flow, its frame is masked below
            flow, confidence = estimator(reals[:, 1:], reals[:, :-1])
            previous_fakes = fakes[:, :-1] if last_fake is None else torch.cat([last_fake, fakes[:, :-1]], 1)
            if last_real is None:  # the first frame of a sequence has no previous frame: masked out
                first = (reals.shape[0], 1, 1, *reals.shape[-2:])
                flow = torch.cat([reals.new_zeros(first).expand(-1, -1, 2, -1, -1), flow], 1)
                confidence = torch.cat([reals.new_zeros(first), confidence], 1)
                previous_fakes = torch.cat([torch.zeros_like(fakes[:, :1]), previous_fakes], 1)
            warped = resample2d(previous_fakes.detach().flatten(0, 1), flow.flatten(0, 1)).reshape(fakes.shape)
            outputs["warp_target"], outputs["warp_mask"] = warped, confidence
        next_carry["last_real"], next_carry["last_fake"] = real[:, -1:], fakes[:, -1:].detach()
        if not self.temporal_skips:
            return
        history_real = carry.get("real_history") if carry else None
        history_fake = carry.get("fake_history") if carry else None
        temporal: dict[str, Any] = {}
        joined_real = joined_fake = None
        for name, skip in self.temporal_skips.items():
            real_windows, joined_real = skipped_windows(history_real, real, skip, self.n_frames_d)
            fake_windows, joined_fake = skipped_windows(history_fake, fakes, skip, self.n_frames_d)
            if real_windows is None or estimator is None:
                temporal[name] = None
                continue
            flow, _ = estimator(real_windows[:, 1:], real_windows[:, :-1])
            flows = flow.flatten(1, 2) / FLOW_SCALE
            temporal[name] = (
                torch.cat([real_windows.flatten(1, 2), flows], 1),
                torch.cat([fake_windows.flatten(1, 2), flows], 1),
            )
        outputs["temporal"] = temporal
        next_carry["real_history"] = keep_history(joined_real, self.history_frames)
        next_carry["fake_history"] = keep_history(joined_fake, self.history_frames)

    def continues_stream(self, previous: Batch, batch: Batch) -> bool:
        """An evaluation window continues the previous one when it shows the same sequences from the next frame
        numbers on: the base then starts it from that window's carry (a video streamed in windows is generated
        exactly as one long sequence)."""
        if "frame_index" not in batch:
            return False
        first, last = batch["frame_index"][:, 0], previous["frame_index"][:, -1]
        same = list(previous.get("sequence", [])) == list(batch.get("sequence", [])) and len(first) == len(last)
        return same and bool((first.to(last.device) == last + 1).all())

    # ------------------------------------------------------------------ discriminators and losses
    def discriminator_inputs(self, batch: Batch, outputs: dict[str, Any], name: str) -> tuple[Any, Any] | None:
        if name in self.temporal_skips:  # None (the base scores 0) while the frames seen so far cannot fill a window
            return (outputs.get("temporal") or {}).get(name)
        conditioning = self.conditioning_frames(batch).flatten(0, 1)
        real = torch.cat([conditioning, batch["image"].flatten(0, 1)], 1)
        fake = torch.cat([conditioning, outputs["frames"].flatten(0, 1)], 1)
        if name == "image":
            return real, fake
        landmarks = batch["landmarks"].flatten(0, 1).float()
        side = crop_size(real.shape[-1])
        if name == "mouth":
            centers, height, width = mouth_centers(landmarks), side, side
        else:
            centers, height, width = eye_centers(landmarks), side, min(2 * side, real.shape[-1])
        return crop_around(real, centers, height, width), crop_around(fake, centers, height, width)

    def generator_losses(self, batch: Batch, outputs: dict[str, Any], terms: frozenset[str]) -> dict:
        losses = self.adversarial_losses(batch, outputs, terms)
        fake, real = outputs["frames"].flatten(0, 1), batch["image"].flatten(0, 1)
        if "vgg" in terms:
            losses["vgg"] = self.criteria["vgg"](fake, real)
        if "l1" in terms:
            losses["l1"] = self.criteria["l1"](fake, real)
        if "warp" in terms:
            mask = outputs["warp_mask"].flatten(0, 1)
            target = outputs["warp_target"].flatten(0, 1)
            # the original's MaskedL1Loss: L1(fake * mask, target * mask), averaged over every element
            losses["warp"] = (fake * mask - target * mask).abs().mean()
        return losses

    # ------------------------------------------------------------------ evaluation
    def sample_metrics(self, batch: Batch, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        fake, real = outputs["frames"].float(), batch["image"].float()
        mapd, empty = sequence_mapd(fake, real, batch["nmfc"])
        metrics = {
            "apd": sequence_apd(fake, real),
            "mapd": mapd,
            "mouth_apd": sequence_mouth_apd(fake, real, batch["landmarks"]),
            "empty_nmfc_frames": empty,
        }
        if self.eval_flicker and self.flow_estimator is not None:
            metrics["flicker"] = sequence_flicker(fake, real, self.flow_estimator)
        if self.refitter is not None:
            metrics.update(refit_distances(fake, real, self.refitter))
        return metrics

    def baselines(self, datamodule: Any) -> dict[str, nn.Module]:
        """The nearest training frame by NMFC (a trained model must beat it on APD and flicker)."""
        return {"nearest_training_frame": NearestTrainingFrame.from_batches(_every_training_frame(datamodule))}

    def export_modules(self, image_size: int, deployable: bool = True) -> dict[str, ExportSpec]:
        """One chunk step of the generator: conditioning of n_frames frames + the previous generated frames in."""
        generator = self.export_model() if deployable else self.generator.eval()
        uses_ema = deployable and self.inference_generator is not self.generator
        size = int(image_size)
        inputs = (
            ExportInput(
                "conditioning",
                (int(self.generator.conditioning_channels), size, size),
                description=f"{self.n_frames_g} frames oldest first, each NMFC (3) + eye-gaze image (3), in [-1, 1]",
            ),
            ExportInput(
                "previous",
                (int(self.generator.previous_channels), size, size),
                description=f"the {self.n_frames_g - 1} previous generated frames oldest first (zeros at the start)",
            ),
        )
        source = ("export_model() (EMA generator)" if uses_ema else "export_model()") if deployable else "generator"
        metadata = {"n_frames": self.n_frames_g, "output_range": [-1, 1]}
        return {"generator": ExportSpec(generator, inputs, outputs=("frame",), source=source, metadata=metadata)}

    # ------------------------------------------------------------------ pictures
    def sample_grid(self, batch: Batch, outputs: dict[str, Any]) -> np.ndarray:
        """NMFC | eye gaze | prediction | truth for the first sequence's first, middle and last frame."""
        frames = outputs["frames"][0]
        rows, names = [], []
        for t in sorted({0, frames.shape[0] // 2, frames.shape[0] - 1}):
            rows.append(
                [
                    unit_to_uint8(batch["nmfc"][0, t]),
                    unit_to_uint8(batch["eyes"][0, t]),
                    unit_to_uint8(frames[t]),
                    unit_to_uint8(batch["image"][0, t]),
                ]
            )
            names.append(f"t={t}")
        return make_grid(rows, col_labels=["NMFC", "eye gaze", "prediction", "truth"], row_labels=names)

    def report_samples(self, stage: str = "test") -> list[Any]:
        from src.eval.items import VideoSample

        samples = []
        for batch, outputs in self.eval_results.get(stage, {}).get("samples", []):
            for index in range(outputs["frames"].shape[0]):
                name = str(batch["sequence"][index]) if "sequence" in batch else f"{stage}_{len(samples)}"

                def video(tensor: torch.Tensor) -> np.ndarray:
                    return np.stack([unit_to_uint8(frame) for frame in tensor])

                videos = [
                    ("NMFC", video(batch["nmfc"][index])),
                    ("prediction", video(outputs["frames"][index])),
                    ("truth", video(batch["image"][index])),
                ]
                samples.append(VideoSample(name=name, videos=videos))
        return samples
