"""docs/configs.md cannot drift from conf/: every group folder is in its table, and the options listed for a group
are exactly that folder's files (a new, renamed or deleted option file fails this test until the page says so).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
DOC = REPO / "docs" / "configs.md"


def group_folders() -> set[str]:
    """Every folder under conf/ that holds option files (.yaml), as a group path like model/generator."""
    return {str(p.parent.relative_to(CONF)) for p in CONF.rglob("*.yaml") if p.parent != CONF}


def documented_groups() -> dict[str, list[str]]:
    """{group: options} from the rows of the page's group table: | `group` | purpose | `a`, `b` | keys |."""
    table: dict[str, list[str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`[a-z_/]+`", cells[0]):
            table[cells[0].strip("`")] = re.findall(r"`([A-Za-z0-9_]+)`", cells[2])
    return table


def test_every_config_group_folder_is_documented():
    folders = group_folders()
    assert folders, "no config groups found"
    table = documented_groups()
    missing = sorted(folders - set(table))
    assert not missing, f"docs/configs.md does not document the config group(s) {missing}"
    text = DOC.read_text()
    for parent in {folder.split("/")[0] for folder in folders}:  # capture/, convert/: folders of sub-groups
        assert f"`{parent}" in text, parent


def test_documented_options_are_exactly_the_option_files():
    table = documented_groups()
    for group, options in table.items():
        folder = CONF / group
        assert folder.is_dir(), f"docs/configs.md lists a group {group!r} that conf/ does not have"
        for option in options:
            assert (folder / f"{option}.yaml").is_file(), f"docs/configs.md lists conf/{group}/{option}.yaml"
        actual = sorted(p.stem for p in folder.glob("*.yaml"))
        assert sorted(options) == actual, f"conf/{group}: documented {sorted(options)}, files {actual}"


def test_root_configs_and_the_tensorboard_command_are_documented():
    text = DOC.read_text()
    for root in sorted(CONF.glob("*.yaml")):
        assert f"conf/{root.name}" in text, root.name
    assert "tensorboard --logdir logs/train/runs" in text and "logger=tensorboard" in text
    assert "csv/version_0/metrics.csv" in text
    requirements = (REPO / "requirements.txt").read_text()
    assert re.search(r"^tensorboard\b", requirements, flags=re.M), "the page says requirements.txt installs it"
