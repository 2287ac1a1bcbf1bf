"""Atomic file writes: write to a temporary name in the same folder, then rename.

A process killed at any point leaves either the old file or the complete new one, never a
half-written file. Every writer in the project goes through these helpers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from src.utils.errors import UserError

# "No space left", "file too large" (a file-size limit), "disk quota exceeded".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class DiskFullError(UserError, OSError):
    """A write ran out of space: one line naming the file; the file's previous content (if any) is unchanged."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed onto `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        tmp.chmod(0o666 & ~_current_umask())
        os.replace(tmp, target)
    except OSError as err:
        if err.errno not in DISK_FULL_ERRNOS or isinstance(err, DiskFullError):
            raise
        full = DiskFullError(f"{target}: not written, {os.strerror(err.errno).lower()} (any earlier version is kept)")
        full.errno = err.errno
        raise full from err
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_image_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
    """Encode with OpenCV by the file's extension (PNG keeps uint16) and write atomically."""
    ext = Path(path).suffix or ".png"
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode a {image.dtype} image of shape {image.shape}")
    write_bytes_atomic(path, buf.tobytes())


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporaries left by a killed writer below `folder`; returns how many were removed."""
    removed = 0
    for tmp in Path(folder).rglob(".*.tmp*"):
        if tmp.is_file():
            tmp.unlink()
            removed += 1
    return removed
