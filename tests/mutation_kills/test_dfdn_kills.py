"""DFDN's shading and error picture against values worked out by hand (src/models/components/dfdn_render.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

from src.geometry.sh import _A, _Y00
from src.models.components.dfdn_render import fine_normals, normal_angle_deg, shade_patch
from src.models.dfdn import DFDNModule
from src.utils.visualize import turbo


def test_a_flat_patch_under_ambient_light_is_linear_value_to_the_power_one_over_2_2() -> None:
    """Only the constant SH band lit: shading = A0 Y00 L0 everywhere, so the display value is
    (albedo A0 Y00 L0) ** (1 / 2.2) (the sRGB-like display gamma of the module docstring)."""
    light = torch.zeros(1, 9)
    light[0, 0] = 0.25 / (_A[0] * _Y00)  # linear value 0.25 at albedo 1
    albedo = torch.full((1, 1, 4, 4), 0.8)
    facing = torch.tensor([0.0, 0.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    image = shade_patch(torch.zeros(1, 1, 4, 4), torch.tensor([[1.0, 1.0]]), facing, albedo, light)
    assert torch.allclose(image, torch.full_like(image, 0.2 ** (1 / 2.2)), atol=1e-6)


def test_a_ramp_on_a_tilted_proxy_leans_the_normal_by_its_slope_angle() -> None:
    """The tangents are the camera axes projected onto the proxy's tangent plane (Gram-Schmidt), so a ramp of slope s
    along u leans the normal by atan(s) from the proxy normal, and the lean stays in the plane of x and the proxy
    normal. A frontal proxy (the earlier test) cannot tell e - (e.n) n from e + (e.n) n: here the proxy is tilted."""
    proxy = torch.tensor([0.6, 0.0, -0.8]).view(1, 3, 1, 1).expand(1, 3, 6, 6)
    ramp = (torch.arange(6, dtype=torch.float32) * 0.5).view(1, 1, 1, 6).expand(1, 1, 6, 6).contiguous()
    bent = fine_normals(ramp, torch.tensor([[1.0, 1.0]]), proxy)
    angle = float(normal_angle_deg(bent, proxy)[0, 0, 3, 3])
    assert abs(angle - math.degrees(math.atan(0.5))) < 1e-3
    tangent_u = np.array([0.8, 0.0, 0.6])  # x minus its component along n, normalised by hand
    expected = (np.array([0.6, 0.0, -0.8]) - 0.5 * tangent_u) / math.sqrt(1.25)
    np.testing.assert_allclose(bent[0, :, 3, 3].numpy(), expected, atol=1e-6)


def test_the_error_picture_is_on_the_truths_range() -> None:
    """|error| column: an error of half the truth's range is turbo(0.5), one of the whole range or more turbo(1)."""
    true = torch.tensor([0.0, 0.0, 4.0, 4.0]).view(1, 1, 2, 2)  # range 4
    prediction = true + torch.tensor([0.0, 2.0, 4.0, 9.0]).view(1, 1, 2, 2)
    batch = {"displacement": true, "texture": torch.zeros(1, 1, 2, 2)}
    outputs = {"displacement": prediction, "pca": true}
    views = dict(DFDNModule._views(None, batch, outputs, 0))  # type: ignore[arg-type]  # uses no model state
    expected = turbo(np.array([[0.0, 0.5], [1.0, 1.0]]))
    np.testing.assert_array_equal(views["|error|"], expected)
