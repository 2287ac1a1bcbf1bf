"""The differentiable shading behind L_recon and the re-rendered metric, against independent references."""

from __future__ import annotations

import numpy as np
import torch

from src.datamodules.dfdn import DFDNDataModule
from src.geometry.sh import irradiance_basis as numpy_irradiance_basis
from src.geometry.sh import sh_light
from src.models.components.dfdn_render import (
    displacement_slopes,
    fine_normals,
    irradiance_basis,
    normal_angle_deg,
    preprocess,
    shade_patch,
    tangent_normals,
)


def test_sh_basis_matches_the_numpy_geometry_module():
    rng = np.random.default_rng(0)
    n = rng.normal(size=(50, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    ours = irradiance_basis(torch.tensor(n, dtype=torch.float32).T.reshape(1, 3, 5, 10))
    reference = numpy_irradiance_basis(n).T.reshape(1, 9, 5, 10)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)


def test_slopes_are_numpy_gradients_in_mm_per_mm():
    rng = np.random.default_rng(1)
    d = rng.normal(size=(6, 7)).astype(np.float32)
    texel = torch.tensor([[0.5, 2.0]])
    du, dv = displacement_slopes(torch.tensor(d)[None, None], texel)
    dv_ref, du_ref = np.gradient(d)
    np.testing.assert_allclose(du[0, 0].numpy(), du_ref / 0.5, atol=1e-5)
    np.testing.assert_allclose(dv[0, 0].numpy(), dv_ref / 2.0, atol=1e-5)


def test_a_ramp_tilts_the_normal_by_its_slope_angle():
    """d = 0.3 mm per mm along u: the tangent-space normal leans by atan(0.3) against u; a flat patch keeps the
    proxy normal; the camera-space normal of a frontal proxy leans the same way (towards -x)."""
    cols = torch.arange(8, dtype=torch.float32) * 0.3
    ramp = cols.view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()
    texel = torch.tensor([[1.0, 1.0]])
    n = tangent_normals(ramp, texel)
    assert torch.allclose(n[0, :, 4, 4], torch.tensor([-0.3, 0.0, 1.0]) / np.sqrt(1.09), atol=1e-5)
    facing = torch.tensor([0.0, 0.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    flat = fine_normals(torch.zeros(1, 1, 8, 8), texel, facing)
    assert torch.allclose(flat, facing)
    bent = fine_normals(ramp, texel, facing)
    angle = normal_angle_deg(bent, facing)[0, 0, 4, 4]
    assert abs(float(angle) - np.degrees(np.arctan(0.3))) < 1e-3
    assert bent[0, 0, 4, 4] < 0


def test_true_displacement_explains_the_photo_better_than_none(details_root):
    """The appearance loss's premise on FaceWorld: shading the proxy with the TRUE displacement reproduces the
    input texture patches better than a flat surface or the flipped displacement (forehead lines)."""
    dm = DFDNDataModule(root=str(details_root), batch_size=64, val_fraction=0.0, regions=["forehead"])
    dm.setup()
    batch = next(iter(dm.test_dataloader()))
    raised = torch.tensor(["browraise" in f for f in batch["frame_id"]])
    batch = {k: v[raised] for k, v in batch.items() if isinstance(v, torch.Tensor)}
    mm = batch["displacement"] * batch["scale_mm"].view(-1, 1, 1, 1)

    def error(displacement_mm: torch.Tensor) -> float:
        image = shade_patch(displacement_mm, batch["texel_mm"], batch["proxy_normals"], batch["albedo"], batch["light"])
        return float((preprocess(image) - batch["texture"]).abs().mean())

    assert error(mm) < 0.93 * error(torch.zeros_like(mm))
    assert error(torch.zeros_like(mm)) < error(-mm)
    # Gradients reach the displacement.
    mm = mm.clone().requires_grad_(True)
    image = shade_patch(mm, batch["texel_mm"], batch["proxy_normals"], batch["albedo"], batch["light"])
    (preprocess(image) - batch["texture"]).abs().mean().backward()
    assert mm.grad is not None and mm.grad.abs().sum() > 0
    assert sh_light().shape == (9, 3)
