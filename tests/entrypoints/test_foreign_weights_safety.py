"""Foreign-weight loaders (pix2pix importer, torchvision backbones, LPIPS heads, VGG-Face) refuse a file that would
run code when unpickled, with one CheckpointError line naming the file; the code never runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from src.utils.errors import CheckpointError


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _pix2pix(path: Path) -> None:
    from src.models.components.importers import load_state_dict_file

    load_state_dict_file(path, what="pix2pix generator")


def _backbone(path: Path) -> None:
    from src.models.components.backbones import load_backbone_weights

    load_backbone_weights(nn.Sequential(nn.Conv2d(3, 4, 3)), path, arch="vgg19")


def _lpips_heads(path: Path) -> None:
    from src.losses.lpips import LPIPS

    LPIPS(backbone_weights="random", head_weights=str(path))


def _vgg_face(path: Path) -> None:
    from src.models.components.dg_idsg import VGGFaceEncoder

    VGGFaceEncoder().load_vgg_face(path)


@pytest.mark.parametrize("load", [_pix2pix, _backbone, _lpips_heads, _vgg_face], ids=lambda f: f.__name__.strip("_"))
def test_hostile_weights_are_refused_before_any_code_runs(load: Callable[[Path], None], tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "weights.pth"
    torch.save({"features.0.weight": torch.ones(4, 3, 3, 3), "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "system" in message, message
    assert not marker.exists()
