"""Image reading with validation: a truncated or unreadable file raises one clear error naming it."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import cv2
import numpy as np


class ImageReadError(OSError):
    """An image file is missing, truncated or not decodable."""


def _png_is_complete(data: bytes) -> bool:
    """A PNG is complete when it ends with an IEND chunk and its IDAT data inflates fully."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        return False
    pos, idat = 8, []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    try:
        dec = zlib.decompressobj()
        dec.decompress(b"".join(idat))
        return dec.eof
    except zlib.error:
        return False


def read_image(path: str | os.PathLike, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Read an image (PNG keeps 16 bits); raise ImageReadError naming the file if it is bad."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ImageReadError(f"{p}: cannot read ({err.strerror or err})") from None
    if not data:
        raise ImageReadError(f"{p}: empty file")
    if p.suffix.lower() == ".png" and not _png_is_complete(data):
        raise ImageReadError(f"{p}: truncated or corrupt PNG")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ImageReadError(f"{p}: not a decodable image")
    return image
