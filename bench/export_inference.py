"""Frames per second of the exported RGBD generator: eager PyTorch vs TorchScript vs ONNX Runtime.

The original kept its non-HD generator "for reasonable framerates in VR"; this is the number to watch.
unet_256 runs at 256 px and unet_512 at 512 px (ngf 64, BatchNorm, 1 -> 4 channels, batch 1), each exported
with src.export.export_generator (so the files timed are the files deployed, checked against eager first).

    python bench/export_inference.py                       # CPU, both sizes
    python bench/export_inference.py --device cuda --iters 100
    python bench/export_inference.py --sizes 256 --ngf 32 --threads 2

Timing: warm-up runs first (allocator, cuDNN autotune, ORT graph optimisation), then `--iters` timed frames
per backend, taken round robin (eager, TorchScript, ORT, eager, ...) and summarised by the median;
on CUDA every frame ends with torch.cuda.synchronize() so kernel time is counted, not kernel launches (the
original measured without a sync). ONNX Runtime gets the input as a host array and returns one, so its
figure includes the host <-> device copies a frame pipeline would pay; the PyTorch figures keep data on the
device. Numbers on a shared machine are pessimistic.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.export import ONNX_FILE, TORCHSCRIPT_FILE, export_generator
from src.models.components.generators import build_generator
from src.models.components.norms import count_parameters


def time_interleaved(
    runs: dict[str, Callable[[], object]], warmup: int, iters: int, cuda: bool
) -> dict[str, list[float]]:
    """Seconds per frame of each backend; frames alternate between backends (round robin) so that load from
    other processes on a shared machine falls on all of them alike."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    if cuda:
        torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(iters):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def bench_size(size: int, args: argparse.Namespace, work_dir: Path) -> list[tuple[str, float]]:
    import onnxruntime as ort

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    generator = build_generator(f"unet_{size}", 1, 4, ngf=args.ngf, norm="batch", dropout=True).to(device).eval()
    print(f"\nunet_{size} @ {size}x{size}, ngf {args.ngf}: {count_parameters(generator):,} parameters")
    out_dir = work_dir / f"unet_{size}"
    t0 = time.perf_counter()
    manifest = export_generator(generator, torch.zeros(1, 1, size, size, device=device), out_dir)
    diffs = ", ".join(f"{k} max|diff| {v['max_abs_diff']:.1e}" for k, v in manifest["formats"].items())
    print(f"  exported + checked in {time.perf_counter() - t0:.1f} s ({diffs})")

    x = torch.rand(1, 1, size, size, device=device) * 2 - 1
    scripted = torch.jit.load(str(out_dir / TORCHSCRIPT_FILE), map_location=device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    providers = [p for p in providers if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(out_dir / ONNX_FILE), sess_options=options, providers=providers)
    feed = {session.get_inputs()[0].name: x.cpu().numpy()}
    ort_name = f"onnxruntime ({session.get_providers()[0].removesuffix('ExecutionProvider')})"

    def eager() -> object:
        with torch.inference_mode():
            return generator(x)

    def torchscript() -> object:
        with torch.inference_mode():
            return scripted(x)

    runs = {"eager": eager, "torchscript": torchscript, ort_name: lambda: session.run(None, feed)}
    times = time_interleaved(runs, args.warmup, args.iters, cuda)
    return [(name, statistics.median(seconds)) for name, seconds in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], choices=[128, 256, 512])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and ONNX Runtime")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"warm-up {args.warmup}, timed {args.iters} frames (median)")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="facesynth-bench-") as work:
        for size in args.sizes:
            for name, seconds in bench_size(size, args, Path(work)):
                rows.append((size, name, seconds))
    print(f"\n{'size':>5}  {'backend':<28} {'ms/frame':>10} {'frames/s':>9} {'vs eager':>9}")
    eager_by_size = {size: s for size, name, s in rows if name == "eager"}
    for size, name, seconds in rows:
        ratio = eager_by_size[size] / seconds
        print(f"{size:>5}  {name:<28} {seconds * 1e3:>10.1f} {1.0 / seconds:>9.2f} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
