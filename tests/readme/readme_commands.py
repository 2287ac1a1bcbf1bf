"""Find the shell commands README.md shows, so CI and the README tests run them as written (no copies to drift).

Commands are (1) every line of a ```bash block and (2) every inline code span, in a table or in prose, that
starts with `python ` or `python3 `. Standard library only: .ci/run uses this before any venv exists.

    python3 tests/readme/readme_commands.py install   # the quick start's install part (see install_command)
    python3 tests/readme/readme_commands.py test      # the README's test command
    python3 tests/readme/readme_commands.py slow      # the README's slow-test command
    python3 tests/readme/readme_commands.py list      # every command, with its README line number
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"

QUICK_START_PREFIX = "python3 -m venv .venv"
TEST_PREFIX = ".venv/bin/python -m pytest -q"
SLOW_TEST = "python -m pytest -q -m slow"

_FENCE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")
_PIP_INSTALL = re.compile(r"(^|[/\s])pip3?\s+install\s")
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass(frozen=True)
class Command:
    """One README command: the line exactly as written, where it is, and its text without a trailing comment."""

    text: str
    line: int
    where: str  # "bash block" or "inline"

    @property
    def code(self) -> str:
        return strip_comment(self.text)


def strip_comment(line: str) -> str:
    """The line without its shell comment (a `#` at a word start, outside quotes), trailing blanks removed."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def readme_commands(text: str) -> list[Command]:
    """Every command README shows, in reading order."""
    commands: list[Command] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if match:
            fence = match.group(1).lower() if fence is None else None
            continue
        if fence is not None:
            if fence in ("bash", "sh", "shell", "console") and strip_comment(line).strip():
                commands.append(Command(line.strip(), number, "bash block"))
            continue
        for span in _INLINE.findall(line):
            if re.match(r"python3?\s", span.strip()):
                commands.append(Command(span.strip(), number, "inline"))
    return commands


def _one(commands: list[Command], prefix: str, what: str) -> Command:
    found = [c for c in commands if c.code.startswith(prefix)]
    if len(found) != 1:
        lines = ", ".join(str(c.line) for c in found) or "none"
        raise SystemExit(f"README.md: expected one {what} line starting with `{prefix}`, found {lines}")
    return found[0]


def quick_start_line(text: str) -> str:
    return _one(readme_commands(text), QUICK_START_PREFIX, "quick start").code


def split_after_install(line: str) -> tuple[str, str]:
    """A `&&` chain split after its last `pip install` step: (install steps, the rest)."""
    steps = [step.strip() for step in line.split("&&")]
    installs = [i for i, step in enumerate(steps) if _PIP_INSTALL.search(step)]
    if not installs:
        raise SystemExit(f"README.md: the quick start line has no `pip install` step: {line}")
    return " && ".join(steps[: installs[-1] + 1]), " && ".join(steps[installs[-1] + 1 :])


def install_command(text: str) -> str:
    """The quick start's install part: its `&&` steps up to the last `pip install` (the training step is left out)."""
    return split_after_install(quick_start_line(text))[0]


def fast_test_command(text: str) -> str:
    return _one(readme_commands(text), TEST_PREFIX, "test").code


def slow_test_command(text: str) -> str:
    return _one(readme_commands(text), SLOW_TEST, "slow-test").code


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    what = argv[1] if len(argv) > 1 else "list"
    if what == "install":
        print(install_command(text))
    elif what == "test":
        print(fast_test_command(text))
    elif what == "slow":
        print(slow_test_command(text))
    elif what == "list":
        for command in readme_commands(text):
            print(f"{command.line:4d} {command.where:10s} {command.text}")
    else:
        print(f"usage: {argv[0]} install|test|slow|list", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
