"""The export check is strict: a TorchScript graph that differs from eager PyTorch by more than 1e-4 is refused.

The module below computes something else while it is being traced than when it runs eagerly (the kind of drift a
shape or a flag baked into a traced graph causes), by a known amount: the check must see it, and the file must
not be left behind. A loosened tolerance (1.0) lets a wrong graph ship; this test fails then.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from src.export import ExportInput, ExportSpec
from src.export.generator import ExportError, export_modules


class DriftsWhenTraced(nn.Module):
    def __init__(self, drift: float) -> None:
        super().__init__()
        self.drift = drift
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = torch.tanh(image * self.scale)
        return out + self.drift if torch.jit.is_tracing() else out


def spec(drift: float) -> dict[str, ExportSpec]:
    return {"g": ExportSpec(DriftsWhenTraced(drift), [ExportInput("image", (1, 8, 8))], ("rgbd",))}


def test_a_graph_off_by_a_hundredth_is_refused_and_not_written(tmp_path: Path) -> None:
    expected = r"TorchScript export differs from eager PyTorch by 0\.01 \(> tolerance 0\.0001\)"
    with pytest.raises(ExportError, match=expected):
        export_modules(spec(1e-2), tmp_path, formats=("torchscript",))
    assert not (tmp_path / "g.torchscript.pt").exists()


def test_a_graph_within_the_tolerance_is_written_with_its_difference(tmp_path: Path) -> None:
    manifest = export_modules(spec(3e-5), tmp_path, formats=("torchscript",))
    entry = manifest["modules"]["g"]["formats"]["torchscript"]
    assert entry["atol"] == 1e-4 and entry["max_abs_diff"] == pytest.approx(3e-5, rel=1e-2)
    assert (tmp_path / "g.torchscript.pt").is_file()
    with pytest.raises(ExportError, match=r"> tolerance 1e-05"):
        export_modules(spec(3e-5), tmp_path / "strict", formats=("torchscript",), atol=1e-5)
