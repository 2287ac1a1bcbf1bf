"""What longer training and more identities buy the rgbd_face quick start, scored on unseen identities.

    python bench/convergence.py --quick          # 0.5 / 1 CPU-min; 25 / 100 / all identities at 0.5 CPU-min
    python bench/convergence.py                  # 2 / 5 / 10 / 20 CPU-min; 25 / 50 / 100 / 200 / 400 / all at 5
    python bench/convergence.py --minutes 5 10 --identities 100 400 --identity-minutes 5 data.batch_size=8

Every run trains the quick-start model (`experiment=rgbd_face quickstart=cpu` plus any train.py overrides given
after the options) from the same seed and is scored on the held-out split: the dataset's eval/ identities, never
trained on and the same frames for every run. Two sweeps, printed side by side from one process:
- CPU minutes: the full training split, budgets of --minutes CPU minutes;
- identities: the first K training identities of the same dataset (a folder of links, so camera, depth encoding
  and held-out frames stay identical), all at --identity-minutes.
A budget becomes a step count through a CPU-seconds-per-step rate measured on this machine at the start (a few
throw-away steps; --cpu-s-per-step fixes it instead). Every run keeps the config's schedule shape whatever its
length: the same shares of constant and linearly decaying LR epochs (model.scheduler n_epochs : n_epochs_decay),
at least 10 epochs; when the training split holds more than a tenth of the steps, each LR epoch is a shuffled
draw of steps/10 batches. Training time is this process's CPU time from the first to the last training step
(validation is off: it is not training), so other jobs on a shared machine inflate the wall time, not the
figures; both are printed, with the machine's load average (1 min) at the start and end of every run. Run it
at low priority on a shared machine (`nice -n 10 python bench/convergence.py`): CPU budgets hold whatever the
load, only the wall time grows. The final weights
are scored (the EMA copy when the config enables one), as the quick start does.
Writes <out>/convergence.json and .md, and a plot (default docs/convergence.png): PSNR RGBD, depth MAE and the
share of background predicted as face against CPU minutes and against identities, with the untrained generator
and the mean face as reference lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
os.environ.setdefault("PROJECT_ROOT", str(REPO))

import hydra  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from lightning.pytorch import Callback, LightningModule, Trainer  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from src.io.rgbd_layout import frame_group, processed_paths  # noqa: E402
from src.utils.errors import UserError  # noqa: E402
from src.utils.scoring import score_on_test, untrained_system  # noqa: E402

log = logging.getLogger("convergence")

FULL = {"minutes": (2.0, 5.0, 10.0, 20.0), "identities": (25, 50, 100, 200, 400, 0), "identity_minutes": 5.0}
QUICK = {"minutes": (0.5, 1.0), "identities": (25, 100, 0), "identity_minutes": 0.5}
# Held-out metrics in the table (direction: +1 higher is better, -1 lower); the first three are plotted.
METRICS = {
    "psnr_rgbd": ("PSNR RGBD (dB)", 1),
    "depth_mae_mm": ("depth MAE (mm)", -1),
    "background_as_face": ("background predicted as face", -1),
    "psnr_rgb": ("PSNR RGB (dB)", 1),
    "ssim_rgbd": ("SSIM RGBD", 1),
    "depth_rmse_mm": ("depth RMSE (mm)", -1),
}
MIN_LR_EPOCHS = 10
CALIBRATION_BATCHES = (4, 14)  # CPU time is read between these batches (the first ones warm caches and allocators)


class TrainingClock(Callback):
    """CPU and wall seconds of this process from the first training batch to the end of the last one, and the
    batches trained (a GAN's global_step counts the optimizer steps of G and D, two per batch)."""

    def __init__(self, stop_after_batches: int | None = None) -> None:
        self.stop_after_batches = stop_after_batches
        self.marks: list[tuple[float, float]] = []  # (CPU s, wall s) before batch 1, then after each batch

    def _mark(self) -> None:
        self.marks.append((time.process_time(), time.perf_counter()))

    @property
    def batches(self) -> int:
        return max(0, len(self.marks) - 1)

    def on_train_batch_start(self, trainer: Trainer, *args: Any) -> None:
        if not self.marks:
            self._mark()

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        self._mark()
        if self.stop_after_batches is not None and self.batches >= self.stop_after_batches:
            trainer.should_stop = True

    def seconds(self, first: int = 0, last: int | None = None) -> tuple[float, float]:
        """(CPU s, wall s) from after batch `first` to after batch `last` (default: the whole fit)."""
        (c0, w0), (c1, w1) = self.marks[first], self.marks[self.batches if last is None else last]
        return c1 - c0, w1 - w0


def compose_config(overrides: Sequence[str], out_dir: Path) -> DictConfig:
    """The quick-start training config with the user's overrides (no Hydra run folder: outputs go to out_dir)."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "train.yaml",
            overrides=["experiment=rgbd_face", "quickstart=cpu", *overrides, f"paths.output_dir={out_dir}"],
        )
    return cfg


def identity_subset(root: Path, frame_ids: Sequence[str], count: int, into: Path) -> tuple[Path, int]:
    """A dataset folder of links: the first `count` identities of `frame_ids` as train/, eval/ and config as is.
    Returns (folder, frames)."""
    groups = sorted({frame_group(f) for f in frame_ids})
    if count > len(groups):
        raise UserError(f"--identities {count}: the training split holds only {len(groups)} identities")
    keep = set(groups[:count])
    chosen = [f for f in frame_ids if frame_group(f) in keep]
    if into.exists():
        shutil.rmtree(into)
    for path in root.iterdir():
        if path.name != "train":
            (into / path.name).parent.mkdir(parents=True, exist_ok=True)
            (into / path.name).symlink_to(path.resolve())
    for frame_id in chosen:
        for kind, source in processed_paths(root, "train", frame_id).items():
            link = processed_paths(into, "train", frame_id)[kind]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source.resolve())
    return into, len(chosen)


def make_trainer(epochs: int, batches_per_epoch: int | None, callbacks: list[Callback]) -> Trainer:
    return Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        limit_train_batches=batches_per_epoch,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def build_system(cfg: DictConfig, epochs: int) -> LightningModule:
    """The model of the config, seeded like train.py, with its LR schedule stretched over `epochs` epochs."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if model_cfg.get("scheduler"):
        model_cfg["scheduler"]["n_epochs"], model_cfg["scheduler"]["n_epochs_decay"] = stretch_schedule(
            int(model_cfg["scheduler"]["n_epochs"]), int(model_cfg["scheduler"]["n_epochs_decay"]), epochs
        )
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    return hydra.utils.instantiate(OmegaConf.create(model_cfg))


def stretch_schedule(n_epochs: int, n_epochs_decay: int, epochs: int) -> tuple[int, int]:
    """(constant, decaying) LR epochs that sum to `epochs` in the config's proportion (a linear policy's shape:
    3 + 3 stays half and half, 0 + 6 decays all the way)."""
    total = n_epochs + n_epochs_decay
    if total <= 0:
        raise UserError(
            f"model.scheduler: n_epochs + n_epochs_decay must be positive, got {n_epochs} + {n_epochs_decay}"
        )
    constant = round(epochs * n_epochs / total)
    return constant, epochs - constant


def plan(steps: int, frames: int, batch_size: int) -> tuple[int, int | None]:
    """(LR epochs, batches per epoch or None for whole epochs) that give about `steps` steps in the quick start's
    schedule shape: at least MIN_LR_EPOCHS epochs, an even number of them."""
    per_epoch = math.ceil(frames / batch_size)
    if steps >= MIN_LR_EPOCHS * per_epoch:
        epochs = max(MIN_LR_EPOCHS, 2 * round(steps / per_epoch / 2))
        return epochs, None
    return MIN_LR_EPOCHS, max(1, round(steps / MIN_LR_EPOCHS))


def calibrate(cfg: DictConfig, datamodule: Any) -> float:
    """CPU seconds per training step (one batch: a D and a G update) of this config here, from throw-away steps."""
    first, last = CALIBRATION_BATCHES
    clock = TrainingClock(stop_after_batches=last)
    model = build_system(cfg, 2)
    make_trainer(1, last, [clock]).fit(model, datamodule=datamodule)
    cpu, _ = clock.seconds(first, last)
    return cpu / (last - first)


def train_and_score(cfg: DictConfig, datamodule: Any, frames: int, steps: int) -> dict[str, Any]:
    """Train for about `steps` steps in the quick start's schedule shape; score the final weights held out."""
    epochs, per_epoch = plan(steps, frames, int(cfg.data.batch_size))
    clock = TrainingClock()
    model = build_system(cfg, epochs)
    trainer = make_trainer(epochs, per_epoch, [clock])
    load_start = os.getloadavg()[0]
    trainer.fit(model, datamodule=datamodule)
    cpu, wall = clock.seconds()
    load_end = os.getloadavg()[0]
    summary = score_on_test(make_trainer(1, None, []), model, datamodule)["summary"]
    result = {name: float(summary[name]["mean"]) for name in METRICS if name in summary}
    result.update(steps=clock.batches, epochs=epochs, cpu_min=cpu / 60.0, wall_min=wall / 60.0)
    result.update(load_start=load_start, load_end=load_end)
    return result


def reference_rows(cfg: DictConfig, datamodule: Any) -> dict[str, dict[str, float]]:
    """Held-out metrics of the untrained generator and of the model's input-independent baselines (mean face)."""
    model = untrained_system(cfg)
    tester = make_trainer(1, None, [])
    rows = {"untrained": score_on_test(tester, model, datamodule)["summary"]}
    for name, baseline in model.baselines(datamodule).items():
        rows[name] = score_on_test(tester, model, datamodule, baseline)["summary"]
    return {row: {m: float(s[m]["mean"]) for m in METRICS if m in s} for row, s in rows.items()}


def markdown(results: dict[str, Any]) -> str:
    """The two sweeps and the reference rows as one Markdown table."""
    names = [m for m in METRICS if any(m in r for r in results["runs"] + list(results["references"].values()))]
    header = ["sweep", "identities", "budget (CPU-min)", "CPU-min", "wall-min", "load", "steps", "LR epochs"]
    header += [f"{METRICS[m][0]} {'↑' if METRICS[m][1] > 0 else '↓'}" for m in names]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for run in results["runs"]:
        cells = [run["sweep"], str(run["identities"]), f"{run['budget_min']:g}", f"{run['cpu_min']:.2f}"]
        load = f"{run['load_start']:.1f}-{run['load_end']:.1f}" if "load_start" in run else "n/a"
        cells += [f"{run['wall_min']:.2f}", load, str(run["steps"]), str(run["epochs"])]
        cells += [f"{run[m]:.3f}" if m in run else "n/a" for m in names]
        lines.append("| " + " | ".join(cells) + " |")
    for row, metrics in results["references"].items():
        cells = [row, "-", "-", "-", "-", "-", "-", "-"] + [
            f"{metrics[m]:.3f}" if m in metrics else "n/a" for m in names
        ]
        lines.append("| " + " | ".join(cells) + " |")
    machine = results.get("machine")
    if machine:
        loads = [f"{machine[k][0]:.1f}" for k in ("load_average_at_start", "load_average_at_end") if k in machine]
        lines.append("")
        lines.append(
            f"{results['threads']} torch thread(s), {results['cpu_s_per_step']:.3f} CPU-s per step; machine: "
            f"{machine['cpus']} CPUs, load average (1 min) {' -> '.join(loads)}, bench at nice {machine['niceness']}."
        )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Three metrics (rows) against CPU minutes and identities (columns), with the reference rows as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(METRICS)[:3]
    sweeps = [("minutes", "cpu_min", "training CPU minutes"), ("identities", "identities", "training identities")]
    fig, axes = plt.subplots(len(shown), 2, figsize=(10, 3.0 * len(shown)), squeeze=False)
    styles = {"untrained": ("tab:gray", ":"), "mean_face": ("tab:red", "--")}
    for col, (sweep, key, label) in enumerate(sweeps):
        runs = sorted((r for r in results["runs"] if r["sweep"] == sweep), key=lambda r: r[key])
        for row, metric in enumerate(shown):
            ax = axes[row][col]
            points = [(r[key], r[metric]) for r in runs if metric in r]
            if points:
                ax.plot(*zip(*points, strict=True), "o-", color="tab:blue", label="trained (final weights)")
                ax.set_xscale("log")
                ax.set_xticks(
                    [p[0] for p in points], [f"{p[0]:.2f}" if key == "cpu_min" else str(p[0]) for p in points]
                )
                ax.minorticks_off()
            for name, values in results["references"].items():
                if metric in values:
                    color, dash = styles.get(name, ("tab:green", "-."))
                    ax.axhline(values[metric], color=color, linestyle=dash, label=name.replace("_", " "))
            ax.set_xlabel(label)
            ax.set_ylabel(METRICS[metric][0])
            ax.grid(alpha=0.3)
            if row == 0:
                subtitle = (
                    "full training split" if sweep == "minutes" else f"at {results['identity_minutes']:g} CPU-min"
                )
                ax.set_title(f"held out, vs {label} ({subtitle})", fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the reduced sweep (defaults of the options below)")
    parser.add_argument("--minutes", type=float, nargs="*", help="CPU-minute budgets on the full training split")
    parser.add_argument("--identities", type=int, nargs="*", help="training identities (0 = all) at --identity-minutes")
    parser.add_argument("--identity-minutes", type=float, help="CPU-minute budget of the identity sweep")
    parser.add_argument("--cpu-s-per-step", type=float, help="skip the calibration and plan with this rate")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the quick start uses 2)")
    parser.add_argument("--out", type=Path, default=REPO / "logs" / "bench" / "convergence", help="results folder")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "convergence.png", help="PNG to write")
    parser.add_argument("overrides", nargs="*", help="train.py overrides, e.g. model.generator.ngf=48")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.minutes = preset["minutes"] if args.minutes is None else args.minutes
    args.identities = preset["identities"] if args.identities is None else args.identities
    args.identity_minutes = preset["identity_minutes"] if args.identity_minutes is None else args.identity_minutes
    for name, values in (("--minutes", args.minutes), ("--identity-minutes", [args.identity_minutes])):
        if any(not v > 0 for v in values):
            raise UserError(f"{name} must be positive, got {values}")
    if any(k < 0 for k in args.identities):
        raise UserError(f"--identities must be >= 0 (0 = all), got {args.identities}")
    if args.cpu_s_per_step is not None and not args.cpu_s_per_step > 0:
        raise UserError(f"--cpu-s-per-step must be positive, got {args.cpu_s_per_step}")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if any("=" not in o for o in args.overrides):
        raise UserError(f"overrides must be key=value, got {[o for o in args.overrides if '=' not in o]}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(args.overrides, args.out / "run")

    started = time.process_time(), time.perf_counter()
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    root, train_frames = Path(datamodule.root), list(datamodule.items["train"])
    all_identities = len({frame_group(f) for f in train_frames})
    requested = [k or all_identities for k in args.identities]
    if max(requested, default=0) > all_identities:
        raise UserError(f"--identities {max(requested)}: the training split holds only {all_identities} identities")
    data_cpu, data_wall = time.process_time() - started[0], time.perf_counter() - started[1]
    log.info(
        f"dataset {root}: {len(train_frames)} training frames of {all_identities} identities, "
        f"{len(datamodule.items['test'])} held-out frames (ready in {data_wall:.0f} s wall, {data_cpu:.0f} s CPU "
        "of this process; a first generation also spends CPU in its worker processes)"
    )

    rate = args.cpu_s_per_step or calibrate(cfg, datamodule)
    log.info(f"{'given' if args.cpu_s_per_step else 'measured'}: {rate:.3f} CPU-s per step ({args.threads} threads)")
    results: dict[str, Any] = {
        "config_overrides": list(args.overrides),
        "threads": args.threads,
        "cpu_s_per_step": rate,
        "identity_minutes": args.identity_minutes,
        "training_identities": all_identities,
        "held_out_frames": len(datamodule.items["test"]),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "niceness": os.nice(0)},
        "references": reference_rows(cfg, datamodule),
        "runs": [],
    }

    def record(run: dict[str, Any]) -> None:
        results["runs"].append(run)
        log.info(
            f"{run['sweep']} {run['identities']} ids {run['budget_min']:g} min: "
            + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in run.items())
        )

    for minutes in sorted(args.minutes):
        run = train_and_score(cfg, datamodule, len(train_frames), round(minutes * 60 / rate))
        record({"sweep": "minutes", "identities": all_identities, "budget_min": minutes, **run})
    with tempfile.TemporaryDirectory(prefix="convergence-") as scratch:
        for count in sorted(set(requested)):
            done = [r for r in results["runs"] if r["budget_min"] == args.identity_minutes]
            if count == all_identities and done:  # the same run as the minutes sweep's: reuse it
                record({**done[0], "sweep": "identities"})
                continue
            subset, frames = identity_subset(root, train_frames, count, Path(scratch) / f"ids{count}")
            data = hydra.utils.instantiate(cfg.data, root=str(subset), val_fraction=0.0)
            run = train_and_score(cfg, data, frames, round(args.identity_minutes * 60 / rate))
            record({"sweep": "identities", "identities": count, "budget_min": args.identity_minutes, **run})

    results["machine"]["load_average_at_end"] = os.getloadavg()
    table = markdown(results)
    (args.out / "convergence.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "convergence.md").write_text(table)
    plot(results, args.plot)
    print(table, end="")
    print(f"written: {args.out / 'convergence.md'}, {args.out / 'convergence.json'}, {args.plot}")
    return results


if __name__ == "__main__":
    from src.utils.errors import run_cli

    run_cli(main)
