"""Learning-rate policies of the original systems, stepped once per epoch by the base."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler


class LinearDecayLR(LRScheduler):
    """pix2pix 'linear' policy: the base LR for `n_epochs`, then linear decay over `n_epochs_decay` epochs.

    Stepped once per epoch. During epoch e (1-based) the factor is 1 - max(0, e - n_epochs) / (n_epochs_decay + 1),
    exactly the original's lambda with epoch_count = 1: it never reaches 0 (last epoch: 1 / (n_epochs_decay + 1)).
    Past the schedule (a resumed run given more epochs) the last factor holds; the original's lambda went negative.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, n_epochs: int, n_epochs_decay: int, last_epoch: int = -1):
        if n_epochs < 0 or n_epochs_decay < 0:
            raise ValueError(f"LinearDecayLR: epochs must be >= 0, got {n_epochs} + {n_epochs_decay}")
        self.n_epochs = n_epochs
        self.n_epochs_decay = n_epochs_decay
        super().__init__(optimizer, last_epoch)

    def factor(self, completed_epochs: int) -> float:
        decayed = min(max(0, completed_epochs + 1 - self.n_epochs), self.n_epochs_decay)
        return 1.0 - decayed / float(self.n_epochs_decay + 1)

    def get_lr(self) -> list[float]:
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]
