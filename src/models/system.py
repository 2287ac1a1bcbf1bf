"""What a system declares so the shared parts (scoring, comparison.md, the eval report, export) can serve it.

GANModule inherits these hooks; a system overrides the ones it needs. The shared code in src/utils/scoring.py,
src/eval and src/export reads only these declarations, never a system's internals:

    METRIC_DIRECTIONS   {metric: "higher" | "lower"} for every per-sample metric sample_metrics returns
                        (merged along the class hierarchy; the base declares forward_ms). Never guessed from names.
    HEADLINE_METRICS    the metrics comparison.md ranks the trained model by; each needs a direction
                        (checked when the class is defined).
    baselines(datamodule)          {name: network or system} a trained model must beat (besides "untrained").
    baseline_scope(network)        how a baseline network stands in for the inference networks while scored.
    export_modules(image_size, deployable)   {name: ExportSpec}: deployable modules and their named inputs.
    report_samples(stage)          kept evaluation samples as report items (src/eval/items.py) for index.html.

The "untrained" comparison row needs no declaration: scoring builds the same system class from the same config
with the same seed (src.utils.scoring.untrained_system) and scores its own inference networks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from torch import nn

from src.export.spec import ExportInput, ExportSpec

HIGHER, LOWER = "higher", "lower"
DIRECTIONS = (HIGHER, LOWER)


class SystemHooks:
    """Declarations for scoring, reporting and export; defaults suit a single-generator image system."""

    METRIC_DIRECTIONS: ClassVar[Mapping[str, str]] = {"forward_ms": LOWER}
    HEADLINE_METRICS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A declaration mistake is a bug of the system: fail when the class is defined, not after training."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("METRIC_DIRECTIONS", {})
        bad = {name: d for name, d in own.items() if d not in DIRECTIONS}
        if bad:
            raise TypeError(f"{cls.__name__}.METRIC_DIRECTIONS: directions must be {DIRECTIONS}, got {bad}")
        undirected = [m for m in cls.HEADLINE_METRICS if m not in cls.metric_directions()]
        if undirected:
            raise TypeError(f"{cls.__name__}.HEADLINE_METRICS {undirected} have no METRIC_DIRECTIONS entry")

    @classmethod
    def metric_directions(cls) -> dict[str, str]:
        """Every declared metric direction, base classes first (a subclass may redeclare one)."""
        merged: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("METRIC_DIRECTIONS", {}))
        return merged

    @classmethod
    def headline_metrics(cls) -> dict[str, str]:
        """{metric: direction} of the headline metrics, in declaration order."""
        directions = cls.metric_directions()
        return {name: directions[name] for name in cls.HEADLINE_METRICS}

    # ------------------------------------------------------------------ baselines
    def baselines(self, datamodule: Any) -> dict[str, Any]:
        """Input-independent baselines: {row name: network standing in for the inference networks, or a whole
        system (a module with its own test loop)}. "untrained" is added by scoring; do not declare it."""
        return {}

    @contextlib.contextmanager
    def baseline_scope(self, network: nn.Module) -> Iterator[None]:
        """While active, this system's val / test code uses `network` as its inference network (default: the G)."""
        with self.generator_replaced(network):  # type: ignore[attr-defined]
            yield

    # ------------------------------------------------------------------ export
    def export_model(self) -> nn.Module:
        """The deployable single generator (eval mode); subclasses add inference post-processing they apply."""
        return self.inference_generator.eval()  # type: ignore[attr-defined]

    def export_modules(self, image_size: int, deployable: bool = True) -> dict[str, ExportSpec]:
        """{name: ExportSpec} of every deployable module. Default: one `generator` reading one `feature` image.

        deployable=False: the raw trained networks (no EMA, no inference post-processing).
        image_size: the side the model ran at (data.image_size of the run, or the dataset's frame size).
        """
        from src.export.generator import infer_input_channels

        generator = self.generator  # type: ignore[attr-defined]
        uses_ema = deployable and getattr(self, "inference_generator", generator) is not generator
        module = self.export_model() if deployable else generator.eval()
        source = ("export_model() (EMA generator)" if uses_ema else "export_model()") if deployable else "generator"
        channels = infer_input_channels(module)
        feature = ExportInput("feature", (channels, int(image_size), int(image_size)))
        return {"generator": ExportSpec(module, inputs=(feature,), outputs=("image",), source=source)}

    # ------------------------------------------------------------------ report
    def report_samples(self, stage: str = "test") -> list[Any]:
        """Kept evaluation samples as report items (src.eval.items: RGBDSample, ImageGridSample, ...)."""
        raise NotImplementedError(f"{type(self).__name__} does not provide report samples")
