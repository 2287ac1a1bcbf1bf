"""FaceForensics++ datamodule: FaceWorld videos in the raw layout -> preprocessed cache -> batches; processed copies
read as they are; bad settings are one error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.datamodules.ffpp import FFPPDataModule
from src.faceworld.writers.head2head import write_head2head_dataset
from src.utils.errors import DatasetError, UserError

PREPROCESS = {"size": 64, "part_frames": 10, "identity_frames": 4}
FACEWORLD = {"num_videos": 2, "num_frames": [40, 44], "size": [320, 240], "seed": 4, "workers": 1}


def test_raw_layout_is_preprocessed_once_into_the_cache(tmp_path: Path):
    module = FFPPDataModule(
        root=None, cache_dir=str(tmp_path), faceworld=FACEWORLD, preprocess=PREPROCESS, preprocess_workers=1,
        image_size=32, batch_size=2, sequence_length=3, eye_noise=False,
    )  # fmt: skip
    module.setup()
    root = module.resolve_root()
    assert root.name.startswith("ffpp-") and (root / "ffpp_complete.json").is_file()
    raw = next(tmp_path.glob("ffpp-raw-*"))
    assert sorted(p.name for p in (raw / "original_sequences/youtube/c23/videos").iterdir()) == ["000.mp4", "001.mp4"]
    assert {r.name for r in module.items["test"]} == {"000", "001"}
    assert all(r.name.split("_")[0] in ("000", "001") for r in module.items["train"])
    batch = next(iter(module.train_dataloader()))
    assert batch["nmfc"].shape == (2, 3, 3, 32, 32) and batch["landmarks"].shape == (2, 3, 70, 2)
    # a second module with the same settings reads the cache (no second conversion)
    stamp = (root / "ffpp_complete.json").stat().st_mtime_ns
    again = FFPPDataModule(root=None, cache_dir=str(tmp_path), faceworld=FACEWORLD, preprocess=PREPROCESS)
    assert again.resolve_root() == root and (root / "ffpp_complete.json").stat().st_mtime_ns == stamp


def test_processed_layout_is_read_as_it_is(tmp_path: Path):
    processed = write_head2head_dataset(
        tmp_path / "processed", num_identities=2, frames_per_video=13, size=32, part_frames=4, workers=1,
        progress=False,
    )  # fmt: skip
    module = FFPPDataModule(root=str(processed), image_size=32)
    module.setup()
    assert module.resolve_root() == processed
    assert [r.name for r in module.items["test"]] == ["id000", "id001"]


def test_bad_settings_name_their_key(tmp_path: Path):
    with pytest.raises(UserError, match=r"data\.preprocess: unknown setting\(s\) \['sise'\]"):
        FFPPDataModule(preprocess={"sise": 64})
    with pytest.raises(UserError, match=r"data\.compression must be one of"):
        FFPPDataModule(compression="c99")
    with pytest.raises(UserError, match=r"data\.preprocess\.size must be an integer >= 32"):
        FFPPDataModule(preprocess={"size": 8})
    with pytest.raises(DatasetError, match="neither FaceForensics"):
        FFPPDataModule(root=str(tmp_path)).resolve_root()


def test_hyper_parameters_are_plain_containers():
    """Checkpoints store them and load with weights_only=True: no DictConfig may slip in from Hydra."""
    from omegaconf import OmegaConf

    module = FFPPDataModule(faceworld=OmegaConf.create(FACEWORLD), preprocess=OmegaConf.create(PREPROCESS))
    assert type(module.hparams.faceworld) is dict and type(module.hparams.preprocess) is dict
    from src.datamodules.head2head import Head2HeadDataModule

    module = Head2HeadDataModule(faceworld=OmegaConf.create({"num_identities": 1}))
    assert type(module.hparams.faceworld) is dict
