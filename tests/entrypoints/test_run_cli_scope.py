"""run_cli changes the process environment only while its app runs: a test that runs an entry point in-process must
not change what later tests (or subprocesses they start) see. It used to leave HYDRA_FULL_ERROR=1 behind, which
turned every later one-line error into a traceback (the export entry-point test failed after the framework tests).
"""

from __future__ import annotations

import os
import sys

import pytest

from src.utils.errors import UserError, run_cli


def _run(app) -> tuple[object, dict[str, str]]:
    seen: dict[str, str] = {}

    def wrapped():
        seen.update(os.environ)
        return app()

    try:
        return run_cli(wrapped), seen
    except SystemExit as stop:
        return stop, seen


@pytest.mark.parametrize("preset", [None, "0"])
@pytest.mark.parametrize("outcome", ["returns", "user_error", "bug"])
def test_run_cli_restores_the_environment_and_stderr(
    outcome: str, preset: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if preset is None:
        monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    else:
        monkeypatch.setenv("HYDRA_FULL_ERROR", preset)
    before, stderr = dict(os.environ), sys.stderr

    def app():
        if outcome == "user_error":
            raise UserError("data.root: folder not found")
        if outcome == "bug":
            raise ZeroDivisionError("a bug keeps its traceback")
        return 42

    if outcome == "bug":
        with pytest.raises(ZeroDivisionError):
            _run(app)
    else:
        result, seen = _run(app)
        assert seen["HYDRA_FULL_ERROR"] == "1"  # Hydra must hand every exception to run_cli while the app runs
        assert result == 42 if outcome == "returns" else isinstance(result, SystemExit) and result.code == 1
    assert dict(os.environ) == before and sys.stderr is stderr


def test_an_uncatchable_user_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """Raised where Hydra would turn an Exception into a warning (its callbacks, e.g. the Optuna study check)."""
    from src.utils.errors import UncatchableUserError

    def app():
        raise UncatchableUserError("hydra.sweeper.study_name=x: the study belongs to another sweep")

    with pytest.raises(SystemExit) as stop:
        run_cli(app)
    assert stop.value.code == 1
    assert capsys.readouterr().err == "error: hydra.sweeper.study_name=x: the study belongs to another sweep\n"
