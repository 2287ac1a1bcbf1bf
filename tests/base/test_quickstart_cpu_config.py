"""conf/quickstart/cpu.yaml: the training length its comments and the README state, and the settings that make
the first model generalise (mirroring, no GAN, the LR decaying over the whole run), checked on the composed config
and on the model it builds."""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from src.datamodules.base import split_by_group
from src.io.rgbd_layout import frame_group

CONF = Path(__file__).resolve().parents[2] / "conf"
# The figures cpu.yaml's comments and the README's quick-start paragraph give.
DOCUMENTED_STEPS = 4437
DOCUMENTED_BATCHES_PER_EPOCH = 493


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    out = tmp_path_factory.mktemp("quickstart")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train.yaml", ["experiment=rgbd_face", "quickstart=cpu", f"paths.output_dir={out}"])


def test_the_documented_step_count_follows_from_the_data_settings(quickstart: DictConfig) -> None:
    data = quickstart.data
    faceworld = data.faceworld
    # Frame names as the FaceWorld writer makes them: identity i, frame j -> id{i:03d}_{j:06d}; eval is the last ids.
    training_ids = faceworld.num_identities - faceworld.eval_identities
    frames = [f"id{i:03d}_{j:06d}" for i in range(training_ids) for j in range(faceworld.frames_per_identity)]
    kept, held_out = split_by_group(frames, data.val_fraction, frame_group, data.split_seed)
    assert len(held_out) == round(data.val_fraction * training_ids)  # whole identities, one frame each
    batches = math.ceil(len(kept) / data.batch_size)  # the last, partial batch is trained too (drop_last False)
    assert batches == DOCUMENTED_BATCHES_PER_EPOCH
    assert batches * quickstart.trainer.max_epochs == DOCUMENTED_STEPS


def test_the_lr_decays_over_the_whole_run_and_the_final_weights_are_tested(quickstart: DictConfig) -> None:
    scheduler = quickstart.model.scheduler
    assert scheduler.n_epochs + scheduler.n_epochs_decay == quickstart.trainer.max_epochs
    assert quickstart.monitor is None  # no best-epoch pick: last.ckpt is what comparison.md scores


def test_the_model_it_builds_mirrors_and_trains_no_discriminator(quickstart: DictConfig) -> None:
    model = hydra.utils.instantiate(quickstart.model)
    assert model.mirror_probability == 0.5
    assert model.loss_weights["gan"] == 0.0
    assert all(weight == 0.0 for weight in quickstart.model.discriminator_loss_weights.values())
    assert quickstart.data.faceworld.frames_per_identity == 1  # many identities, one frame each
