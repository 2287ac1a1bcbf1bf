"""Named discriminator tables: weights flattened to `<discriminator>/<term>` keys, and the usual adversarial terms.

A system with several Ds (head2head: image, mouth, temporal_1 / 3 / 9) says only what each D sees, through
`discriminator_inputs(batch, outputs, name) -> (real, fake)`; the base then computes every table's D-side
`real` / `fake` terms and G-side `gan` / `fm` terms with criteria["gan"] / criteria["fm"], logged as
train/D/<name>/<term> and train/G/<name>/<term>; a D whose inputs are None in a chunk scores 0 there. A system may
still write its own loss hooks instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


class TablesMixin:
    """Helpers over `self.discriminator_tables` and `self.discriminators` (see the module docstring)."""

    def table_weights(self, side: str) -> dict[str, float]:
        """Every table's `side` weights ("loss_weights" or "generator_loss_weights") as `<name>/<term>` keys."""
        return {
            f"{name}/{term}": weight
            for name, table in self.discriminator_tables.items()
            for term, weight in getattr(table, side).items()
        }

    def table_terms(self, terms: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f"{name}/{term}" for name in self.discriminator_tables for term in terms)

    @staticmethod
    def terms_of(terms: frozenset[str], name: str) -> frozenset[str]:
        """The bare terms of discriminator `name` among `<name>/<term>` keys."""
        prefix = f"{name}/"
        return frozenset(t[len(prefix) :] for t in terms if t.startswith(prefix))

    def _active_tables(
        self, batch: dict[str, Any], outputs: dict[str, Any], terms: frozenset[str], losses: dict[str, torch.Tensor]
    ) -> Iterator[tuple[str, Any, frozenset[str], Any, Any]]:
        """(name, D, its active bare terms, real input, fake input) of every D table with an active term. A table
        whose discriminator_inputs are None has nothing to judge in this chunk: its terms go into `losses` as 0."""
        for name, net in self.discriminators.items():
            mine = self.terms_of(terms, name)
            if not mine:
                continue
            inputs = self.discriminator_inputs(batch, outputs, name)
            if inputs is None:
                losses.update({f"{name}/{term}": torch.zeros((), device=self.device) for term in mine})
                continue
            real, fake = inputs
            yield name, net, mine, real, fake

    def discriminator_inputs(self, batch: dict[str, Any], outputs: dict[str, Any], name: str) -> tuple[Any, Any] | None:
        """(real input, fake input) of discriminator `name`; systems with D tables implement it. None: this D has
        nothing to judge in this chunk (head2head's temporal window longer than the frames seen so far); its terms
        are then 0, logged as such, and the D is not run."""
        raise NotImplementedError(f"{type(self).__name__} must define discriminator_inputs for its D tables")

    def discriminator_losses(
        self, batch: dict[str, Any], outputs: dict[str, Any], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        """real / fake of every D table (GAN criterion `gan`); outputs arrive detached."""
        losses: dict[str, torch.Tensor] = {}
        for name, net, mine, real, fake in self._active_tables(batch, outputs, terms, losses):
            if "real" in mine:
                losses[f"{name}/real"] = self.criteria["gan"](net(real), True)
            if "fake" in mine:
                losses[f"{name}/fake"] = self.criteria["gan"](net(fake), False)
        return losses

    def adversarial_losses(
        self, batch: dict[str, Any], outputs: dict[str, Any], terms: frozenset[str]
    ) -> dict[str, torch.Tensor]:
        """G-side `<name>/gan` and `<name>/fm` of every D table (a generator_losses implementation calls it)."""
        losses: dict[str, torch.Tensor] = {}
        for name, net, mine, real, fake in self._active_tables(batch, outputs, terms, losses):
            fake_outputs = net(fake)
            if "gan" in mine:
                losses[f"{name}/gan"] = self.criteria["gan"].generator_loss(fake_outputs)
            if "fm" in mine:
                with torch.no_grad():
                    real_outputs = net(real)
                losses[f"{name}/fm"] = self.criteria["fm"](fake_outputs, real_outputs)
        return losses
