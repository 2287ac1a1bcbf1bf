"""The head2head quick starts: the FaceForensics++-layout pre-training composes with its documented settings, and its
networks load into the single-target quick start key for key and shape for shape (the documented init_from)."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from src.faceworld.writers.common import identity_seed

REPO = Path(__file__).resolve().parents[2]


def compose_quickstart(experiment: str, quickstart: str, out: Path) -> DictConfig:
    os.environ.setdefault("PROJECT_ROOT", str(REPO))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        overrides = [f"experiment={experiment}", f"quickstart={quickstart}", f"paths.output_dir={out}"]
        return compose("train.yaml", overrides)


@pytest.fixture(scope="module")
def pretraining(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    return compose_quickstart("head2head_ffpp", "head2head_ffpp", tmp_path_factory.mktemp("ffpp"))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    return compose_quickstart("head2head", "head2head", tmp_path_factory.mktemp("target"))


def test_the_pretraining_reads_small_faceworld_videos_in_the_faceforensics_raw_layout(pretraining: DictConfig) -> None:
    data = pretraining.data
    assert data._target_ == "src.datamodules.ffpp.FFPPDataModule" and data.root is None  # FaceWorld, raw layout
    assert data.faceworld.num_videos == 4 and list(data.faceworld.num_frames) == [120, 150]
    assert list(data.faceworld.size) == [320, 180]
    # the preprocessing writes frames at the training size: no resize between the cache and the network
    assert data.preprocess.size == data.image_size == 64
    assert data.preprocess.part_frames == 12 and data.sequence_length <= data.preprocess.part_frames
    assert data.target_name is None  # every identity: the multi-person pre-training


def test_the_pretraining_trains_the_generator_alone_for_its_whole_run(pretraining: DictConfig) -> None:
    model = pretraining.model
    assert model.discriminators is None and model.chunk_frames == 1
    assert (model.loss_weights.l1, model.loss_weights.warp, model.loss_weights.vgg) == (50.0, 10.0, 0.0)
    assert model.eval_refit is False
    assert model.scheduler.n_epochs + model.scheduler.n_epochs_decay == pretraining.trainer.max_epochs
    assert pretraining.trainer.accelerator == "cpu" and pretraining.monitor is None
    assert pretraining.trainer.check_val_every_n_epoch == pretraining.trainer.max_epochs


def test_the_pretrained_generator_fits_the_target_quick_start(pretraining: DictConfig, target: DictConfig) -> None:
    assert pretraining.data.image_size == target.data.image_size
    assert pretraining.model.flow_estimator == target.model.flow_estimator
    # other people: FaceWorld's video k of a seed is identity k of that seed in every layout
    pretraining_people = {identity_seed(pretraining.data.faceworld.seed, k) for k in range(4)}
    target_people = {identity_seed(target.data.faceworld.seed, i) for i in range(target.data.faceworld.num_identities)}
    assert not pretraining_people & target_people
    pretrained = hydra.utils.instantiate(pretraining.model.generator).state_dict()
    fine_tuned = hydra.utils.instantiate(target.model.generator).state_dict()
    assert list(pretrained) == list(fine_tuned)
    assert all(pretrained[key].shape == fine_tuned[key].shape for key in pretrained)
