"""Differentiable shading of displacement patches: DFDN's appearance loss and the re-rendered image metric.

The fine geometry is the proxy surface moved along its normal by the displacement, P_fine = P_proxy + d * N_proxy.
Its normal follows from the displacement's slopes along the UV axes (mm per mm, through the texel size):

    N_fine = normalize(N_proxy - dd/du * T_u - dd/dv * T_v)

with T_u, T_v the unit tangents of the UV axes. DFDN's photos are frontal and their UV's u runs along the
image's x and v along y, so the tangents are the camera's x and y axes projected onto the proxy's tangent plane
(exact for a frontal face; the sign convention of FaceWorld's own bump mapping). The shading is second-order
spherical harmonics (torch twin of src.geometry.sh: the same basis, order and clamped-cosine factors), the image
albedo * shading in display gamma, as the texture's V channel holds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.geometry.sh import _A, _Y00, _Y1, _Y2, _Y20, _Y22

GAMMA = 2.2
_FACTORS = (_A[0], _A[1], _A[1], _A[1], _A[2], _A[2], _A[2], _A[2], _A[2])


def irradiance_basis(normals: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) unit normals -> (B,9,H,W): shading = sum_k basis_k * L_k (src.geometry.sh.irradiance_basis)."""
    x, y, z = normals[:, 0], normals[:, 1], normals[:, 2]
    terms = (
        torch.full_like(x, _Y00),
        _Y1 * y,
        _Y1 * z,
        _Y1 * x,
        _Y2 * x * y,
        _Y2 * y * z,
        _Y20 * (3.0 * z * z - 1.0),
        _Y2 * x * z,
        _Y22 * (x * x - y * y),
    )
    return torch.stack([t * f for t, f in zip(terms, _FACTORS, strict=True)], dim=1)


def displacement_slopes(displacement_mm: torch.Tensor, texel_mm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,1,H,W) mm -> slopes dd/du, dd/dv (mm per mm) by central differences (one-sided at the border).

    texel_mm: (B,2) mm per texel along u (columns) and v (rows)."""
    padded = F.pad(displacement_mm, (1, 1, 1, 1), mode="replicate")
    du = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) / 2.0
    dv = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) / 2.0
    # Replicate padding halves the border difference: undo it so the border slope is the one-sided one.
    du[..., 0] *= 2.0
    du[..., -1] *= 2.0
    dv[..., 0, :] *= 2.0
    dv[..., -1, :] *= 2.0
    return du / texel_mm[:, 0].view(-1, 1, 1, 1), dv / texel_mm[:, 1].view(-1, 1, 1, 1)


def tangent_normals(displacement_mm: torch.Tensor, texel_mm: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) unit normals of the displaced surface in tangent space (x along u, y along v, z out)."""
    du, dv = displacement_slopes(displacement_mm, texel_mm)
    return F.normalize(torch.cat([-du, -dv, torch.ones_like(du)], 1), dim=1)


def fine_normals(displacement_mm: torch.Tensor, texel_mm: torch.Tensor, proxy_normals: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) camera-space normals of P_proxy + d * N_proxy (see the module docstring)."""
    n = F.normalize(proxy_normals, dim=1)
    axes = torch.eye(3, dtype=n.dtype, device=n.device)
    tangents = []
    for axis in (axes[0], axes[1]):
        e = axis.view(1, 3, 1, 1)
        tangents.append(F.normalize(e - (e * n).sum(1, keepdim=True) * n, dim=1))
    du, dv = displacement_slopes(displacement_mm, texel_mm)
    # Camera space has the outward normal facing the camera (-z): the outward bump tilts against the slope.
    return F.normalize(n - du * tangents[0] - dv * tangents[1], dim=1)


def shade_patch(
    displacement_mm: torch.Tensor,
    texel_mm: torch.Tensor,
    proxy_normals: torch.Tensor,
    albedo: torch.Tensor,
    light: torch.Tensor,
) -> torch.Tensor:
    """(B,1,H,W) image in [0, 1] (display gamma): albedo * SH shading of the displaced proxy.

    albedo: (B,1,H,W) linear; light: (B,9) SH coefficients (one colour)."""
    normals = fine_normals(displacement_mm, texel_mm, proxy_normals)
    shading = (irradiance_basis(normals) * light.view(-1, 9, 1, 1)).sum(1, keepdim=True)
    linear = (albedo * shading).clamp(1e-6, 1.0)
    return linear ** (1.0 / GAMMA)


def preprocess(image: torch.Tensor) -> torch.Tensor:
    """The network input's preprocessing on a [0, 1] image: (p - mean(p)) * 2 per patch."""
    return (image - image.mean(dim=(1, 2, 3), keepdim=True)) * 2.0


def normal_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel angle (B,1,H,W) in degrees between two unit normal maps (B,3,H,W)."""
    cosine = (a * b).sum(1, keepdim=True).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cosine))
