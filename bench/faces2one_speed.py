"""faces2one end to end at 640x480: CPU milliseconds per frame per stage, and the frame rate they allow.

    python bench/faces2one_speed.py [--frames 50] [--prnet <PRNet .ckpt>] [--map-size 96 --base-channels 8]

Two FaceWorld talking-head videos (src/faceworld/writers/videos.py, H.264) go through the whole app (decode, face
detection every 10 frames + tracking, PRNet's crop, two PRNet passes, vertex smoothing, UV texture, z-buffer render,
erosion, Poisson blending, H.264 encode, preview and audio mux). Everything runs on ONE thread, and times are CPU
seconds of this process (time.process_time), so other jobs on the machine do not inflate them: 1000 / (CPU ms per
frame) is the frame rate one idle core sustains, a lower bound for two cores. Wall-clock figures are printed with the
load average beside them.

Without --prnet the network is resfcn256 of the quick start's shape with random weights (the same arithmetic as a
trained one) whose answer is replaced by FaceWorld's mean-face position map, so tracking and rendering see a face.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.apps.faces2one.network import PositionMapNetwork, mean_face_position_map
from src.apps.faces2one.pipeline import TransferSettings, run_transfer
from src.faceworld.writers.videos import write_talking_head_video
from src.io.atomic import write_text_atomic
from src.landmarks.detectors.base import build_detector
from src.models.components.prnet_resfcn import ResFCN256


class RandomWeightsMeanFace:
    """resfcn256 with random weights for the cost; FaceWorld's neutral face map as the answer."""

    def __init__(self, size: int, base_channels: int) -> None:
        self.map, self.uv = mean_face_position_map(size)
        self.size = size
        self.network = ResFCN256(base_channels=base_channels).eval()

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            self.network(torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0))
        return np.repeat(self.map[None], len(crops), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--prnet", default=None, help="a PRNet .ckpt / .onnx (default: random weights, see above)")
    parser.add_argument("--map-size", type=int, default=96)
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--videos", default=None, help="folder to keep the generated videos in (default: temporary)")
    parser.add_argument("--out", default=None, help="also write the report to this .md file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.videos or tempfile.mkdtemp(prefix="faces2one_speed_"))
    folder.mkdir(parents=True, exist_ok=True)
    size = (args.width, args.height)
    paths = {name: folder / f"{name}_{args.width}x{args.height}_{args.frames}.mp4" for name in ("source", "reference")}
    for seed, path in enumerate(paths.values()):
        if not path.is_file():
            write_talking_head_video(path, 21 + seed, args.frames, size=size, fps=25, seed=seed)
    if args.prnet:
        network = PositionMapNetwork(args.prnet, threads=1)
        label = f"PRNet {args.prnet} ({network.size} px)"
    else:
        network = RandomWeightsMeanFace(args.map_size, args.base_channels)
        label = f"resfcn256 base {args.base_channels} at {args.map_size} px, random weights + mean-face map"
    settings = TransferSettings(
        source=str(paths["source"]), reference=str(paths["reference"]), output=str(folder / "out.mp4"), prnet="-",
        threads=1,
    )  # fmt: skip
    with build_detector("mediapipe") as detector:
        load_before = os.getloadavg()[0]
        wall = time.perf_counter()
        stats = run_transfer(settings, detector, network)
        wall = time.perf_counter() - wall
    stages = stats["cpu_ms_per_frame"]
    per_frame = sum(stages.values())
    lines = [
        f"faces2one at {args.width}x{args.height}, {stats['frames']} frames, {label}, 1 thread",
        f"transferred {stats['transferred']}, passed through {stats['passed_through']}",
        "",
        "| stage | CPU ms / frame |",
        "|---|---|",
        *[f"| {name} | {value:.1f} |" for name, value in sorted(stages.items(), key=lambda kv: -kv[1])],
        f"| **total per frame** | **{per_frame:.1f}** |",
        "",
        f"frames/s on one idle core (1000 / CPU ms per frame): {1000.0 / per_frame:.1f}",
        f"whole run incl. probing and setup: {stats['cpu_s']:.1f} CPU-s; wall {wall:.1f} s = "
        f"{stats['frames'] / wall:.1f} frames/s at load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} "
        f"({os.cpu_count()} cores)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
