"""Every config composes: train and eval of every experiment, every group option, the sweeps and debug modes."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from framework_fixtures import CONF_DIR, compose_config

from src.callbacks.run_config import resolved_run_config
from src.utils.errors import UserError, describe_user_error

CONF = Path(CONF_DIR)
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_train_and_eval_compose_for_every_experiment(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [f"experiment={experiment}", f"paths.output_dir={tmp_path}"])
    assert cfg.model._target_ and cfg.data._target_ and cfg.trainer._target_
    resolved_run_config(cfg)  # every interpolation resolves
    out = f"paths.output_dir={tmp_path}"
    quick_name = "cpu" if experiment == "rgbd_face" else experiment  # conf/quickstart/<experiment>.yaml
    if (CONF / "quickstart" / f"{quick_name}.yaml").is_file():
        quick = compose_config("train.yaml", [f"experiment={experiment}", f"quickstart={quick_name}", out])
        assert quick.compare_baselines and quick.export  # the quick start scores its baselines and exports
        if cfg.data.get("image_size") and quick.data.get("image_size"):
            assert quick.data.image_size <= cfg.data.image_size
    evaluation = compose_config(
        "eval.yaml", [f"experiment={experiment}", "ckpt=x.ckpt", f"paths.output_dir={tmp_path}"]
    )
    assert evaluation.model._target_ == cfg.model._target_


def test_rgbd_face_keeps_the_original_settings(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["experiment=rgbd_face", f"paths.output_dir={tmp_path}"])
    assert cfg.model.generator.name == "unet_512" and cfg.model.generator.ngf == 64
    assert cfg.model.discriminator.num_D == 3 and cfg.model.discriminator.n_layers == 4
    assert cfg.model.loss_weights.l1 == 100 and cfg.model.criteria.gan.mode == "lsgan"
    assert cfg.model.optimizer_g.lr == 2e-4 and list(cfg.model.optimizer_d.betas) == [0.5, 0.999]
    assert (cfg.model.scheduler.n_epochs, cfg.model.scheduler.n_epochs_decay) == (30, 70)
    assert cfg.trainer.max_epochs == 100 and cfg.data.image_size == 512


@pytest.mark.parametrize("generator", options("model/generator"))
def test_every_generator_config_builds(generator: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [f"model/generator={generator}", "model.generator.ngf=4"])
    net = hydra.utils.instantiate(cfg.model.generator)
    side = 128 if generator == "unet_128" else 64
    if generator in ("unet_256", "unet_512"):
        side = int(generator.split("_")[1])
    with torch.no_grad():
        out = net.eval()(torch.zeros(1, 1, side, side))
    assert out.shape == (1, 4, side, side)


@pytest.mark.parametrize("discriminator", options("model/discriminator"))
def test_every_discriminator_config_builds(discriminator: str) -> None:
    cfg = compose_config("train.yaml", [f"model/discriminator={discriminator}", "model.discriminator.ndf=4"])
    net = hydra.utils.instantiate(cfg.model.discriminator)
    outputs = net(torch.zeros(1, 5, 64, 64))
    assert isinstance(outputs, list) and outputs[0][-1].dim() == 4


@pytest.mark.parametrize(
    "override",
    [f"trainer={t}" for t in options("trainer")]
    + [f"logger={lg}" for lg in options("logger")]
    + [f"debug={d}" for d in options("debug")]
    + [f"callbacks={c}" for c in options("callbacks")]
    + [f"hparams_search={h}" for h in options("hparams_search")],
)
def test_group_options_compose(override: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["experiment=rgbd_face", override, f"paths.output_dir={tmp_path}"])
    if override.startswith("hparams_search"):
        assert cfg.optimized_metric and cfg.hydra.sweeper.params and cfg.hydra.sweeper.max_failure_rate > 0
    if override == "trainer=ddp":
        assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"


def test_unreachable_visdom_server_is_one_line(tmp_path: Path) -> None:
    from src.utils.visdom_logger import VisdomLogger

    with pytest.raises(UserError) as info:
        VisdomLogger(server="http://127.0.0.1", port=1, timeout_seconds=1)
    assert "no server at http://127.0.0.1:1" in str(info.value) and "\n" not in str(info.value)


def test_instantiation_error_wrapping_a_user_error_shows_the_inner_message(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["experiment=rgbd_face", "model.update_order=sideways"])
    with pytest.raises(Exception) as info:
        hydra.utils.instantiate(cfg.model)
    assert describe_user_error(info.value) == (
        "model.update_order must be one of ('d_first', 'g_first'), got 'sideways'"
    )


def test_checkpoint_monitor_comes_from_the_experiment(tmp_path: Path) -> None:
    """The default callbacks assume no system's metric: without an experiment only last.ckpt is kept."""
    neutral = compose_config("train.yaml", [f"paths.output_dir={tmp_path}"])
    assert neutral.monitor is None and neutral.callbacks.model_checkpoint.monitor is None
    rgbd = compose_config("train.yaml", ["experiment=rgbd_face", f"paths.output_dir={tmp_path}"])
    assert (rgbd.callbacks.model_checkpoint.monitor, rgbd.callbacks.model_checkpoint.mode) == ("val/psnr_rgbd", "max")
    assert rgbd.callbacks.model_checkpoint._target_ == "src.utils.checkpoint.LastEpochCheckpoint"


def test_sweep_folder_resolves_before_hydra_sets_its_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hydra resolves hydra.sweep.dir before HydraConfig exists: nothing it depends on may use ${hydra:...}."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    cfg = compose_config("train.yaml", ["experiment=rgbd_face"])
    HydraConfig.instance().cfg = None  # as in a multirun, before the first job starts
    monkeypatch.setenv("PROJECT_ROOT", "/some/project")
    assert OmegaConf.select(cfg, "hydra.sweep.dir").startswith("/some/project/logs/train/multiruns/")
    monkeypatch.delenv("PROJECT_ROOT")
    assert OmegaConf.select(cfg, "hydra.sweep.dir").startswith("./logs/train/multiruns/")
