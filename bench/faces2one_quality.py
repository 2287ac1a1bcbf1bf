"""faces2one against FaceWorld's truth: PSNR / SSIM of the face region and a flicker measure, with and without
temporal smoothing of the vertices (and with / without Poisson blending).

    python bench/faces2one_quality.py --prnet <PRNet .ckpt> [--pairs 2 --frames 40] [--out docs/faces2one/quality.md]

Each pair: identity A's talking-head video gives the texture, identity B's is kept (both FaceWorld H.264 videos,
640x480, 25 fps). The truth of kept frame i is FaceWorld's render of B's frame with A's appearance
(FaceWorld.render(B_i, camera, appearance=A)): A's albedo on B's geometry under B's light, inside B's true face
region (the UV face mask's footprint, src.geometry.regions.position_map_footprint); B's render elsewhere.
Metrics per frame on that region (outputs decoded from the app's .mp4, written losslessly: crf 0):
    psnr_face   PSNR (dB) of the region's pixels
    ssim_face   SSIM (skimage, on the region's bounding box, grey) of output vs truth
    flicker     mean |(out_t - out_t-1) - (truth_t - truth_t-1)| (levels) over pixels in the region at t and t-1:
                temporal change the truth does not have; 0 = as steady as the truth
LPIPS is not reported: its AlexNet backbone weights are not on this machine (nothing is downloaded).
Rows, each for smoothing window 3 (default) / 1 (none) and Poisson on / off:
    predicted maps   the app end to end (detection + tracking, PRNet's crop, the network's position maps)
    true maps        the same texture / render / blend steps (src.apps.faces2one.pipeline.compose_frame) on
                     FaceWorld's TRUE position maps of both videos (no detector, crop or network): the steps' own
                     error, so the gap to the predicted rows is the network's (and the crops')
and "kept video unchanged". The truth lights A's albedo with B's light; a transfer carries A's shading in its
texture, so even true maps differ from it by the light (and Poisson blending pulls the colours to B's border).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.apps.faces2one.network import PositionMapNetwork
from src.apps.faces2one.pipeline import TransferSettings, compose_frame, run_transfer, texture_index
from src.apps.faces2one.transfer import UVSurface, VertexSmoother, take_texture
from src.faceworld.sequences import talking_head
from src.faceworld.writers.common import world_for
from src.faceworld.writers.videos import video_camera_for, write_talking_head_video
from src.geometry.regions import position_map_footprint
from src.io.atomic import write_text_atomic
from src.landmarks.detectors.base import build_detector

VARIANTS = {
    "smoothing 3 + Poisson (default)": {"smoothing_window": 3, "poisson": True},
    "no smoothing + Poisson": {"smoothing_window": 1, "poisson": True},
    "smoothing 3, paste (no Poisson)": {"smoothing_window": 3, "poisson": False},
    "no smoothing, paste (no Poisson)": {"smoothing_window": 1, "poisson": False},
}


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def truth_frames(donor: int, kept: int, frames: int, size: tuple[int, int], seeds: tuple[int, int], map_size: int):
    """(truth frames, face regions, true position maps of the texture video, of the kept video) of kept video
    `kept` with donor `donor`'s appearance (module docstring); maps in frame pixels at `map_size`."""
    world = world_for(256, 256)
    maps_world = world_for(256, map_size)
    camera = video_camera_for(*size)
    donor_motion = talking_head(world, donor, frames, fps=25.0, seed=seeds[0])
    kept_motion = talking_head(world, kept, frames, fps=25.0, seed=seeds[1])
    truths, regions, kept_maps = [], [], []
    for params in kept_motion:
        out = world.render(params, camera, ("rgb", "position_map"))
        swapped = world.render(params, camera, ("rgb",), appearance=donor_motion[0])["rgb"]
        region = position_map_footprint(out["position_map"], world.uv_face_mask(), *size)
        truths.append(np.where(region[..., None], swapped, out["rgb"]))
        regions.append(region)
        kept_maps.append(maps_world.render(params, camera, ("position_map",))["position_map"])
    donor_maps = [maps_world.render(params, camera, ("position_map",))["position_map"] for params in donor_motion]
    return truths, regions, donor_maps, kept_maps


def transfer_with_true_maps(
    kept_frames: list[np.ndarray],
    texture_frames: list[np.ndarray],
    kept_maps: list[np.ndarray],
    texture_maps: list[np.ndarray],
    surface: UVSurface,
    settings: TransferSettings,
) -> list[np.ndarray]:
    """The app's per-frame steps after the network (smoothing, texture remap, render, blend) on given maps."""
    kept_smoother = VertexSmoother(settings.smoothing_window, settings.smoothing_decay)
    window = settings.smoothing_window if settings.smooth_texture_geometry else 1
    texture_smoother = VertexSmoother(window, settings.smoothing_decay)
    textures: dict[int, np.ndarray] = {}
    outputs = []
    for index, frame in enumerate(kept_frames):
        j = texture_index(index, 25.0, 25.0, len(texture_frames))
        if j not in textures:
            textures[j], _ = take_texture(texture_frames[j], texture_smoother(texture_maps[j]), surface)
        outputs.append(compose_frame(frame, textures[j], kept_smoother(kept_maps[index]), surface, settings))
    return outputs


def scores(outputs: list[np.ndarray], truths: list[np.ndarray], regions: list[np.ndarray]) -> dict[str, float]:
    psnr, ssim, flicker = [], [], []
    for t, (out, truth, region) in enumerate(zip(outputs, truths, regions)):
        diff = out[region].astype(np.float64) - truth[region]
        psnr.append(10 * np.log10(255.0**2 / max(np.mean(diff**2), 1e-12)))
        ys, xs = np.nonzero(region)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        grey = [np.asarray(im[box], np.float64).mean(2) for im in (out, truth)]
        ssim.append(structural_similarity(grey[0], grey[1], data_range=255.0))
        if t:
            both = region & regions[t - 1]
            change = out.astype(np.float64) - outputs[t - 1]
            true_change = truth.astype(np.float64) - truths[t - 1]
            flicker.append(np.abs(change - true_change)[both].mean())
    return {"psnr_face": float(np.mean(psnr)), "ssim_face": float(np.mean(ssim)), "flicker": float(np.mean(flicker))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--prnet",
        required=True,
        help="a PRNet .ckpt (python train.py experiment=prnet ...), or "
        "mean-face (FaceWorld's neutral face as every map: checks this script)",
    )
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--out", default=None, help="also write the table to this .md file")
    parser.add_argument("--videos", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = (640, 480)
    folder = Path(args.videos or tempfile.mkdtemp(prefix="faces2one_quality_"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.prnet == "mean-face":  # a check of this script: FaceWorld's neutral face as every position map
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from faces2one_speed import RandomWeightsMeanFace

        network = RandomWeightsMeanFace(96, 2)
    else:
        network = PositionMapNetwork(args.prnet, threads=1)
    surface = UVSurface.from_uv(network.uv)
    rows: dict[str, list[dict[str, float]]] = {}
    counts: dict[str, list[int]] = {}
    with build_detector("mediapipe") as detector:
        for pair in range(args.pairs):
            donor, kept = 100 + 2 * pair, 101 + 2 * pair
            seeds = (10 + pair, 20 + pair)
            paths = {}
            for name, identity, seed in (("source", donor, seeds[0]), ("reference", kept, seeds[1])):
                paths[name] = folder / f"{name}_{identity}_{args.frames}.mp4"
                if not paths[name].is_file():
                    write_talking_head_video(paths[name], identity, args.frames, size=size, fps=25, seed=seed, crf=0)
            truths, regions, donor_maps, kept_maps = truth_frames(donor, kept, args.frames, size, seeds, network.size)
            kept_frames, texture_frames = _frames(paths["reference"]), _frames(paths["source"])
            rows.setdefault("kept video unchanged", []).append(scores(kept_frames, truths, regions))
            for name, changes in VARIANTS.items():
                out = folder / f"pair{pair}_{changes['smoothing_window']}_{int(changes['poisson'])}.mp4"
                settings = TransferSettings(
                    source=str(paths["source"]), reference=str(paths["reference"]), output=str(out), prnet="-",
                    threads=1, crf=0, preview=False, **changes,
                )  # fmt: skip
                stats = run_transfer(settings, detector, network)
                counts.setdefault(f"predicted maps, {name}", []).append(stats["transferred"])
                rows.setdefault(f"predicted maps, {name}", []).append(scores(_frames(out), truths, regions))
                true_out = transfer_with_true_maps(
                    kept_frames, texture_frames, kept_maps, donor_maps, surface, settings
                )
                counts.setdefault(f"true maps, {name}", []).append(len(true_out))
                rows.setdefault(f"true maps, {name}", []).append(scores(true_out, truths, regions))
    lines = [
        f"faces2one quality on FaceWorld ({args.pairs} pairs x {args.frames} frames, 640x480, PRNet {args.prnet})",
        "",
        "| setting | PSNR face (dB) ↑ | SSIM face ↑ | flicker (levels) ↓ | frames transferred |",
        "|---|---|---|---|---|",
    ]
    for name, values in rows.items():
        mean = {k: np.mean([v[k] for v in values]) for k in values[0]}
        done = f"{sum(counts[name])}/{args.pairs * args.frames}" if name in counts else "-"
        lines.append(f"| {name} | {mean['psnr_face']:.2f} | {mean['ssim_face']:.3f} | {mean['flicker']:.2f} | {done} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(args.out, text)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
