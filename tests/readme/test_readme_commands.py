"""Every shell command README.md shows, run as written (see tests/readme/handlers.py for what each must do).

The default run covers the quick start's training step (to its first epoch), the pipeline table, the capture
chain, resume, eval, export and the hardware errors: about 4.5 CPU-minutes. Slow: the sweeps (first job's first
epoch), the original's full-size (512 px) recipe, logger=visdom with a real server, every FaceWorld layout, the
install in a fresh venv and the quick start to its end. A README command no handler covers fails the first test.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.readme.handlers import Session, handler_for, quick_start_train_step
from tests.readme.harness import REPO, activated_env, copy_working_tree, run_command
from tests.readme.readme_commands import Command, install_command, quick_start_line, readme_commands

README_TEXT = (REPO / "README.md").read_text(encoding="utf-8")


def _distinct_commands() -> dict[str, list[Command]]:
    """README commands by their text (a command shown twice runs once), in reading order."""
    grouped: dict[str, list[Command]] = {}
    for command in readme_commands(README_TEXT):
        grouped.setdefault(command.code, []).append(command)
    return grouped


def _params() -> list:
    params = []
    for code, shown in _distinct_commands().items():
        found = handler_for(code)
        marks = [pytest.mark.slow] if found and found[0].is_slow(code) else []
        lines = "+".join(str(c.line) for c in shown)
        params.append(pytest.param(code, marks=marks, id=f"L{lines}:{code[:70]}"))
    return params


def test_every_readme_command_has_a_handler() -> None:
    uncovered = [
        f"README.md:{shown[0].line}: {code}" for code, shown in _distinct_commands().items() if not handler_for(code)
    ]
    assert not uncovered, "README commands no handler in tests/readme/handlers.py covers:\n" + "\n".join(uncovered)


@pytest.mark.parametrize("code", _params())
def test_readme_command(code: str, readme_session: Session) -> None:
    found = handler_for(code)
    if found is None:
        pytest.fail(f"no handler for README command `{code}` (see test_every_readme_command_has_a_handler)")
    handler, match = found
    handler.check(readme_session, code, match)


@pytest.mark.slow
def test_readme_install_in_a_fresh_venv_with_an_empty_pip_cache(tmp_path: Path) -> None:
    """The quick start's install steps, verbatim, in a fresh copy (CI does the same in .ci/run)."""
    repo = tmp_path / "clone"
    copy_working_tree(repo)
    (repo / ".venv").unlink()  # the copy's symlink to the project venv: this test makes a real, fresh one
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1"}
    command = install_command(README_TEXT)
    result = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"`{command}` failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    python = repo / ".venv" / "bin" / "python"
    imports = "import torch, lightning, hydra, wandb, requests, cv2, mediapipe, onnxruntime, src.utils.visdom_logger"
    check = subprocess.run([str(python), "-c", imports], cwd=repo, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]
    pip_check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert pip_check.returncode == 0, pip_check.stdout[-2000:]


@pytest.mark.slow
def test_quick_start_training_to_the_end_beats_both_baselines(tmp_path: Path) -> None:
    """The quick start's training step as written, to the end (2 threads, as README's table): comparison.json
    must say the trained generator beats the untrained one and the mean face on every headline metric."""
    repo = copy_working_tree(tmp_path / "clone")
    command = quick_start_train_step(quick_start_line(README_TEXT))
    env = {**activated_env(repo), "OMP_NUM_THREADS": "2"}
    outcome = run_command(repo, command, timeout_s=3600, env=env)
    assert outcome.returncode == 0, outcome.tail()
    (run,) = (repo / "logs" / "train" / "runs").iterdir()
    comparison = json.loads((run / "comparison.json").read_text())
    assert len(comparison["metrics"]) == 6 and len(comparison["beats"]) == 2, comparison["beats"]
    lost = {other: [m for m, won in results.items() if not won] for other, results in comparison["beats"].items()}
    # what the README says: every metric against the untrained generator, all but the silhouette against the mean
    # face (the average silhouette paints less background as face)
    assert lost == {"untrained": [], "mean_face": ["background_as_face"]}, f"the quick start does not beat {lost}"
    assert (run / "export" / "export.json").is_file() and (run / "report" / "index.html").is_file()
    # the README's table is what this fresh run printed: mean +- std of every row, to the README's 3 decimals
    labels = {"trained": "trained (quick start)", "untrained": "untrained generator", "mean_face": "mean face"}
    for row, label in labels.items():
        (line,) = [ln for ln in README_TEXT.splitlines() if ln.startswith(f"| {label} |")]
        printed = [
            f"{stats['mean']:.3f} ± {stats['std']:.3f}"
            for stats in (comparison["rows"][row][metric] for metric in comparison["metrics"])
        ]
        assert line == "| " + " | ".join([label, *printed]) + " |", (line, printed)
