"""The README command finder that CI and the README tests share, on a small README of known content."""

from __future__ import annotations

import pytest

from tests.readme.readme_commands import install_command, readme_commands, strip_comment

SAMPLE = """# t
Install: `pip install lpips` (not python), run `python -m a.b --x 1` or `python3 c.py`.

```bash
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python train.py q=1
.venv/bin/python -m pytest -q
python train.py x=1      # a comment
# only a comment

```

```
capture -> convert
```

| a | `python eval.py ckpt=<run>/last.ckpt` |
"""


def test_finds_bash_lines_and_inline_python_spans_in_order() -> None:
    found = [(c.line, c.where, c.code) for c in readme_commands(SAMPLE)]
    assert found == [
        (2, "inline", "python -m a.b --x 1"),
        (2, "inline", "python3 c.py"),
        (
            5,
            "bash block",
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python train.py q=1",
        ),
        (6, "bash block", ".venv/bin/python -m pytest -q"),
        (7, "bash block", "python train.py x=1"),
        (16, "inline", "python eval.py ckpt=<run>/last.ckpt"),
    ]
    assert readme_commands(SAMPLE)[4].text == "python train.py x=1      # a comment"  # run as written


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("a b  # c", "a b"),
        ("echo '# not a comment' # but this is", "echo '# not a comment'"),
        ('x="a#b" y', 'x="a#b" y'),
        ("# all comment", ""),
    ],
)
def test_strip_comment(line: str, code: str) -> None:
    assert strip_comment(line) == code


def test_install_part_of_the_quick_start_line() -> None:
    assert install_command(SAMPLE) == "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
    with pytest.raises(SystemExit, match="expected one quick start line"):
        install_command("```bash\necho hi\n```\n")
