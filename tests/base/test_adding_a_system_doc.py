"""docs/adding_a_system.md shows real code: every Python excerpt is in tests/base/base_toy_system.py verbatim, and
its YAML model config is the mapping the base tests train with (and builds the system through Hydra)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import hydra
from base_toy_system import ToySequenceSystem, toy_config
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "adding_a_system.md").read_text(encoding="utf-8")
SOURCE = (REPO / "tests" / "base" / "base_toy_system.py").read_text(encoding="utf-8")


def test_python_excerpts_are_the_toy_system_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        assert block in SOURCE, f"excerpt not in base_toy_system.py:\n{textwrap.shorten(block, 200)}"


def test_yaml_config_is_the_tested_config() -> None:
    block = re.search(r"<!-- toy-config -->\n```yaml\n(.*?)```", DOC, flags=re.S).group(1)
    config = OmegaConf.create(block)
    model = hydra.utils.instantiate(config)
    assert type(model).__name__ == ToySequenceSystem.__name__
    plain = OmegaConf.to_container(config, resolve=True)
    plain.pop("_target_"), plain.pop("_recursive_")
    assert plain == toy_config()
    assert [u.name for u in model.update_specs] == ["D", "D_r1", "aux", "G"]
