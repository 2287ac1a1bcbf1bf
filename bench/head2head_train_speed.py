"""head2head training speed: CPU seconds per training frame at the quick-start and at the original's settings.

    python bench/head2head_train_speed.py                      # quick start (64 px) and original (256 px), CPU
    python bench/head2head_train_speed.py --settings quickstart --steps 6
    python bench/head2head_train_speed.py --device cuda        # a GPU machine (wall seconds with synchronisation)

Each setting is composed exactly as train.py composes it (experiment=head2head [quickstart=head2head]), on
synthetic clips in the datamodule's contract (tests/head2head/synthetic.py) so the figure is the model's, not the
data loading's. "original" uses the light DIS flow and no VGG (neither FlowNet2 nor VGG19 weights are shipped), so it
is a lower bound of the original's cost. One training step = one chunk of model.chunk_frames frames x batch size
through every update (D tables, then G). CPU seconds (time.process_time) are reported because wall time on a shared
machine is inflated by other jobs; the 1-minute load average is printed beside the wall figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PROJECT_ROOT", str(REPO))

SETTINGS = {
    "quickstart": ["experiment=head2head", "quickstart=head2head"],
    "original": [
        "experiment=head2head",
        "model.flow_estimator.kind=dis",
        "model.loss_weights.vgg=0",
        "model.chunk_frames=2",
    ],
}


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return hydra_compose(config_name="train.yaml", overrides=overrides)


def measure(name: str, steps: int, device: str) -> dict[str, float]:
    import hydra

    from tests.head2head.synthetic import synthetic_sequence

    cfg = compose(SETTINGS[name])
    model = hydra.utils.instantiate(cfg.model).to(device)
    size, batch_size, chunk = int(cfg.data.image_size), int(cfg.data.batch_size), int(cfg.model.chunk_frames)
    clip = [synthetic_sequence(chunk * steps, size, seed) for seed in range(batch_size)]
    batch = {k: torch.stack([c[k] for c in clip]).to(device) for k in ("nmfc", "eyes", "image", "landmarks")}
    batch["frame_index"] = torch.stack([c["frame_index"] for c in clip]).to(device)
    batch["sequence"] = [c["sequence"] for c in clip]
    optimizers = model.configure_optimizers()
    optimizers = optimizers[0] if isinstance(optimizers, tuple) else optimizers
    model.optimizers = lambda use_pl_optimizer=True: optimizers  # type: ignore[method-assign]
    model.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    model.manual_backward = lambda loss: loss.backward()  # type: ignore[method-assign]
    model.toggle_optimizer = model.untoggle_optimizer = lambda optimizer: None  # type: ignore[method-assign]
    model.train()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    cpu, wall = time.process_time(), time.perf_counter()
    model.run_chunks(batch, model.generator, lambda c, o: model._train_chunk(c, o, None))
    sync()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    frames = batch_size * chunk * steps
    return {
        "image_size": size,
        "generator_parameters": sum(p.numel() for p in model.generator.parameters()),
        "frames": frames,
        "cpu_s_per_frame": cpu / frames,
        "wall_s_per_frame": wall / frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=["quickstart", "original"], choices=sorted(SETTINGS))
    parser.add_argument("--steps", type=int, default=3, help="training steps (chunks) timed per setting")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{args.threads} thread(s), device {args.device}")
    print("| settings | px | G parameters | frames timed | CPU s / frame | frames / CPU-s | wall s / frame | load |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.settings:
        row = measure(name, args.steps, args.device)
        print(
            f"| {name} | {row['image_size']} | {row['generator_parameters']:,} | {row['frames']} | "
            f"{row['cpu_s_per_frame']:.3f} | {1 / row['cpu_s_per_frame']:.2f} | {row['wall_s_per_frame']:.3f} | "
            f"{os.getloadavg()[0]:.1f} |"
        )


if __name__ == "__main__":
    main()
