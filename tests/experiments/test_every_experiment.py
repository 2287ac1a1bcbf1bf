"""Every experiment, on its tiny settings: train one step, save -> reload, export, eval, and reject a misspelt key.

Discovery: every conf/experiment/<name>.yaml is a test case, so an experiment is covered the day its file is
added. Its tiny settings are conf/tiny/<name>.yaml (a `# @package _global_` override applied as `+tiny=<name>`
after the experiment, so it can swap networks for small ones, shrink the FaceWorld default data and the trainer
limits); an experiment WITHOUT one fails `test_experiment_has_tiny_settings` and every other case of it, with a
message saying what to add. The checks:

1. `train()` of train.py on the composed config with `trainer.fast_dev_run=true`: one training step (every
   update of the system), one val and one test batch, the held-out report and the baseline comparison;
2. save -> reload (src.utils.checkpoint.load_module) gives bit-identical outputs of every declared export
   module on random inputs and of predict_step on a real test batch;
3. every export (TorchScript and ONNX of every declared module) equals the eager module;
4. `eval.py ckpt=...` (its evaluate() on the composed eval.yaml) writes report/index.html;
5. `python train.py experiment=<name> model.lossweights.l1=1` exits 1 with ONE `error:` line (a subprocess);
6. exact resume: a run interrupted mid-epoch (after training batch 4 of 2 epochs x 2 batches, batch size 1, last.ckpt
   written after every batch) and resumed from its last.ckpt through train.py's own resume path ends with every
   tensor of the state dict (weights, EMA, BatchNorm statistics, fitted statistics), every optimizer and
   scheduler state and every validation metric equal to the uninterrupted run's (about 3 CPU-s for rgbd_face).
Measured on 2 busy cores: rgbd_face about 40 s for all five (the ONNX export is the largest part).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def tiny_file(name: str) -> Path:
    return CONF / "tiny" / f"{name}.yaml"


def require_tiny(name: str) -> None:
    if not tiny_file(name).is_file():
        pytest.fail(
            f"experiment {name!r} has no tiny settings: add conf/tiny/{name}.yaml (`# @package _global_`, applied "
            f"as +tiny={name}) that shrinks it to seconds on a CPU; see conf/tiny/rgbd_face.yaml"
        )


def compose(config_name: str, overrides: list[str]) -> Any:
    """Compose like the entry point (Hydra's compose API; the hydra node kept for ${hydra:...})."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    os.environ.setdefault("PROJECT_ROOT", str(REPO))
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    return cfg


def test_experiments_are_discovered() -> None:
    assert "rgbd_face" in EXPERIMENTS


def test_an_experiment_without_tiny_settings_fails_with_what_to_add() -> None:
    with pytest.raises(
        pytest.fail.Exception, match=r"'new_system' has no tiny settings: add conf/tiny/new_system\.yaml"
    ):
        require_tiny("new_system")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_has_tiny_settings(name: str) -> None:
    require_tiny(name)
    first = tiny_file(name).read_text().splitlines()[0].strip()
    assert first == "# @package _global_", f"conf/tiny/{name}.yaml must start with '# @package _global_'"


@pytest.fixture(scope="module", params=EXPERIMENTS)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """fast_dev_run training of one experiment through train.py's train(); its checkpoint saved afterwards."""
    import train as train_entry

    name = request.param
    require_tiny(name)
    out = tmp_path_factory.mktemp(f"run_{name}")
    overrides = [
        f"experiment={name}",
        f"+tiny={name}",
        "trainer.fast_dev_run=true",
        "extras.print_config=false",
        f"paths.output_dir={out}",
        f"paths.log_dir={out}/logs",
        f"paths.data_dir={data_dir}",
    ]
    torch.set_num_threads(1)
    metrics, objects = train_entry.train(compose("train.yaml", overrides))
    checkpoint = out / "tiny.ckpt"
    objects["trainer"].save_checkpoint(checkpoint)
    return {"name": name, "out": out, "metrics": metrics, "checkpoint": checkpoint, **objects}


def test_one_training_step_scores_and_compares(run: dict[str, Any]) -> None:
    trainer, model = run["trainer"], run["model"]
    assert trainer.global_step >= 1, "fast_dev_run made no optimizer step"
    assert any(key.startswith("test/") for key in run["metrics"]), run["metrics"]
    assert (run["out"] / "report" / "index.html").is_file()
    comparison = json.loads((run["out"] / "comparison.json").read_text())
    assert {"trained", "untrained"} <= set(comparison["rows"])
    assert comparison["directions"] == model.headline_metrics()


def _random_inputs(spec: Any, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    rng = torch.Generator().manual_seed(seed)
    return tuple(i.example(batch, rng, torch.device("cpu"), torch.float32) for i in spec.inputs)


def _outputs(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    with torch.no_grad():
        result = module(*inputs)
    return list(result) if isinstance(result, tuple | list) else [result]


def test_save_reload_gives_identical_outputs(run: dict[str, Any]) -> None:
    from src.utils.checkpoint import load_module

    model = run["model"].cpu().eval()
    reloaded, _ = load_module(run["checkpoint"])
    reloaded.eval()
    size = int(run["cfg"].data.image_size)
    mine, theirs = model.export_modules(size), reloaded.export_modules(size)
    assert mine.keys() == theirs.keys()
    for name, spec in mine.items():
        inputs = _random_inputs(spec, 2, seed=7)
        for a, b in zip(_outputs(spec.module, inputs), _outputs(theirs[name].module, inputs)):
            assert torch.equal(a, b), f"{name}: reloaded module differs"
    batch = next(iter(run["datamodule"].test_dataloader()))
    with torch.no_grad():
        expected, got = model.predict_step(batch, 0), reloaded.predict_step(batch, 0)
    tensors = [k for k, v in expected.items() if isinstance(v, torch.Tensor)]
    assert tensors and all(torch.equal(expected[k], got[k]) for k in tensors)


def test_every_export_equals_eager(run: dict[str, Any], tmp_path: Path) -> None:
    from src.export.checkpoint import export_checkpoint
    from src.utils.checkpoint import load_module

    manifest = export_checkpoint(run["checkpoint"], tmp_path)
    module, _ = load_module(run["checkpoint"])
    specs = module.export_modules(int(run["cfg"].data.image_size))
    assert set(manifest["modules"]) == set(specs)
    for name, spec in specs.items():
        entry = manifest["modules"][name]
        assert [i["name"] for i in entry["inputs"]] == [i.name for i in spec.inputs]
        inputs = _random_inputs(spec, 3, seed=11)  # batch 3: neither the trace nor the check batch size
        eager = _outputs(spec.module.eval(), inputs)
        scripted = torch.jit.load(str(tmp_path / entry["formats"]["torchscript"]["file"]))
        session = ort.InferenceSession(
            str(tmp_path / entry["formats"]["onnx"]["file"]), providers=["CPUExecutionProvider"]
        )
        onnx_out = session.run(None, {i.name: x.numpy() for i, x in zip(spec.inputs, inputs)})
        for index, expected in enumerate(eager):
            assert np.abs(_outputs(scripted, inputs)[index].numpy() - expected.numpy()).max() < 1e-4
            assert np.abs(onnx_out[index] - expected.numpy()).max() < 1e-4


def test_eval_writes_the_report(run: dict[str, Any], tmp_path: Path, data_dir: Path) -> None:
    import eval as eval_entry

    overrides = [f"ckpt={run['checkpoint']}", f"paths.output_dir={tmp_path}", "extras.print_config=false"]
    metrics, objects = eval_entry.evaluate(compose("eval.yaml", [*overrides, f"paths.data_dir={data_dir}"]))
    index = tmp_path / "report" / "index.html"
    assert index.is_file() and "Held-out evaluation" in index.read_text()
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    frames = len(objects["results"]["frame_ids"])
    assert frames > 0 and all(len(values) == frames for values in report["per_sample"].values())
    assert metrics and all(key.startswith("test/") for key in metrics)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_misspelt_override_is_one_error_line(name: str, tmp_path: Path) -> None:
    require_tiny(name)
    command = [sys.executable, "train.py", f"experiment={name}", f"+tiny={name}", "model.lossweights.l1=1"]
    command.append(f"hydra.run.dir={tmp_path}")
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lossweights" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------- exact resume
def _resume_overrides(name: str, out: Path, data_dir: Path, *extra: str) -> list[str]:
    """Two epochs of at most two batches, last.ckpt after every batch; the tiny data settings otherwise."""
    return [
        f"experiment={name}",
        f"+tiny={name}",
        "extras.print_config=false",
        f"paths.output_dir={out}",
        f"paths.log_dir={out}/logs",
        f"paths.data_dir={data_dir}",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.deterministic=true",
        "test=false",
        "export=false",
        "compare_baselines=false",
        "callbacks.model_checkpoint.last_every_n_train_steps=1",
        "~callbacks.sample_grid",  # joins batch-size-1 batches into one grid batch (dfdn: mixed regions)
        *extra,
    ]


def _same_tree(a: Any, b: Any, where: str) -> None:
    """Exact equality of nested checkpoint values (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            _same_tree(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{where}: lengths differ"
        for index, (x, y) in enumerate(zip(a, b)):
            _same_tree(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_killed_mid_epoch_and_resumed_equals_uninterrupted(name: str, tmp_path: Path, data_dir: Path) -> None:
    """Interrupted after the first batch of epoch 1 (so last.ckpt is mid-epoch), resumed through train.py's resume
    path: every state tensor, optimizer / scheduler state and validation metric equals the uninterrupted run's."""
    import train as train_entry
    from src.utils.checkpoint import read_checkpoint
    from src.utils.data_order import ResumableLoader
    from tests.experiments.fault_injection import SimulatedKillError

    require_tiny(name)
    torch.set_num_threads(1)
    settings: list[str] = []
    reference_metrics, reference = train_entry.train(
        compose("train.yaml", _resume_overrides(name, tmp_path / "a", data_dir))
    )
    if reference["trainer"].num_training_batches < 2:  # one batch an epoch has no middle: smaller batches
        settings = ["data.batch_size=1"]
        overrides = _resume_overrides(name, tmp_path / "a1", data_dir, *settings)
        reference_metrics, reference = train_entry.train(compose("train.yaml", overrides))
    batches = reference["trainer"].num_training_batches
    assert batches == 2, f"{name}: the tiny training split gives {batches} batch(es) even at batch size 1"
    loader = reference["trainer"].train_dataloader
    assert isinstance(loader, ResumableLoader), (
        f"{name}: the training loader's order cannot be restored ({type(loader.batch_sampler).__name__} / "
        f"{type(loader.sampler).__name__}): a custom batch sampler needs set_epoch(epoch) (src/utils/data_order.py)"
    )
    kill = [
        "+callbacks.kill._target_=tests.experiments.fault_injection.KillAt",
        f"+callbacks.kill.train_batches={batches + 2}",
    ]
    run = tmp_path / "b"
    with pytest.raises(SimulatedKillError):
        train_entry.train(compose("train.yaml", _resume_overrides(name, run, data_dir, *settings, *kill)))
    last = run / "checkpoints" / "last.ckpt"
    progress = read_checkpoint(last)["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["processed"] == batches + 1 and progress["current"]["processed"] == 1

    resume = _resume_overrides(name, run, data_dir, *settings, *kill, f"ckpt_path={last}")
    metrics, resumed = train_entry.train(compose("train.yaml", resume))
    assert resumed["trainer"].fit_loop.epoch_loop.batch_progress.total.processed == 2 * batches
    _same_tree(reference["model"].state_dict(), resumed["model"].state_dict(), "state_dict")
    final_a = read_checkpoint(Path(reference["trainer"].checkpoint_callback.last_model_path))
    final_b = read_checkpoint(last)
    for key in ("optimizer_states", "lr_schedulers", "global_step", "epoch"):
        _same_tree(final_a[key], final_b[key], key)
    scores = {k: float(v) for k, v in reference_metrics.items() if k.startswith("val/") and not k.endswith("_ms")}
    assert scores and scores == {k: float(v) for k, v in metrics.items() if k in scores}
