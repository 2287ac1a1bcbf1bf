"""dfdn: DFDN facial detail synthesis: UV texture patch -> wrinkle displacement patch, one model per region.

Networks (src/models/components/dfdn_networks.py): per region (forehead, mouth) PDIM U-Net -> FC head -> fixed PCA
basis -> PDRM U-Net; a PatchGAN per region judges [displacement, texture]. The PCA basis (mean and K scaled
components per region) is fitted once from the training displacement patches (FITTED_STATISTICS; kept in the
checkpoint, so resume / eval / export reuse it).

Loss (the paper's): L_cGAN + lambda (L_scans + eta L_recon), lambda 100, eta 0.5, so the weight table is
gan 1, scans 100, recon 50:
    scans   L1 of the refined AND of the PCA displacement against the scanned (true) displacement
    recon   appearance: the input patch against albedo * SH shading of the proxy displaced along its normals
            (src/models/components/dfdn_render.py), both preprocessed alike ((p - mean) * 2); only patches that
            carry appearance data (FaceWorld's albedo, proxy normals, light) count
    gan     LSGAN on the region's PatchGAN
Schedule (the paper: geometry-only first, then alternating supervised and unsupervised steps) is `model.phases`.

Evaluation per patch: displacement MAE (mm), normal angular error (degrees, tangent-space normals of predicted
vs true displacement), re-rendered image error (8-bit levels: the patch shaded with the predicted vs the true
displacement, under the sample's light and albedo, or a fixed frontal light for data without them).
Baselines: zero displacement (a flat surface) and the trained model's PCA output alone.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from src.export.spec import ExportInput, ExportSpec
from src.geometry.sh import sh_light
from src.models.components.dfdn_networks import REGIONS, DFDNGenerator, PCAOnly, RegionExport, ZeroDisplacement
from src.models.components.dfdn_render import normal_angle_deg, preprocess, shade_patch, tangent_normals
from src.models.gan import Batch, GANModule
from src.models.system import LOWER
from src.utils.errors import UserError
from src.utils.visualize import make_grid, turbo

log = logging.getLogger(__name__)

# The re-rendered metric's light for data without its own: ambient 0.7 + a light from the upper right front.
DEFAULT_LIGHT = torch.tensor(sh_light(0.7, np.array([0.3, -0.5, -1.0]), 0.5).mean(axis=1), dtype=torch.float32)


def _fitted_names() -> tuple[str, ...]:
    return tuple(f"pca_{kind}_{region}" for region in REGIONS for kind in ("mean", "basis"))


class DFDNModule(GANModule):
    """DFDN (see the module docstring). Extra arguments over GANModule:

    pca_fit_patches: at most this many training patches per region fit the PCA basis (memory: patches x p^2).
    """

    GENERATOR_TERMS: ClassVar[tuple[str, ...]] = ("gan", "scans", "recon")
    ADVERSARIAL_TERMS: ClassVar[tuple[str, ...]] = ("gan",)
    DISCRIMINATOR_TERMS: ClassVar[tuple[str, ...]] = ("real", "fake")
    CRITERIA_FOR_TERMS: ClassVar[dict[str, tuple[str, ...]]] = {"gan": ("gan",), "real": ("gan",), "fake": ("gan",)}
    FITTED_STATISTICS: ClassVar[tuple[str, ...]] = _fitted_names()
    METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {
        "displacement_mae_mm": LOWER,
        "normal_error_deg": LOWER,
        "render_error": LOWER,
        "pca_displacement_mae_mm": LOWER,
    }
    HEADLINE_METRICS: ClassVar[tuple[str, ...]] = ("displacement_mae_mm", "normal_error_deg", "render_error")

    def __init__(self, *args: Any, pca_fit_patches: int = 8192, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.generator, DFDNGenerator) or set(self.generator.regions) != set(REGIONS):
            raise UserError(f"model.generator: DFDN needs a DFDNGenerator with the regions {list(REGIONS)}")
        if int(pca_fit_patches) < 2:
            raise UserError(f"model.pca_fit_patches must be >= 2, got {pca_fit_patches}")
        self.pca_fit_patches = int(pca_fit_patches)

    # The fitted statistics are the region nets' PCA buffers (they travel with the generator into exports).
    def __getattr__(self, name: str) -> Any:
        if name.startswith("pca_") and name in type(self).FITTED_STATISTICS:
            _, kind, region = name.split("_", 2)
            return getattr(self.generator.nets[region], f"pca_{kind}")
        return super().__getattr__(name)

    # ------------------------------------------------------------------ statistics
    def fit_statistics(self, train_batches: Any) -> dict[str, torch.Tensor]:
        """Per region: mean and the K leading principal components (scaled by their standard deviation) of up to
        pca_fit_patches training displacement patches."""
        patches: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(REGIONS))}
        counts = dict.fromkeys(patches, 0)
        for batch in train_batches:
            region = int(batch["region"][0])
            if counts[region] < self.pca_fit_patches:
                flat = batch["displacement"].flatten(1).double()[: self.pca_fit_patches - counts[region]]
                patches[region].append(flat)
                counts[region] += len(flat)
            if all(c >= self.pca_fit_patches for c in counts.values()):
                break
        values = {}
        for index, region in enumerate(REGIONS):
            net = self.generator.nets[region]
            k = net.num_components
            if counts[index] <= k:
                raise UserError(
                    f"dfdn: the training split has {counts[index]} {region} patches; fitting {k} PCA components "
                    "needs more (lower model.generator.num_components or add data)"
                )
            data = torch.cat(patches[index])
            mean = data.mean(0)
            _, singular, vt = torch.linalg.svd(data - mean, full_matrices=False)
            std = singular[:k] / np.sqrt(len(data) - 1)
            values[f"pca_mean_{region}"] = mean.float()
            values[f"pca_basis_{region}"] = (vt[:k].T * std).float()
            explained = float((singular[:k] ** 2).sum() / (singular**2).sum())
            log.info(f"dfdn: {region} PCA from {len(data)} patches, {k} components explain {explained:.1%}")
        return values

    # ------------------------------------------------------------------ forward
    @staticmethod
    def batch_region(batch: Batch) -> int:
        regions = batch["region"]
        region = int(regions[0])
        if bool((regions != region).any()):
            raise UserError("dfdn: a batch mixes regions; use the DFDN datamodule's region batches")
        return region

    def generate(self, batch: Batch, generator: nn.Module) -> dict[str, torch.Tensor]:
        """Each patch through its region's model (training batches hold one region; a sample grid may mix them)."""
        texture, regions = batch["texture"], batch["region"]
        present = [int(r) for r in torch.unique(regions)]
        if len(present) == 1:
            refined, pca = generator(texture, present[0])
            return {"displacement": refined, "pca": pca}
        refined, pca = torch.empty_like(texture), torch.empty_like(texture)
        for region in present:
            rows = (regions == region).nonzero(as_tuple=True)[0]
            refined[rows], pca[rows] = generator(texture[rows], region)
        return {"displacement": refined, "pca": pca}

    def _discriminate(self, batch: Batch, displacement: torch.Tensor) -> Any:
        return self.discriminator(torch.cat([displacement, batch["texture"]], 1), self.batch_region(batch))

    def render(self, batch: Batch, displacement: torch.Tensor, light: torch.Tensor | None = None) -> torch.Tensor:
        """(B,1,p,p) image in [0, 1] of the proxy displaced by `displacement` ([-1, 1] units)."""
        mm = displacement * batch["scale_mm"].view(-1, 1, 1, 1)
        light = batch["light"] if light is None else light
        return shade_patch(mm, batch["texel_mm"], batch["proxy_normals"], batch["albedo"], light)

    def generator_losses(self, batch: Batch, outputs: dict[str, torch.Tensor], terms: frozenset[str]) -> dict:
        losses: dict[str, torch.Tensor] = {}
        fake, true = outputs["displacement"], batch["displacement"]
        if "gan" in terms:
            losses["gan"] = self.criteria["gan"].generator_loss(self._discriminate(batch, fake))
        if "scans" in terms:
            losses["scans"] = (fake - true).abs().mean() + (outputs["pca"] - true).abs().mean()
        if "recon" in terms:
            per_patch = (preprocess(self.render(batch, fake)) - batch["texture"]).abs().flatten(1).mean(1)
            weight = batch["has_appearance"].to(per_patch)
            losses["recon"] = (per_patch * weight).sum() / weight.sum().clamp(min=1.0)
        return losses

    def discriminator_losses(self, batch: Batch, outputs: dict[str, torch.Tensor], terms: frozenset[str]) -> dict:
        losses = {}
        if "real" in terms:
            losses["real"] = self.criteria["gan"](self._discriminate(batch, batch["displacement"]), True)
        if "fake" in terms:
            losses["fake"] = self.criteria["gan"](self._discriminate(batch, outputs["displacement"]), False)
        return losses

    # ------------------------------------------------------------------ evaluation
    def sample_metrics(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        scale = batch["scale_mm"].view(-1, 1, 1, 1)
        pred, true = outputs["displacement"].float(), batch["displacement"].float()
        texel = batch["texel_mm"]
        angles = normal_angle_deg(tangent_normals(pred * scale, texel), tangent_normals(true * scale, texel))
        own = batch["has_appearance"].view(-1, 1)
        light = torch.where(own, batch["light"], DEFAULT_LIGHT.to(batch["light"]).expand_as(batch["light"]))
        rendered = (self.render(batch, pred, light) - self.render(batch, true, light)).abs() * 255.0
        return {
            "displacement_mae_mm": ((pred - true).abs() * scale).flatten(1).mean(1),
            "normal_error_deg": angles.flatten(1).mean(1),
            "render_error": rendered.flatten(1).mean(1),
            "pca_displacement_mae_mm": ((outputs["pca"].float() - true).abs() * scale).flatten(1).mean(1),
        }

    def baselines(self, datamodule: Any) -> dict[str, nn.Module]:
        """A flat surface, and the trained model's PCA output without the refiner."""
        return {"zero_displacement": ZeroDisplacement(), "pca_only": PCAOnly(self.inference_generator)}

    def export_modules(self, image_size: int, deployable: bool = True) -> dict[str, ExportSpec]:
        """One module per region: preprocessed texture patch -> (displacement, PCA displacement), [-1, 1] units."""
        generator = self.inference_generator if deployable else self.generator
        size = generator.patch_size
        texture = ExportInput(
            "texture", (1, size, size), -1.0, 1.0, description="(V / 255 - mean) * 2 of a UV texture patch"
        )
        specs = {}
        for region in REGIONS:
            module = RegionExport(generator.nets[region]).eval()
            specs[region] = ExportSpec(
                module,
                inputs=(texture,),
                outputs=("displacement", "pca_displacement"),
                source=f"{region} region model",
                metadata={"region": region, "patch_size": size, "displacement_encoding": "x in [-1, 1]"},
            )
        return specs

    # ------------------------------------------------------------------ pictures
    def _views(self, batch: Batch, outputs: dict[str, torch.Tensor], index: int) -> list[tuple[str, np.ndarray]]:
        def grey(x: torch.Tensor, low: float, high: float) -> np.ndarray:
            unit = (x.detach().float().cpu().numpy()[0] - low) / max(high - low, 1e-6)
            return np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)

        true = batch["displacement"][index]
        low, high = float(true.min()), float(true.max())
        error = (outputs["displacement"][index] - true).abs().float().cpu().numpy()[0]
        return [
            ("texture", grey(batch["texture"][index], -1.0, 1.0)),
            ("prediction", grey(outputs["displacement"][index], low, high)),
            ("PCA only", grey(outputs["pca"][index], low, high)),
            ("truth", grey(true, low, high)),
            ("|error|", turbo(np.clip(error / max(high - low, 1e-6), 0, 1))),
        ]

    def sample_grid(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> np.ndarray:
        """texture | prediction | PCA only | truth | |error|, one row per patch (displacements on the truth's range)."""
        rows = [[image for _, image in self._views(batch, outputs, i)] for i in range(outputs["displacement"].shape[0])]
        labels = [label for label, _ in self._views(batch, outputs, 0)]
        return make_grid(rows, col_labels=labels)

    def report_samples(self, stage: str = "test") -> list[Any]:
        from src.eval.items import ImageGridSample

        samples = []
        for batch, outputs in self.eval_results.get(stage, {}).get("samples", []):
            for index in range(outputs["displacement"].shape[0]):
                name = str(batch["frame_id"][index])
                samples.append(ImageGridSample(name=name, images=self._views(batch, outputs, index)))
        return samples
