"""Default data: a FaceWorld dataset in a system's own layout, generated on first use and cached by its settings.

    ensure_faceworld_dataset(cache_dir, "rgbd-processed", {"num_identities": 12, ...}) -> cached folder

The writer names are the layouts of `python -m src.faceworld.write` (rgbd-processed, rgbd-unprocessed, head2head,
dg, dfdn, prnet). The cache folder is `<writer>-<hash of the resolved settings>`, where the resolved settings are
the given ones over the writer's own defaults (so spelling a default out or leaving it away is the same dataset,
and changing any setting generates a new one instead of silently reusing a stale one); the folder holds
`faceworld_settings.json` saying what it is. Generation writes into a temporary sibling folder that is renamed
into place when complete: an interrupted generation never leaves a half dataset that later runs would trust.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from src.utils.errors import DatasetError

log = logging.getLogger(__name__)

# layout name -> "module:function" of its writer (imported only when a dataset is generated or named).
FACEWORLD_WRITERS = {
    "rgbd-processed": "src.faceworld.writers.rgbd:write_processed_dataset",
    "rgbd-unprocessed": "src.faceworld.writers.rgbd:write_unprocessed_capture",
    "head2head": "src.faceworld.writers.head2head:write_head2head_dataset",
    "dg": "src.faceworld.writers.reenact:write_reenactment_dataset",
    "dfdn": "src.faceworld.writers.details:write_details_dataset",
    "prnet": "src.faceworld.writers.prnet:write_prnet_dataset",
}
SETTINGS_FILE = "faceworld_settings.json"
# Writer arguments that change how a dataset is written, not what it holds: never part of the cache key.
RUNTIME_ARGUMENTS = ("root", "workers", "progress")


def faceworld_writer(name: str) -> Callable[..., Any]:
    if name not in FACEWORLD_WRITERS:
        raise DatasetError(
            f"data.faceworld.writer: unknown FaceWorld layout {name!r}; known: {sorted(FACEWORLD_WRITERS)}"
        )
    module, function = FACEWORLD_WRITERS[name].split(":")
    try:
        return getattr(importlib.import_module(module), function)
    except ImportError as err:
        raise DatasetError(f"FaceWorld generator unavailable ({err}); set data.root to a dataset folder") from None


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def resolve_faceworld_settings(writer: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The given settings over the writer's defaults, runtime arguments left out; unknown / missing keys are
    a DatasetError naming `data.faceworld.<key>`."""
    parameters = inspect.signature(faceworld_writer(writer)).parameters
    given = {str(k): v for k, v in (settings or {}).items() if k not in RUNTIME_ARGUMENTS and k != "writer"}
    unknown = sorted(set(given) - set(parameters))
    if unknown:
        known = [k for k in parameters if k not in RUNTIME_ARGUMENTS]
        raise DatasetError(f"data.faceworld: unknown setting(s) {unknown} for the {writer} writer; known: {known}")
    resolved: dict[str, Any] = {}
    for name, parameter in parameters.items():
        if name in RUNTIME_ARGUMENTS:
            continue
        if name in given:
            resolved[name] = _plain(given[name])
        elif parameter.default is inspect.Parameter.empty:
            raise DatasetError(f"data.faceworld.{name} is required by the {writer} writer")
        else:
            resolved[name] = _plain(parameter.default)
    return resolved


def faceworld_dataset_name(writer: str, settings: Mapping[str, Any] | None) -> str:
    """`<writer>-<12 hex digits>`: the cache folder name of these settings (see the module docstring)."""
    resolved = resolve_faceworld_settings(writer, settings)
    digest = hashlib.sha256(json.dumps({"writer": writer, **resolved}, sort_keys=True).encode()).hexdigest()
    return f"{writer}-{digest[:12]}"


def faceworld_cache_path(cache_dir: str | os.PathLike, writer: str, settings: Mapping[str, Any] | None) -> Path:
    """Where ensure_faceworld_dataset keeps (or would keep) this dataset; generates nothing."""
    return Path(cache_dir) / faceworld_dataset_name(writer, settings)


def ensure_faceworld_dataset(
    cache_dir: str | os.PathLike, writer: str, settings: Mapping[str, Any] | None = None, workers: int = 1
) -> Path:
    """Path of the cached dataset with these settings, generating it first when absent."""
    resolved = resolve_faceworld_settings(writer, settings)
    root = faceworld_cache_path(cache_dir, writer, settings)
    if root.is_dir():
        return root
    staging = root.with_name(f".{root.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    log.info(f"Generating the FaceWorld {writer} dataset {root.name} (once; cached in {root.parent})")
    try:
        kwargs = dict(resolved)
        if "progress" in inspect.signature(faceworld_writer(writer)).parameters:
            kwargs["progress"] = False
        try:
            faceworld_writer(writer)(staging, workers=workers, **kwargs)
        except (ValueError, TypeError) as err:  # the writer's own range checks name the setting
            raise DatasetError(f"data.faceworld: {err}") from None
        (staging / SETTINGS_FILE).write_text(json.dumps({"writer": writer, **resolved}, indent=2) + "\n")
        if root.exists():  # another process finished first: keep its copy
            shutil.rmtree(staging, ignore_errors=True)
        else:
            os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
