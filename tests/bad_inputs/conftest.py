"""Fixtures of the bad-input suite and its count: the terminal summary says how many malformed inputs were tried."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework.framework_fixtures import write_synthetic_rgbd

SUITE = "tests/bad_inputs/"


@pytest.fixture(scope="session")
def clean_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only processed RGBD dataset (16-bit depth, 32 px; 4 training groups + 1 held-out group of 3 frames).

    Cases damage a copy of it."""
    return write_synthetic_rgbd(tmp_path_factory.mktemp("bad_inputs_clean") / "processed")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """`bad-input suite: N malformed inputs (...)`: one line, by outcome, whenever any of its cases ran.

    A case is one test of this folder; its outcome is that of its call (or of its setup when it was
    skipped or broke there).
    """
    counts: dict[str, int] = {}
    for outcome in ("passed", "failed", "xfailed", "xpassed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if not nodeid.startswith(SUITE):
                continue
            if report.when == "call" or outcome in ("skipped", "error"):
                counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        detail = ", ".join(f"{n} {k}" for k, n in counts.items())
        terminalreporter.write_line(f"bad-input suite: {sum(counts.values())} malformed inputs ({detail})")
