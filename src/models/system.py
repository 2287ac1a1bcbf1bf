"""What a system declares so the shared parts (scoring, comparison.md, the eval report, export) can serve it.

GANModule inherits these hooks; a system overrides the ones it needs. The shared code in src/utils/scoring.py,
src/eval and src/export reads only these declarations, never a system's internals.
"""

from __future__ import annotations

from typing import Any

from torch import nn


class SystemHooks:
    """Declarations for scoring, reporting and export; defaults suit a single-generator image system."""

    def export_model(self) -> nn.Module:
        """The network to deploy (eval mode); subclasses add inference post-processing they apply in eval."""
        return self.inference_generator.eval()  # type: ignore[attr-defined]

    def baseline_generators(self, datamodule: Any) -> dict[str, nn.Module]:
        """Input-independent baselines (name -> generator-like module) that a trained model must beat."""
        return {}

    def report_samples(self, stage: str = "test") -> list[Any]:
        """Kept evaluation samples converted for src.eval.report (system-specific)."""
        raise NotImplementedError(f"{type(self).__name__} does not provide report samples")
