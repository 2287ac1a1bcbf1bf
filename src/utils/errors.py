"""The friendly-error layer of the entry points: known user mistakes become ONE line, bugs keep their traceback.

A user who mistypes an experiment name, forgets `ckpt=`, points at a corrupt checkpoint or at a dataset with a
truncated PNG should read one sentence naming the key / file, not a wall of Lightning and Hydra frames.
Everything else (a bug in our code) still shows its full traceback, because hiding that would hide the bug.
`HYDRA_FULL_ERROR=1` or `+debug_traceback=true` shows the traceback for user errors too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from hydra.errors import HydraException, InstantiationException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from src.io.images import ImageReadError


class UserError(Exception):
    """A problem with what the user gave us (config, files, checkpoint); shown as one line without traceback."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, or holds a different model than the one asked for."""


class DatasetError(UserError):
    """A dataset folder is missing files, has unreadable / mismatched files, or cannot be split as asked."""


class UncatchableUserError(BaseException):
    """A user error raised where a framework turns every Exception into a warning (Hydra's callbacks): derived from
    BaseException so it stops the command; run_cli prints it as the usual one `error: ...` line."""


class NonFiniteLossError(UserError):
    """A loss term became NaN / Inf during training (divergence, a bad sample); the run stops before the update."""


# Types whose messages are written for users (they name the file / key); anything else is treated as a bug.
USER_ERROR_TYPES: tuple[type[BaseException], ...] = (
    UserError,
    ImageReadError,
    FileNotFoundError,
    HydraException,
    OmegaConfBaseException,
)
_OMEGACONF_NOISE = ("object_type=", "reference_type=", "full_key:")


def _chain(err: BaseException) -> Iterator[BaseException]:
    """err, then its explicit causes / implicit contexts, innermost last (cycles guarded)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _one_line(err: BaseException) -> str:
    """Flatten a multi-line message: drop OmegaConf's type noise, keep the full key, join lines with '; '."""
    lines, full_key = [], None
    for raw in str(err).splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break  # Hydra's search-path dump: noise for a user who mistyped an option
        if not line:
            continue
        if line.startswith("full_key:"):
            full_key = line.split(":", 1)[1].strip()
        if line.startswith(_OMEGACONF_NOISE) or line.startswith("Set the environment variable HYDRA_FULL_ERROR"):
            continue
        lines.append(line)
    text = "; ".join(lines).replace(":; ", ": ").replace(".; ", "; ") or type(err).__name__
    if full_key and full_key not in text:
        text += f" (key: {full_key})"
    return text


def describe_user_error(err: BaseException) -> str | None:
    """The one-line message for a known user error, or None when `err` looks like a bug.

    Hydra wraps errors raised inside `_target_` constructors in InstantiationException; the innermost user error
    in the chain (e.g. our DatasetError) is the informative one, so it wins. An InstantiationException that wraps
    something else (a RuntimeError deep in a network) is a bug unless it is a bad argument or an unknown target.
    """
    chain = list(_chain(err))
    for inner in reversed(chain):
        if isinstance(inner, UserError | ImageReadError | FileNotFoundError):
            return _one_line(inner)
    if isinstance(err, InstantiationException):
        cause = err.__cause__
        if type(cause).__name__ == "MisconfigurationException":  # Lightning rejecting a Trainer argument
            return _one_line(cause)
        if cause is None or isinstance(cause, TypeError | ImportError | AttributeError | ValueError):
            return _one_line(err) + (f" ({_one_line(cause)})" if cause is not None else "")
        return None
    if isinstance(err, HydraException | OmegaConfBaseException):
        text = _one_line(err)
        cause = err.__cause__
        if isinstance(cause, OmegaConfBaseException) and str(cause).splitlines()[0] not in text:
            text += f"; {_one_line(cause)}"
        if isinstance(err, MissingConfigException) and "Available options" not in text and err.options:
            text += f" (available: {', '.join(err.options)})"
        return text
    if isinstance(err, ValueError) and _raised_by_hydra_config_loading(err):
        # e.g. `landmarks@detector=null`: Hydra rejects the override with a bare ValueError while composing
        return f"bad command-line override: {_one_line(err)}"
    return None


def _raised_by_hydra_config_loading(err: BaseException) -> bool:
    """True when the innermost frame of err's traceback is Hydra's config composition (not our code)."""
    tb = err.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    filename = last.tb_frame.f_code.co_filename.replace(os.sep, "/") if last is not None else ""
    return "/hydra/_internal/" in filename or "/hydra/core/override_parser" in filename


def traceback_requested(argv: list[str] | None = None) -> bool:
    argv = sys.argv if argv is None else argv
    flag = any(a.lstrip("+") in ("debug_traceback=true", "debug_traceback=True") for a in argv)
    return flag or os.environ.get("HYDRA_FULL_ERROR") == "1"


class _HeldJobBanner:
    """stderr that holds back Hydra's "Error executing job with overrides: [...]" line (every override again).

    A user error is then the one `error: ...` line; for a bug the held line is written before the traceback.
    """

    PREFIX = "Error executing job with overrides:"

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.held: list[str] = []

    def write(self, text: str) -> int:
        if text.startswith(self.PREFIX):
            self.held.append(text)
            return len(text)
        return self.stream.write(text)

    def release(self) -> None:
        for text in self.held:
            self.stream.write(text)
        self.held.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def run_cli(app: Callable[[], Any]) -> Any:
    """Run a Hydra entry point; print known user errors as one `error: ...` line and exit 1.

    Hydra prints its own (shortened) traceback for exceptions unless HYDRA_FULL_ERROR=1; we set it so every
    exception reaches this layer, which then decides: user error -> one line, bug -> full traceback.
    """
    show_traceback = traceback_requested()
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    stderr = sys.stderr
    banner = sys.stderr = _HeldJobBanner(stderr)
    try:
        return app()
    except UncatchableUserError as err:
        print(f"error: {_one_line(err)}", file=stderr)
        sys.exit(1)
    except Exception as err:
        message = describe_user_error(err)
        if message is None or show_traceback:
            banner.release()
            raise
        print(f"error: {message}", file=stderr)
        sys.exit(1)
    finally:  # in-process callers (tests, notebooks) must not inherit our settings as if the user had asked
        sys.stderr = stderr
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous
