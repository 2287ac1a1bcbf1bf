"""The preflight's monitor check on a system with fitted statistics: at preflight they are not fitted yet (that
happens at fit start), so the check validates a copy marked fitted; a right monitor passes, a wrong one is one
UserError naming it, and the real model stays unfitted (fit start still fits it from the training split)."""

from __future__ import annotations

import pytest
import torch
from base_toy_system import ToySequences, ToySequenceSystem, toy_config
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from src.utils.errors import UserError
from src.utils.task import _check_monitors


def _setup(metric: str) -> tuple:
    torch.manual_seed(0)
    module = ToySequenceSystem(**toy_config())
    cfg = OmegaConf.create({"monitor": metric, "callbacks": {"ckpt": {"_target_": "x", "monitor": metric}}})
    return cfg, module, DataLoader(ToySequences(4, seed=1), batch_size=2)


def test_monitor_of_an_unfitted_system_is_checked_without_fitting_it() -> None:
    cfg, module, loader = _setup("val/l1")
    before = {k: v.clone() for k, v in module.state_dict().items()}
    _check_monitors(cfg, module, loader)
    assert not bool(module.statistics_fitted)
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_wrong_monitor_of_an_unfitted_system_is_one_error() -> None:
    cfg, module, loader = _setup("val/psnr")
    with pytest.raises(UserError, match=r"monitor='val/psnr' is not logged by ToySequenceSystem.*val/l1"):
        _check_monitors(cfg, module, loader)
