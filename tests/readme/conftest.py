"""Fixtures of the README tests: one throw-away repository copy per session, and the runs made in it."""

from __future__ import annotations

import pytest

from tests.readme.handlers import Session, describe
from tests.readme.harness import copy_working_tree

_SESSIONS: list[Session] = []


@pytest.fixture(scope="session")
def readme_session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """The copy every README command of this session runs in; later commands see what earlier ones wrote."""
    root = copy_working_tree(tmp_path_factory.mktemp("readme") / "facesynth")
    session = Session(repo=root, scratch=tmp_path_factory.mktemp("readme_scratch"))
    _SESSIONS.append(session)
    return session


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How long each README command ran (wall and CPU), so the suite's cost stays visible."""
    for session in _SESSIONS:
        lines = describe(session)
        if lines:
            terminalreporter.section("README commands")
            for line in lines:
                terminalreporter.write_line(line)
