"""FaceForensics++ for Head2Head's multi-person pre-training: the raw download, preprocessed on first use, or an
already processed copy.

`data.root` may be
- FaceForensics++ as it ships: `<root>/original_sequences/youtube/<compression>/videos/<id>.mp4` (data.compression
  picks c0 / c23 / c40). On first use every video goes through the video preprocessing (src/convert/video, settings
  in data.preprocess) into `<cache_dir>/ffpp-<hash>/`, named by the raw folder, the compression and the settings;
  the conversion resumes if interrupted, and later runs read the cache;
- an already processed copy in the Head2Head layout (`<root>/dataset/{train,test}/...`, e.g. the original authors'
  processed release): read as it is;
- null: FaceWorld videos written in FaceForensics++'s raw layout (src/faceworld/writers/videos.py, settings in
  data.faceworld) into `<cache_dir>/ffpp-raw-<hash>/`, then preprocessed as above.
Everything else (batches, splits, the sequence-length curriculum) is the Head2Head datamodule's
(src/datamodules/head2head.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from src.datamodules.base import check_choice, check_int
from src.datamodules.head2head import Head2HeadDataModule
from src.utils.errors import DatasetError, UserError

log = logging.getLogger(__name__)

__all__ = ["FFPPDataModule", "is_faceforensics_raw", "is_head2head_layout"]

COMPLETE_FILE = "ffpp_complete.json"
FACEWORLD_KEYS = ("num_videos", "num_frames", "size", "compressions", "fps", "seed")


def is_faceforensics_raw(root: Path) -> bool:
    return (root / "original_sequences" / "youtube").is_dir()


def is_head2head_layout(root: Path) -> bool:
    return (root / "dataset" / "train").is_dir() or ((root / "train").is_dir() and root.name == "dataset")


def _digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:12]


class FFPPDataModule(Head2HeadDataModule):
    """FaceForensics++ (raw or processed) -> Head2Head clip batches; see the module docstring."""

    FACEWORLD_WRITER: ClassVar[str | None] = None

    def __init__(
        self,
        root: str | None = None,
        *args: Any,
        compression: str = "c23",
        preprocess: Mapping[str, Any] | None = None,
        preprocess_workers: int = 2,
        **kwargs: Any,
    ) -> None:
        if isinstance(preprocess, DictConfig):  # plain containers: checkpoints store the hyper-parameters
            preprocess = OmegaConf.to_container(preprocess, resolve=True)
        super().__init__(root, *args, **kwargs)
        check_choice("data.compression", compression, ("c0", "c23", "c40"))
        check_int("data.preprocess_workers", preprocess_workers, 0)
        self.video_settings = self._video_settings(preprocess or {})
        if self.hparams.faceworld:
            unknown = sorted(set(self.hparams.faceworld) - {*FACEWORLD_KEYS, "workers"})
            if unknown:
                raise UserError(f"data.faceworld: unknown setting(s) {unknown}; known: {list(FACEWORLD_KEYS)}")

    @staticmethod
    def _video_settings(preprocess: Mapping[str, Any]):
        from src.convert.video.pipeline import VideoSettings

        known = set(VideoSettings.__dataclass_fields__)
        unknown = sorted(set(preprocess) - known)
        if unknown:
            raise UserError(f"data.preprocess: unknown setting(s) {unknown}; known: {sorted(known)}")
        try:
            return VideoSettings.from_config(preprocess)
        except UserError as err:
            raise UserError(f"data.preprocess.{err}") from None

    # ------------------------------------------------------------------ the folder
    def _faceworld_raw(self) -> Path:
        from src.faceworld.writers.videos import write_faceforensics_raw

        if not self.hparams.cache_dir:
            raise DatasetError("data.root is null and data.cache_dir is not set: no dataset to read")
        settings = dict(self.hparams.faceworld or {})
        workers = settings.pop("workers", 1)
        settings.setdefault("compressions", [self.hparams.compression])
        if self.hparams.compression not in settings["compressions"]:
            raise UserError(
                f"data.compression={self.hparams.compression} is not among data.faceworld.compressions "
                f"{list(settings['compressions'])}"
            )
        for key in ("size", "compressions"):
            if key in settings and not isinstance(settings[key], str):
                settings[key] = tuple(settings[key])
        if isinstance(settings.get("num_frames"), list):
            settings["num_frames"] = tuple(settings["num_frames"])
        folder = Path(self.hparams.cache_dir) / f"ffpp-raw-{_digest(settings)}"
        if not (folder / "faceworld.json").is_file():
            log.info(f"Writing FaceWorld videos in FaceForensics++'s raw layout into {folder} (once)")
            try:
                write_faceforensics_raw(folder, workers=workers, progress=False, **settings)
            except (ValueError, TypeError) as err:
                raise DatasetError(f"data.faceworld: {err}") from None
        return folder

    def _processed(self, raw: Path) -> Path:
        from src.convert.video.pipeline import run_video_conversion

        cache = Path(self.hparams.cache_dir) if self.hparams.cache_dir else raw.parent
        record = {"raw": str(raw.resolve()), "compression": self.hparams.compression,
                  "settings": self.video_settings.record()}  # fmt: skip
        folder = cache / f"ffpp-{_digest(record)}"
        if (folder / COMPLETE_FILE).is_file():
            return folder
        log.info(f"Preprocessing FaceForensics++ {raw} ({self.hparams.compression}) into {folder} (once; resumable)")
        report = run_video_conversion(
            raw, folder, self.video_settings, compression=self.hparams.compression,
            workers=self.hparams.preprocess_workers, progress=True,
        )  # fmt: skip
        if report.count("ok") == 0:
            raise DatasetError(f"{raw}: no video could be preprocessed (see {folder}/convert_video_report.json)")
        (folder / COMPLETE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        return folder

    def resolve_root(self) -> Path:
        if getattr(self, "_resolved_root", None) is not None:
            return self._resolved_root
        raw = self.root if self.root is not None else self._faceworld_raw()
        if is_head2head_layout(raw):
            resolved = raw
        elif is_faceforensics_raw(raw):
            resolved = self._processed(raw)
        else:
            raise DatasetError(
                f"{raw}: neither FaceForensics++'s raw layout (original_sequences/youtube/<c>/videos/*.mp4) nor a "
                "processed Head2Head layout (dataset/train, dataset/test)"
            )
        self._resolved_root = resolved
        return resolved
