"""The default dataset: a FaceWorld processed RGBD dataset, generated on first use and cached by its settings.

The cache folder's name encodes every generation setting, so changing one generates a new dataset instead of
silently reusing a stale one. Generation writes into a temporary sibling folder that is renamed into place when
complete: an interrupted generation never leaves a half dataset that later runs would trust.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from src.utils.errors import DatasetError

log = logging.getLogger(__name__)


def faceworld_dataset_name(
    num_identities: int, frames_per_identity: int, size: int, depth_bits: int, eval_identities: int, seed: int
) -> str:
    return f"rgbd_{size}px_{num_identities}id_{frames_per_identity}f_{eval_identities}eval_{depth_bits}bit_seed{seed}"


def ensure_faceworld_dataset(
    cache_dir: str | os.PathLike,
    num_identities: int = 12,
    frames_per_identity: int = 40,
    size: int = 256,
    depth_bits: int = 16,
    eval_identities: int = 2,
    seed: int = 0,
    workers: int = 1,
) -> Path:
    """Path of the cached dataset with these settings, generating it first when absent."""
    if eval_identities >= num_identities:
        raise DatasetError(
            f"faceworld: eval_identities ({eval_identities}) must be < num_identities ({num_identities})"
        )
    name = faceworld_dataset_name(num_identities, frames_per_identity, size, depth_bits, eval_identities, seed)
    root = Path(cache_dir) / name
    if (root / "config.txt").is_file():
        return root
    try:
        from src.faceworld.writers.rgbd import write_processed_dataset
    except ImportError as err:
        raise DatasetError(f"FaceWorld generator unavailable ({err}); set data.root to a processed dataset") from None
    staging = root.with_name(f".{name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    log.info(f"Generating the FaceWorld dataset {name} (once; cached in {root.parent})")
    try:
        write_processed_dataset(
            staging,
            num_identities=num_identities,
            frames_per_identity=frames_per_identity,
            size=size,
            depth_bits=depth_bits,
            eval_identities=eval_identities,
            seed=seed,
            workers=workers,
        )
        if root.exists():  # another process finished first: keep its copy
            shutil.rmtree(staging, ignore_errors=True)
        else:
            os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
