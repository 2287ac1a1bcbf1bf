"""Conversion settings: faithful defaults from conf/convert.yaml, clear errors, stable fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from src.convert.settings import ConvertSettings

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _compose(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=CONF):
        return compose("convert", overrides=["input=/data/in", "output=/data/out", *overrides])


def test_the_app_config_has_the_original_defaults():
    settings = ConvertSettings.from_config(_compose())
    assert (settings.size, settings.padding, settings.depth_padding, settings.face_depth) == (512, 20, 20.0, 200.0)
    assert settings.erosion and settings.fill.method != "none" and settings.workers == 2
    assert settings.max_pose_deg == 10.0 and settings.detector["_target_"].endswith("MediaPipeDetector")
    original = ConvertSettings.from_config(_compose("convert/preset=original"))
    assert original.depth_bits == 8
    readme = ConvertSettings.from_config(_compose("convert/preset=readme", "convert/depth_fill@depth_fill=ns"))
    assert readme.face_depth == 80.0 and readme.fill.method == "ns"
    # the capture's gate: faces counted down to 40 px; the thin plate with the face's depth range, open holes bounded
    assert (settings.face_counter, settings.min_face_px) == ("tiled", 40.0)
    assert settings.fill.bound_open_holes and (settings.fill.near_extent_mm, settings.fill.far_extent_mm) == (55, 150)


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match=r"convert\.input: missing"):
        ConvertSettings.from_config({"output": "x"})
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['face_dept'\]"):
        ConvertSettings.from_config({"input": "a", "output": "b", "face_dept": 80})
    with pytest.raises(ValueError, match=r"convert\.depth_bits"):
        ConvertSettings.from_config({"input": "a", "output": "b", "depth_bits": 12})
    with pytest.raises(ValueError, match=r"convert\.group"):
        ConvertSettings.from_config({"input": "a", "output": "b", "group": "with_underscore"})
    with pytest.raises(ValueError, match=r"convert\.depth_fill"):
        ConvertSettings.from_config({"input": "a", "output": "b", "depth_fill": {"method": "ns", "radius": 3}})
    with pytest.raises(ValueError, match=r"convert\.depth_fill: depth fill near_extent_mm"):
        ConvertSettings.from_config({"input": "a", "output": "b", "depth_fill": {"near_extent_mm": -1}})
    with pytest.raises(ValueError, match=r"convert\.face_counter"):
        ConvertSettings.from_config({"input": "a", "output": "b", "face_counter": "haar"})
    with pytest.raises(ValueError, match=r"convert\.min_face_px"):
        ConvertSettings.from_config({"input": "a", "output": "b", "min_face_px": 0})


def test_fingerprint_ignores_number_types_and_run_only_keys_but_not_output_keys():
    base = ConvertSettings.from_config({"input": "a", "output": "b", "max_pose_deg": 10, "face_depth": 80})
    same = ConvertSettings.from_config(
        {"input": "c", "output": "d", "max_pose_deg": 10.0, "face_depth": 80.0, "workers": 1, "progress": False}
    )
    assert base.fingerprint() == same.fingerprint()
    assert (
        base.fingerprint() != ConvertSettings.from_config({"input": "a", "output": "b", "face_depth": 81}).fingerprint()
    )
