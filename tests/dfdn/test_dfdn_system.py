"""The dfdn system: the PCA basis it fits against numpy's SVD, its losses and metrics against naive references,
its baselines and its two region exports."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from src.models.dfdn import DFDNModule

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = {"patch_size": 16, "pdim_downs": 4, "pdim_ngf": 4, "fc_hidden": [8], "num_components": 3, "pdrm_downs": 4,
        "pdrm_ngf": 4}  # fmt: skip


def build(**changes) -> DFDNModule:
    cfg = OmegaConf.load(CONF / "model" / "dfdn.yaml")
    cfg.generator = OmegaConf.merge(cfg.generator, TINY)
    cfg.discriminator.ndf = 4
    cfg.discriminator.n_layers = 1
    cfg.pca_fit_patches = 40
    return hydra.utils.instantiate(OmegaConf.merge(cfg, changes))


def batch_of(region: int, count: int, seed: int, appearance: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    rows = torch.linspace(-1, 1, 16).view(1, 1, 16, 1)
    amplitude = torch.rand(count, 1, 1, 1, generator=g)
    displacement = (amplitude * torch.sin(4 * rows) * 0.5 + 0.01 * torch.randn(count, 1, 16, 16, generator=g)).expand(
        count, 1, 16, 16
    )
    return {
        "texture": torch.randn(count, 1, 16, 16, generator=g),
        "displacement": displacement.contiguous(),
        "region": torch.full((count,), region),
        "scale_mm": torch.full((count,), 2.0),
        "texel_mm": torch.full((count, 2), 0.5),
        "has_appearance": torch.full((count,), appearance),
        "albedo": torch.full((count, 1, 16, 16), 0.5),
        "proxy_normals": torch.tensor([0.0, 0.0, -1.0]).view(1, 3, 1, 1).expand(count, 3, 16, 16).contiguous(),
        "light": torch.tensor([2.0, 0, -0.5, 0, 0, 0, 0, 0, 0]).expand(count, 9).contiguous(),
        "frame_id": [f"p{i}" for i in range(count)],
    }


def test_fitted_pca_is_numpys_svd_and_lands_in_the_region_nets():
    module = build()
    batches = [batch_of(0, 10, 1), batch_of(1, 10, 2), batch_of(0, 10, 3), batch_of(1, 10, 4), batch_of(0, 30, 5)]
    values = module.fit_statistics(batches)
    forehead = torch.cat([b["displacement"] for b in batches if b["region"][0] == 0]).flatten(1)[:40].double().numpy()
    mean = forehead.mean(0)
    _, s, vt = np.linalg.svd(forehead - mean, full_matrices=False)
    np.testing.assert_allclose(values["pca_mean_forehead"].numpy(), mean, atol=1e-6)
    basis = values["pca_basis_forehead"].double().numpy()
    for k in range(3):  # each column is a principal direction scaled by its std (sign free)
        expected = vt[k] * s[k] / np.sqrt(len(forehead) - 1)
        assert min(np.abs(basis[:, k] - expected).max(), np.abs(basis[:, k] + expected).max()) < 1e-5
    for name, value in values.items():
        getattr(module, name).copy_(value)
    torch.testing.assert_close(module.generator.nets["forehead"].pca_basis, values["pca_basis_forehead"])
    with pytest.raises(Exception, match="has 10 mouth patches"):
        build(pca_fit_patches=1000, generator={"num_components": 12}).fit_statistics(
            [batch_of(0, 20, 1), batch_of(1, 10, 2)]
        )


def test_losses_and_metrics_against_naive_references():
    module = build().eval()
    batch = batch_of(0, 4, 7)
    batch["has_appearance"][2:] = False
    with torch.no_grad():
        outputs = module.generate(batch, module.generator)
        losses = module.generator_losses(batch, outputs, frozenset({"scans", "recon"}))
        metrics = module.sample_metrics(batch, outputs)
        same = module.sample_metrics(batch, {"displacement": batch["displacement"], "pca": batch["displacement"]})
    pred, true = outputs["displacement"].numpy(), batch["displacement"].numpy()
    scans = np.abs(pred - true).mean() + np.abs(outputs["pca"].numpy() - true).mean()
    assert abs(float(losses["scans"]) - scans) < 1e-5
    rendered = module.render(batch, outputs["displacement"])
    per_patch = (
        ((rendered - rendered.mean(dim=(1, 2, 3), keepdim=True)) * 2 - batch["texture"]).abs().mean(dim=(1, 2, 3))
    )
    assert abs(float(losses["recon"]) - float(per_patch[:2].mean())) < 1e-5  # only patches with appearance count
    np.testing.assert_allclose(metrics["displacement_mae_mm"].numpy(), np.abs(pred - true).mean(axis=(1, 2, 3)) * 2.0,
                               rtol=1e-5)  # fmt: skip
    assert torch.all(same["displacement_mae_mm"] == 0) and torch.all(same["render_error"] == 0)
    assert float(same["normal_error_deg"].max()) < 0.05
    # A flat prediction against a ramp of slope 0.2 mm per mm: atan(0.2) everywhere.
    ramp = batch_of(0, 1, 8)
    ramp["displacement"] = (torch.arange(16.0) * 0.1 / 2.0).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    flat = torch.zeros(1, 1, 16, 16)
    error = module.sample_metrics(ramp, {"displacement": flat, "pca": flat})["normal_error_deg"]
    assert abs(float(error) - np.degrees(np.arctan(0.2))) < 1e-3


def test_baselines_and_region_exports():
    module = build().eval()
    for region in ("forehead", "mouth"):
        module.generator.nets[region].pca_basis.normal_(0, 0.1)
    baselines = module.baselines(None)
    batch = batch_of(1, 3, 9)
    with torch.no_grad():
        zero = baselines["zero_displacement"](batch["texture"], 1)[0]
        pca_only = baselines["pca_only"](batch["texture"], 1)[0]
        trained = module.generate(batch, module.generator)
    assert torch.count_nonzero(zero) == 0
    torch.testing.assert_close(pca_only, trained["pca"])
    specs = module.export_modules(16)
    assert set(specs) == {"forehead", "mouth"}
    with torch.no_grad():
        refined, pca = specs["mouth"].module(batch["texture"])
    torch.testing.assert_close(refined, trained["displacement"])
    torch.testing.assert_close(pca, trained["pca"])
    assert specs["mouth"].inputs[0].shape == (1, 16, 16) and specs["mouth"].outputs == (
        "displacement",
        "pca_displacement",
    )
    mixed = {k: (torch.cat([v, v]) if isinstance(v, torch.Tensor) else v + v) for k, v in batch.items()}
    mixed["region"] = torch.tensor([1, 0, 1, 0, 1, 0])
    with torch.no_grad():
        routed = module.generate(mixed, module.generator)["displacement"]
        for region in (0, 1):
            rows = mixed["region"] == region
            torch.testing.assert_close(routed[rows], module.generator(mixed["texture"][rows], region)[0])
