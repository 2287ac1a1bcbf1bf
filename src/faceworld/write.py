"""Write a FaceWorld dataset in one of the systems' on-disk layouts.

    python -m src.faceworld.write <layout> --out DIR [--seed N] [--workers N] [--no-progress] [layout options]

Layouts: rgbd-processed and rgbd-unprocessed (src/faceworld/writers/rgbd.py), head2head, dg, dfdn, prnet (the
modules of the same names in src/faceworld/writers/; their docstrings describe each layout). `<layout> --help`
lists the options. Bad options end with one line naming the option. An interrupted write resumes when rerun with
the same options into the same folder (and finishes byte-identical to an uninterrupted one); other options into
a non-empty folder are refused with one line naming the options that differ.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from src.faceworld.writers.common import STATE_DIR
from src.faceworld.writers.details import DEFAULT_EXPRESSIONS, EXPRESSIONS, write_details_dataset
from src.faceworld.writers.head2head import write_head2head_dataset
from src.faceworld.writers.prnet import write_prnet_dataset
from src.faceworld.writers.reenact import write_reenactment_dataset
from src.faceworld.writers.rgbd import write_processed_dataset, write_unprocessed_capture
from src.faceworld.writers.videos import write_faceforensics_raw
from src.utils.errors import UserError


def _size_pair(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH like 454x380, got {text!r}") from None
    return height, width


def _width_height(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT (video frame size, as video tools write it) -> (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 640x360, got {text!r}") from None
    return width, height


def _compressions(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(names) - {"c0", "c23", "c40"})
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown compression(s) {unknown or [text]}; known: c0, c23, c40")
    return names


def _expressions(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in EXPRESSIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown expression {unknown or text!r}; known: {', '.join(EXPRESSIONS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m src.faceworld.write", description=__doc__.split("\n\n")[0])
    layouts = parser.add_subparsers(dest="layout", required=True, metavar="<layout>")

    def layout(name: str, help_text: str, writer: Callable) -> argparse.ArgumentParser:
        sub = layouts.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--out", required=True, type=Path, help="dataset root folder")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--workers", type=int, default=2, help="worker processes (0 or 1: in this process)")
        sub.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
        sub.set_defaults(writer=writer)
        return sub

    p = layout("rgbd-processed", "RGBD face system, processed (Color/Depth/Feature/Landmark)", write_processed_dataset)
    p.add_argument("--num-identities", type=int, default=4)
    p.add_argument("--frames-per-identity", type=int, default=32)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--depth-bits", type=int, default=16, choices=(8, 16))
    p.add_argument("--eval-identities", type=int, default=1)
    p.add_argument("--fps", type=float, default=15.0)

    p = layout("rgbd-unprocessed", "Azure-Kinect-like capture (Color/Depth/Infrared)", write_unprocessed_capture)
    p.add_argument("--num-sessions", type=int, default=2)
    p.add_argument("--frames-per-session", type=int, default=16)
    p.add_argument("--size", type=_size_pair, default=(454, 380), help="HEIGHTxWIDTH")
    p.add_argument("--eval-sessions", type=int, default=1)
    p.add_argument("--fps", type=float, default=15.0)

    p = layout(
        "head2head", "Head2Head videos (images/nmfcs/landmarks70/misc/exp_coeffs/id_coeffs)", write_head2head_dataset
    )
    p.add_argument("--num-identities", type=int, default=2)
    p.add_argument("--frames-per-video", type=int, default=150)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--test-fraction", type=float, default=0.33)
    p.add_argument("--part-frames", type=int, default=50)
    p.add_argument("--reenactments", type=int, default=0, help="pairs (k, k+1) with true reenacted frames")
    p.add_argument("--no-eye-gaze", dest="eye_gaze", action="store_false")
    p.add_argument("--fps", type=float, default=25.0)

    p = layout(
        "dg", "DG reenactment: crops + landmark images per identity, pairs with true targets", write_reenactment_dataset
    )
    p.add_argument("--num-identities", type=int, default=4)
    p.add_argument("--videos-per-identity", type=int, default=2)
    p.add_argument("--frames-per-video", type=int, default=8)
    p.add_argument("--pairs-per-identity", type=int, default=4)
    p.add_argument("--test-identities", type=int, default=1)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frame-stride", type=int, default=5)
    p.add_argument("--pose-amplitude-deg", type=float, default=30.0)
    p.add_argument("--max-yaw-deg", type=float, default=60.0, help="largest |yaw| of crops and true targets")
    p.add_argument("--box-scale", type=float, default=1.5, help="crop side / landmark box side")
    p.add_argument("--prefix", default="faceworld", help="dataset name in the folder names (<prefix>_crop_256)")
    p.add_argument("--absolute-paths", action="store_true", help="pair lists with absolute paths (as the original)")

    p = layout("dfdn", "DFDN details: UV texture, true displacement / normals, patch pairs", write_details_dataset)
    p.add_argument("--num-identities", type=int, default=4)
    p.add_argument(
        "--expressions", type=_expressions, default=DEFAULT_EXPRESSIONS, help=f"comma list of {', '.join(EXPRESSIONS)}"
    )
    p.add_argument("--test-identities", type=int, default=1)
    p.add_argument(
        "--preset", choices=("original", "cpu"), default=None,
        help="original: 4096 map, 256-px patches on a 64 stride (the paper's networks); cpu: 256 map, 32-px patches",
    )  # fmt: skip
    p.add_argument("--map-size", type=int, default=None, help="without a preset: 512")
    p.add_argument("--patch-size", type=int, default=None, help="default 256 if map-size >= 4096 else map-size / 8")
    p.add_argument("--stride", type=int, default=None, help="default patch-size / 4")
    p.add_argument("--unwrap-size", type=int, default=None, help="side the photo is unwrapped at before resizing")
    p.add_argument("--displacement-scale-mm", type=float, default=2.0)

    p = layout(
        "faceforensics",
        "FaceForensics++ raw layout: original_sequences/youtube/<c0|c23|c40>/videos/<id>.mp4 (+ per-frame truth)",
        write_faceforensics_raw,
    )
    p.add_argument("--num-videos", type=int, default=4)
    p.add_argument("--num-frames", type=int, default=100)
    p.add_argument("--size", type=_width_height, default=(640, 360), help="WIDTHxHEIGHT of the videos")
    p.add_argument("--compressions", type=_compressions, default=("c23",), help="comma list of c0, c23, c40")
    p.add_argument("--fps", type=float, default=25.0)

    p = layout("prnet", "PRNet crop / position-map pairs (+ faces2one video pairs)", write_prnet_dataset)
    p.add_argument("--num-identities", type=int, default=4)
    p.add_argument("--images-per-identity", type=int, default=8)
    p.add_argument("--test-identities", type=int, default=1)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--pose-range-deg", type=float, default=30.0)
    p.add_argument("--transfer-pairs", type=int, default=0, help="faces2one pairs (k, k+1) with the true transfer")
    p.add_argument("--transfer-frames", type=int, default=8)
    p.add_argument("--no-transfer-posmaps", dest="transfer_posmaps", action="store_false")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    writer = args.pop("writer")
    layout = args.pop("layout")
    root = args.pop("out")
    start = time.perf_counter()
    try:
        writer(root, **args)
    except (ValueError, OSError, UserError) as err:
        parser.exit(2, f"{parser.prog} {layout}: error: {err}\n")
    elapsed = time.perf_counter() - start
    files = sum(1 for path in Path(root).rglob("*") if path.is_file() and STATE_DIR not in path.parts)
    print(f"{layout}: wrote {files} files under {root} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
