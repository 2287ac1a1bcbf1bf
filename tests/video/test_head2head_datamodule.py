"""Head2Head datamodule on a FaceWorld dataset in the original's layout: batch contract, splits, curriculum."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from src.convert.video.eyes import draw_eye_image
from src.datamodules.head2head import (
    CurriculumBatchSampler,
    EvalBatchSampler,
    Head2HeadDataModule,
    curriculum_length,
)
from src.faceworld.writers.head2head import write_head2head_dataset
from src.io.images import read_image
from src.utils.errors import DatasetError, UserError

FRAMES, PART, SIZE = 13, 4, 48


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("h2h_dm")
    return write_head2head_dataset(
        root, num_identities=2, frames_per_video=FRAMES, size=SIZE, part_frames=PART, reenactments=1, workers=1,
        progress=False,
    )  # fmt: skip


def _module(root: Path, **kwargs) -> Head2HeadDataModule:
    module = Head2HeadDataModule(root=str(root), image_size=32, eye_noise=False, **kwargs)
    module.setup()
    return module


def test_curriculum_doubles_every_k_epochs():
    assert [curriculum_length(e, 12, 5, None) for e in (0, 4, 5, 9, 10, 15)] == [12, 12, 24, 24, 48, 96]
    assert curriculum_length(30, 12, 5, 50) == 50
    sampler = CurriculumBatchSampler([40, 40, 40], batch_size=2, sequence_length=3, double_every=2,
                                     max_sequence_length=None)  # fmt: skip
    for epoch, expected in ((0, 3), (1, 3), (2, 6), (4, 12)):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert [len(b) for b in batches] == [2, 1]
        assert {item[2] for b in batches for item in b} == {expected}
        assert sorted(item[0] for b in batches for item in b) == [0, 1, 2]  # every sequence once per epoch


def test_eval_windows_cover_every_frame_once_in_order():
    batches = list(EvalBatchSampler([7, 3], batch_size=2, window=3))
    items = [item for b in batches for item in b]
    assert items == [(0, 0, 3), (0, 3, 3), (0, 6, 1), (1, 0, 3)]
    assert all(len({i[2] for i in b}) == 1 for b in batches)  # one clip length per batch


def test_batch_contract_and_values_match_the_files(dataset: Path):
    module = _module(dataset, batch_size=2, sequence_length=3)
    assert [r.name for r in module.items["train"]] == ["id000_000000", "id000_000001", "id001_000000", "id001_000001"]
    assert [r.name for r in module.items["test"]] == ["id000", "id001"]  # reenactments are not test sequences
    batch = next(iter(module.train_dataloader()))
    assert batch["nmfc"].shape == (2, 3, 3, 32, 32) and batch["eyes"].shape == (2, 3, 3, 32, 32)
    assert batch["image"].shape == (2, 3, 3, 32, 32) and batch["landmarks"].shape == (2, 3, 70, 2)
    assert batch["frame_index"].dtype == torch.long and batch["frame_index"].shape == (2, 3)
    assert isinstance(batch["sequence"], list) and len(batch["sequence"]) == 2
    for key in ("nmfc", "eyes", "image"):
        assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
    assert (torch.diff(batch["frame_index"], dim=1) == 1).all()
    # The values are the files': frame f of sequence s, resized 48 -> 32 px.
    seq, frame = batch["sequence"][0], int(batch["frame_index"][0, 1])
    folder = dataset / "dataset" / "train"
    landmarks = np.loadtxt(folder / "landmarks70" / seq / f"{frame:06d}.txt")
    np.testing.assert_allclose(batch["landmarks"][0, 1].numpy(), (landmarks + 0.5) * 32 / 48 - 0.5, atol=1e-4)
    nmfc = cv2.resize(read_image(folder / "nmfcs" / seq / f"{frame:06d}.png")[..., ::-1], (32, 32),
                      interpolation=cv2.INTER_CUBIC)  # fmt: skip
    assert nmfc.max() > 0
    torch.testing.assert_close(batch["nmfc"][0, 1], torch.from_numpy(nmfc).permute(2, 0, 1).float() / 127.5 - 1)
    eyes = draw_eye_image((landmarks + 0.5) * 32 / 48 - 0.5, 32)
    expected = torch.from_numpy(eyes).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(batch["eyes"][0, 1], expected)


def test_validation_streams_every_test_frame_in_order(dataset: Path):
    module = _module(dataset, eval_sequence_length=2)
    batches = list(module.val_dataloader())
    frames = [(b["sequence"][0], int(i)) for b in batches for i in b["frame_index"][0]]
    first_test = 8
    assert frames == [(s, f) for s in ("id000", "id001") for f in range(first_test, FRAMES)]


def test_target_and_reenactment_selection(dataset: Path):
    module = _module(dataset, target_name="id000", reenact_source="id001")
    assert [r.name for r in module.items["train"]] == ["id000_000000", "id000_000001"]
    assert [r.name for r in module.items["test"]] == ["id000_id001"]
    batch = next(iter(module.test_dataloader()))
    # source_landmarks70 holds 14 eye rows: the others are NaN, the eye rows are numbers.
    assert torch.isnan(batch["landmarks"][0, 0, :36]).all() and not torch.isnan(batch["landmarks"][0, 0, 36:48]).any()
    with pytest.raises(UserError, match=r"data\.reenact_source needs data\.target_name"):
        Head2HeadDataModule(root=str(dataset), reenact_source="id001")
    with pytest.raises(UserError, match=r"data\.sequence_length must be >= 1"):
        Head2HeadDataModule(root=str(dataset), sequence_length=0)


def test_gaps_split_sequences_and_broken_layouts_are_one_error(dataset: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    for kind, ext in (("images", "png"), ("nmfcs", "png"), ("landmarks70", "txt"), ("misc", "txt")):
        (copy / "dataset/test" / kind / "id001" / f"000010.{ext}").unlink()  # a dropped (faceless) frame
    module = _module(copy)
    runs = [(r.name, r.frames) for r in module.items["test"] if r.name == "id001"]
    assert runs == [("id001", (8, 9)), ("id001", (11, 12))]
    (copy / "dataset/train/nmfcs/id000_000001/000005.png").unlink()
    with pytest.raises(DatasetError, match=r"id000_000001: the frames of nmfcs do not match images"):
        _module(copy)


def test_default_data_is_the_faceworld_head2head_layout(tmp_path: Path):
    faceworld = {"writer": "head2head", "num_identities": 1, "frames_per_video": 13, "size": 32, "part_frames": 4,
                 "workers": 1}  # fmt: skip
    module = Head2HeadDataModule(root=None, cache_dir=str(tmp_path), faceworld=faceworld, image_size=32)
    module.setup()
    assert module.resolve_root().name.startswith("head2head-")
    assert [r.name for r in module.items["train"]] == ["id000_000000", "id000_000001"]
    assert [r.frames for r in module.items["test"]] == [tuple(range(8, 13))]
