"""SystemHooks' declarations: the direction words scoring and comparison.md read, their merge along the class
hierarchy, the checks made when a system class is defined, and the default export declaration (EMA or raw G)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

import pytest
from torch import nn

from src.models.system import DIRECTIONS, HIGHER, LOWER, SystemHooks


class _Scored(SystemHooks):
    METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {"psnr": "higher", "depth_mae_mm": "lower"}
    HEADLINE_METRICS = ("psnr", "forward_ms")


def test_directions_merge_base_first_and_headlines_keep_their_order() -> None:
    assert (HIGHER, LOWER) == ("higher", "lower") and DIRECTIONS == ("higher", "lower")
    assert SystemHooks.metric_directions() == {"forward_ms": "lower"}
    assert _Scored.metric_directions() == {"forward_ms": "lower", "psnr": "higher", "depth_mae_mm": "lower"}
    assert list(_Scored.headline_metrics().items()) == [("psnr", "higher"), ("forward_ms", "lower")]

    class Redeclares(_Scored):
        METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {"psnr": "lower"}

    assert (
        Redeclares.metric_directions()["psnr"] == "lower" and Redeclares.metric_directions()["depth_mae_mm"] == "lower"
    )


def test_declaration_mistakes_fail_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match=r"^Up\.METRIC_DIRECTIONS: directions must be \('higher', 'lower'\), got"):

        class Up(SystemHooks):
            METRIC_DIRECTIONS: ClassVar[dict[str, str]] = {"psnr": "up"}

    with pytest.raises(TypeError, match=r"^Headless\.HEADLINE_METRICS \['ssim'\] have no METRIC_DIRECTIONS entry$"):

        class Headless(SystemHooks):
            HEADLINE_METRICS = ("ssim",)


class _System(SystemHooks, nn.Module):
    def __init__(self, ema: bool) -> None:
        super().__init__()
        self.generator = nn.Conv2d(3, 4, 1)
        self.inference_generator = nn.Conv2d(3, 4, 1) if ema else self.generator


def test_default_export_declares_the_inference_generator_or_the_raw_one() -> None:
    with_ema = _System(ema=True)
    (spec,) = with_ema.export_modules(16).values()
    assert spec.module is with_ema.inference_generator and spec.source == "export_model() (EMA generator)"
    assert spec.inputs[0].name == "feature" and spec.inputs[0].shape == (3, 16, 16) and spec.outputs == ("image",)
    (raw,) = with_ema.export_modules(8, deployable=False).values()
    assert raw.module is with_ema.generator and raw.source == "generator" and not raw.module.training
    (plain,) = _System(ema=False).export_modules(8).values()
    assert plain.source == "export_model()"
    with pytest.raises(NotImplementedError, match="_System does not provide report samples"):
        with_ema.report_samples()


class _Replaces(_System):
    """generator_replaced as GANModule has it (the base swaps the inference network): records what it was given."""

    @contextlib.contextmanager
    def generator_replaced(self, network: nn.Module) -> Iterator[None]:
        self.replaced_with = network
        yield
        self.replaced_with = None


def test_a_baseline_stands_in_for_the_generator_only_inside_its_scope() -> None:
    system, baseline = _Replaces(ema=False), nn.Identity()
    with system.baseline_scope(baseline):
        assert system.replaced_with is baseline
    assert system.replaced_with is None
