"""FlowNet2 in plain PyTorch: forward frames/s, and our correlation's time and peak memory against a naive one.

    python bench/flownet2_speed.py                        # CPU, 1 thread, 256x256 forward, correlation at 256 / 512
    python bench/flownet2_speed.py --threads 2 --iters 5
    python bench/flownet2_speed.py --device cuda          # on a GPU machine (peak memory from the CUDA allocator)

Forward: the full stack (162,518,834 parameters) with random weights (the speed does not depend on the values),
batch 1, after one warm-up pass; CPU seconds (time.process_time) and wall seconds both reported, because wall time
on a shared machine is inflated by other jobs. Correlation: FlowNetC's layer (441 displacements, 256 channels) at
the feature size of a 256x256 and a 512x512 input (1/8: 32x32 and 64x64). "ours" evaluates one displacement row
at a time (src.models.components.flownet2_ops.correlation); "naive" materialises all 441 shifted copies of the
second feature map (naive_correlation). Peak memory on the CPU is the growth of the process's maximum resident
set during the call (VmHWM after resetting it, Linux), in a fresh subprocess per variant; on CUDA it is
torch.cuda.max_memory_allocated above the inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.models.components.flownet2 import FlowNet2, count_parameters
from src.models.components.flownet2_ops import correlation, naive_correlation

FEATURE_CHANNELS = 256


def forward_speed(size: int, iters: int, device: str) -> dict[str, float]:
    torch.manual_seed(0)
    model = FlowNet2().eval().to(device)
    first = torch.rand(1, 3, size, size, device=device) * 2 - 1
    second = torch.roll(first, 2, dims=3)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        model(first, second)  # warm-up
        sync()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(iters):
            model(first, second)
        sync()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "parameters": count_parameters(model),
        "cpu_s_per_pair": cpu / iters,
        "wall_s_per_pair": wall / iters,
        "pairs_per_s_wall": iters / wall,
    }


def status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> int:
    """Reset the peak resident set (VmHWM) to the current one; returns the current resident set in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return status_bytes("VmRSS")


def correlation_once(variant: str, side: int, device: str) -> dict[str, float]:
    """Run in a fresh process: time and peak-memory growth of one correlation call."""
    torch.manual_seed(0)
    first = torch.randn(1, FEATURE_CHANNELS, side, side, device=device)
    second = torch.randn(1, FEATURE_CHANNELS, side, side, device=device)
    function = correlation if variant == "ours" else naive_correlation
    with torch.no_grad():
        function(first[:, :, :8, :8], second[:, :, :8, :8])  # warm-up of the code path, tiny
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = reset_peak_rss()
        cpu, wall = time.process_time(), time.perf_counter()
        out = function(first, second)
        if device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = status_bytes("VmHWM") - base
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_s": cpu, "wall_s": wall, "peak_mib": peak / 2**20, "output_mib": out.numel() * 4 / 2**20}


def run_isolated(variant: str, side: int, device: str, threads: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", variant, str(side), "--device", device, "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="forward input side (multiple of 64)")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(correlation_once(args.one[0], int(args.one[1]), args.device)))
        return
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average), {args.threads} thread(s), device {args.device}")
    speed = forward_speed(args.size, args.iters, args.device)
    print(
        f"FlowNet2 forward at {args.size}x{args.size} ({speed['parameters']:,} parameters): "
        f"{speed['cpu_s_per_pair']:.2f} CPU-s / pair, {speed['wall_s_per_pair']:.2f} wall-s / pair "
        f"({speed['pairs_per_s_wall']:.2f} frames/s wall)"
    )
    print("correlation (441 displacements, 256 channels), one call:")
    print("| input side | feature side | variant | CPU s | wall s | peak extra MiB | output MiB |")
    print("|---|---|---|---|---|---|---|")
    for input_side in (256, 512):
        side = input_side // 8
        for variant in ("ours", "naive"):
            row = run_isolated(variant, side, args.device, args.threads)
            print(
                f"| {input_side} | {side} | {variant} | {row['cpu_s']:.3f} | {row['wall_s']:.3f} | "
                f"{row['peak_mib']:.0f} | {row['output_mib']:.0f} |"
            )


if __name__ == "__main__":
    main()
