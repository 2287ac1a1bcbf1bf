"""Datamodule base + RGBD: argument checks naming the key, up-front validation (all problems in one error),
held-out splits by group / in time, empty splits rejected in setup, batch contract."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from framework_fixtures import write_synthetic_rgbd

from src.datamodules.base import FaceDataModule, split_by_time
from src.datamodules.rgbd import RGBDDataModule, depth_unit_to_mm, split_train_val, validate_processed_dataset
from src.io.atomic import write_image_atomic
from src.io.rgbd_layout import DepthEncoding, frame_group, processed_paths
from src.utils.errors import DatasetError, UserError


def test_batch_contract(rgbd_dataset: Path) -> None:
    dm = RGBDDataModule(root=str(rgbd_dataset), batch_size=2, val_fraction=0.25)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["feature"].shape == (2, 1, 32, 32) and batch["rgbd"].shape == (2, 4, 32, 32)
    assert batch["feature"].min() >= -1 and batch["feature"].max() <= 1 and batch["feature"].max() > 0
    assert batch["rgbd"].min() >= -1 and batch["rgbd"].max() <= 1
    assert batch["face_mask"].dtype == torch.bool
    # face mask = where depth has data; background depth is exactly -1
    depth = batch["rgbd"][:, 3:4]
    assert torch.all(depth[~batch["face_mask"]] == -1) and torch.all(depth[batch["face_mask"]] > -1)
    assert batch["landmarks"].shape == (2, 70, 2) and len(batch["frame_id"]) == 2
    assert int(batch["depth_bits"][0]) == 16


def test_depth_unit_to_mm_matches_encoding(rgbd_dataset: Path) -> None:
    dm = RGBDDataModule(root=str(rgbd_dataset), batch_size=3)
    dm.setup()
    batch = next(iter(dm.test_dataloader()))
    encoding = DepthEncoding(float(batch["depth_near_mm"][0]), float(batch["depth_far_mm"][0]), 16)
    mm = depth_unit_to_mm(batch["rgbd"][:, 3:4], batch)
    expected = encoding.unit_to_mm(batch["rgbd"][:, 3:4].numpy())
    face = batch["face_mask"].numpy()
    np.testing.assert_allclose(mm.numpy()[face], expected[face], atol=0.01)


def test_split_by_group_never_shares_a_group() -> None:
    ids = [f"g{g}_{i:06d}" for g in range(10) for i in range(5)]
    train, val = split_train_val(ids, 0.2, "auto", seed=3)
    assert len(val) == 10 and len(train) == 40
    assert not {frame_group(f) for f in train} & {frame_group(f) for f in val}
    assert split_train_val(ids, 0.2, "auto", seed=3) == (train, val)  # deterministic


def test_single_group_holds_out_the_last_block() -> None:
    ids = [f"session_{i:06d}" for i in range(10)]
    train, val = split_train_val(ids, 0.2)
    assert val == ["session_000008", "session_000009"] and train == ids[:8]
    with pytest.raises(DatasetError, match="only the group"):
        split_train_val(ids, 0.2, "group")


def test_validation_lists_every_problem_in_one_error(rgbd_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(rgbd_dataset, root)
    paths = processed_paths(root, "train", "s1_000000")
    data = paths["Color"].read_bytes()
    paths["Color"].write_bytes(data[: len(data) // 2])  # truncated PNG
    processed_paths(root, "train", "s2_000001")["Depth"].unlink()  # missing file
    write_image_atomic(processed_paths(root, "eval", "s9_000000")["Feature"], np.zeros((16, 16), np.uint8))  # size
    write_image_atomic(processed_paths(root, "train", "s3_000002")["Depth"], np.ones((32, 32), np.uint8))  # 8 bits
    with pytest.raises(DatasetError) as info:
        validate_processed_dataset(root)
    message = str(info.value)
    assert "\n" not in message and "4 problem(s)" in message
    assert "s1_000000.png: truncated or corrupt PNG" in message
    assert "train/Depth/s2_000001.png is missing" in message
    assert "image sizes differ" in message and "8-bit depth but config.txt says depth_bits 16" in message


def test_eight_bit_variant_and_resizing(tmp_path: Path) -> None:
    root = write_synthetic_rgbd(tmp_path / "p8", frames=2, size=64, depth_bits=8)
    dm = RGBDDataModule(root=str(root), batch_size=2, image_size=32)
    dm.setup()
    batch = next(iter(dm.test_dataloader()))
    assert batch["rgbd"].shape == (2, 4, 32, 32) and int(batch["depth_bits"][0]) == 8
    assert torch.all(batch["rgbd"][:, 3:4][~batch["face_mask"]] == -1)
    assert float(batch["landmarks"].max()) < 32


def test_missing_root_and_empty_splits_fail_in_setup(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset folder not found"):
        RGBDDataModule(root=str(tmp_path / "nope")).setup()
    root = write_synthetic_rgbd(tmp_path / "noeval", eval_groups=(), frames=1)
    dm = RGBDDataModule(root=str(root))
    with pytest.raises(DatasetError, match=r"noeval: the test split is empty \(read from eval/\)$"):
        dm.setup("fit")  # before any training
    one_group = write_synthetic_rgbd(tmp_path / "onegroup", train_groups=("s1",), frames=1)
    with pytest.raises(DatasetError, match=r"the val split is empty \(read from train/, held-out groups\)$"):
        RGBDDataModule(root=str(one_group), val_fraction=0.5).setup("fit")
    # val_fraction 0 asks for no validation: that empty split is fine, and Lightning gets no val loader
    no_val = RGBDDataModule(root=str(one_group), val_fraction=0.0)
    no_val.setup("fit")
    assert no_val.val_dataloader() == [] and len(no_val.datasets["train"]) == 1


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("batch_size", 0, "data.batch_size must be >= 1, got 0"),
        ("batch_size", 2.5, "data.batch_size must be an integer >= 1, got 2.5"),
        ("image_size", -32, "data.image_size must be >= 1, got -32"),
        ("num_workers", -1, "data.num_workers must be >= 0, got -1"),
        ("val_fraction", 1.0, "data.val_fraction must be in [0, 1), got 1.0"),
        ("val_fraction", -0.1, "data.val_fraction must be in [0, 1), got -0.1"),
        ("split_by", "random", "data.split_by must be one of ('auto', 'group', 'block'), got 'random'"),
        ("max_listed_problems", 0, "data.max_listed_problems must be >= 1, got 0"),
    ],
)
def test_bad_arguments_name_the_config_key(argument: str, value: object, message: str) -> None:
    with pytest.raises(UserError) as info:
        RGBDDataModule(root="anywhere", **{argument: value})
    assert str(info.value) == message


def test_split_by_time_holds_out_the_last_block_of_every_group() -> None:
    ids = [f"a_{i:06d}" for i in range(10)] + [f"b_{i:06d}" for i in range(4)] + ["c_000000"]
    kept, held_out = split_by_time(ids, 0.3, frame_group)
    assert held_out == ["a_000007", "a_000008", "a_000009", "b_000003"]  # round(3.0), round(1.2); c has one frame
    assert sorted(kept + held_out) == sorted(ids)


def test_intrinsics_key_only_when_the_dataset_records_them(rgbd_dataset: Path, tmp_path: Path) -> None:
    dm = RGBDDataModule(root=str(rgbd_dataset), batch_size=2)
    dm.setup()
    assert "intrinsics" not in next(iter(dm.test_dataloader()))  # the synthetic config.txt has none
    root = tmp_path / "with_intrinsics"
    shutil.copytree(rgbd_dataset, root)
    with (root / "config.txt").open("a") as config:
        config.write("fx: 40.0\nfy: 44.0\ncx: 15.5\ncy: 15.5\n")
    dm = RGBDDataModule(root=str(root), batch_size=2, image_size=16)
    dm.setup()
    intrinsics = next(iter(dm.test_dataloader()))["intrinsics"]
    # 32 -> 16 px: focal lengths halve, the centre pixel (15.5 of 0..31) stays the centre (7.5 of 0..15)
    np.testing.assert_allclose(intrinsics.numpy(), [[20.0, 22.0, 7.5, 7.5]] * 2)


def test_faceworld_settings_are_checked_against_the_writer(tmp_path: Path) -> None:
    from src.datamodules.faceworld import ensure_faceworld_dataset, faceworld_dataset_name

    with pytest.raises(DatasetError, match=r"unknown FaceWorld layout 'rgbd'; known: \['dfdn', 'dg', "):
        ensure_faceworld_dataset(tmp_path, "rgbd", {})
    with pytest.raises(
        DatasetError, match=r"data.faceworld: unknown setting\(s\) \['num_identites'\] for the head2head"
    ):
        faceworld_dataset_name("head2head", {"num_identites": 2, "frames_per_video": 4})
    with pytest.raises(
        DatasetError, match=r"data.faceworld.frames_per_identity is required by the rgbd-processed writer"
    ):
        faceworld_dataset_name("rgbd-processed", {"num_identities": 2})
    # the writer's own range check, named as a data.faceworld problem, and nothing left behind
    with pytest.raises(DatasetError, match=r"data.faceworld: size must be one of \(128, 256, 512\), got 100"):
        ensure_faceworld_dataset(
            tmp_path, "rgbd-processed", {"num_identities": 2, "frames_per_identity": 1, "size": 100}
        )
    assert not list(tmp_path.iterdir())
    a = faceworld_dataset_name("dg", {"num_identities": 3})
    assert a == faceworld_dataset_name("dg", {"num_identities": 3, "size": 256})  # 256 is the writer's default
    assert a != faceworld_dataset_name("dg", {"num_identities": 3, "size": 128}) and a.startswith("dg-")


def test_interrupted_generation_leaves_no_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import src.datamodules.faceworld as faceworld

    def writer(root: Path, *, num_identities: int, workers: int = 1) -> None:
        (Path(root) / "train").mkdir(parents=True)
        (Path(root) / "train" / "half.png").write_bytes(b"x")
        raise KeyboardInterrupt  # killed half way

    monkeypatch.setattr(faceworld, "faceworld_writer", lambda name: writer)
    with pytest.raises(KeyboardInterrupt):
        faceworld.ensure_faceworld_dataset(tmp_path, "rgbd-processed", {"num_identities": 2})
    assert not list(tmp_path.iterdir())  # no cache folder a later run would trust, no staging folder


def test_default_data_root_of_a_run_config_is_its_faceworld_cache(tmp_path: Path) -> None:
    from src.datamodules.faceworld import faceworld_cache_path
    from src.export.checkpoint import dataset_root_of_run

    settings = {"num_identities": 3, "frames_per_identity": 2, "eval_identities": 1, "size": 128, "workers": 2}
    data = {
        "_target_": "src.datamodules.rgbd.RGBDDataModule",
        "root": None,
        "cache_dir": str(tmp_path),
        "faceworld": settings,
    }
    expected = faceworld_cache_path(tmp_path, "rgbd-processed", settings)
    assert dataset_root_of_run({"data": data}) == expected
    assert RGBDDataModule(cache_dir=str(tmp_path), faceworld=settings).hparams.faceworld == settings
    assert dataset_root_of_run({"data": {**data, "root": "/data/me"}}) == Path("/data/me")


class _TextFamily(FaceDataModule):
    """A data family of the base in a few lines: <root>/{train,eval}/<group>_<index>.txt holding one number."""

    def scan(self, root: Path) -> tuple[dict[str, list[str]], list[str]]:
        items, problems = {}, []
        for folder in ("train", "eval"):
            items[folder] = []
            for path in sorted((root / folder).glob("*.txt")):
                text = path.read_text().strip()
                if not text.lstrip("-").isdigit():
                    problems.append(f"{folder}/{path.name}: not a number ({text!r})")
                items[folder].append(path.stem)
        return items, problems

    def make_dataset(self, split: str, items: list[str]) -> list[dict]:
        folder = "eval" if split == "test" else "train"
        return [{"value": int((self.root / folder / f"{i}.txt").read_text()), "frame_id": i} for i in items]


def _text_dataset(root: Path, bad: int = 0) -> Path:
    for folder, groups in (("train", ("a", "b", "c", "d")), ("eval", ("e",))):
        (root / folder).mkdir(parents=True)
        for group in groups:
            for index in range(3):
                (root / folder / f"{group}_{index:06d}.txt").write_text(str(index))
    for index in range(bad):
        (root / "train" / f"a_{index:06d}.txt").write_text("oops")
    return root


def test_a_new_family_gets_validation_splits_and_loaders_from_the_base(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        _TextFamily(root=str(_text_dataset(tmp_path / "bad", bad=3)), max_listed_problems=2).setup()
    message = str(info.value)
    assert "3 problem(s) in the dataset: train/a_000000.txt: not a number ('oops')" in message
    assert "train/a_000001.txt" in message and "a_000002" not in message and message.endswith("... and 1 more")
    dm = _TextFamily(root=str(_text_dataset(tmp_path / "good")), batch_size=4, val_fraction=0.25)
    dm.setup()
    groups = ["a", "b", "c", "d"]
    random.Random(0).shuffle(groups)  # split_seed 0: round(0.25 * 4) = 1 whole group, the first after shuffling
    assert {frame_group(i) for i in dm.items["val"]} == {groups[0]}
    assert len(dm.items["train"]) == 9 and dm.items["test"] == ["e_000000", "e_000001", "e_000002"]
    batch = next(iter(dm.test_dataloader()))
    assert batch["value"].tolist() == [0, 1, 2] and batch["frame_id"] == dm.items["test"]


class _ListFamily(_TextFamily):
    """A subclass with container arguments of its own, as Hydra passes them (DictConfig / ListConfig)."""

    def __init__(self, groups: list[str] | None = None, weights: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.groups, self.weights = groups, weights


def test_hyperparameters_are_plain_containers_that_load_weights_only(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    dm = _ListFamily(
        groups=OmegaConf.create(["a", "b"]), weights=OmegaConf.create({"x": 1.0}), faceworld=OmegaConf.create({"n": 2})
    )
    assert dm.hparams["groups"] == ["a", "b"] and type(dm.hparams["groups"]) is list
    assert type(dm.hparams["weights"]) is dict and type(dm.hparams["faceworld"]) is dict
    path = tmp_path / "hp.pt"
    torch.save({"datamodule_hyper_parameters": dict(dm.hparams)}, path)
    assert torch.load(path, weights_only=True)["datamodule_hyper_parameters"]["weights"] == {"x": 1.0}
