"""Image reading with validation: a truncated or unreadable file raises one clear error naming it."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


class ImageReadError(OSError):
    """An image file is missing, truncated or not decodable."""


def _png_is_complete(data: bytes) -> bool:
    """Cheap structural check: PNG signature and a final IEND chunk (a cut-off file has none).

    Corruption inside the compressed data is left to the decoder, which refuses it; inflating every
    file here as well cost ~14 % of a dataset conversion for no extra protection.
    """
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82")


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
