"""How new is the held-out third of a FaceWorld head2head video? (why the nearest-training-frame baseline is strong)

For every held-out frame of the target: the nearest training frame by NMFC (the baseline's rule: L2 on 32x32
thumbnails) and its APD to the truth; the best any single training frame can do (nearest by pixels, an oracle);
the APD between consecutive held-out frames (how fast the video changes); and, from FaceWorld's per-frame files
(misc, exp_coeffs), how far each held-out head pose / expression is from the nearest training one and whether the
held-out poses leave the training range. A video that recycled exact states would show a nearest-frame APD near 0
and state distances near 0.

    python bench/head2head_data_novelty.py [--root <FaceWorld head2head dataset>] [--target id000] [--size 64]

Default root: the quick start's cached dataset (data/cache/faceworld/head2head-*, the one with 360 frames a video).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from src.geometry.pose import rotation_to_euler


def _frames(folder: Path) -> list[Path]:
    return sorted(folder.iterdir(), key=lambda p: int(p.stem))


def _split_files(root: Path, split: str, kind: str, target: str) -> list[Path]:
    base = root / "dataset" / split / kind
    folders = sorted(base.glob(f"{target}_*")) if split == "train" else [base / target]
    files = [f for folder in folders for f in _frames(folder)]
    return sorted(files, key=lambda p: int(p.stem))


def _image(path: Path, size: int) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float64)


def _apd(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.sqrt(((first - second) ** 2).sum(-1)).mean())


def _state(root: Path, split: str, target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expression (N, K), yaw/pitch/roll (N, 3) degrees, crop translation (N, 2) px) from misc and exp_coeffs."""
    expressions = np.stack([np.loadtxt(f, ndmin=1) for f in _split_files(root, split, "exp_coeffs", target)])
    angles, offsets = [], []
    for path in _split_files(root, split, "misc", target):
        values = np.array(path.read_text().split(), dtype=np.float64)
        angles.append(rotation_to_euler(values[1:10].reshape(3, 3)))
        offsets.append(values[10:12])
    return expressions, np.array(angles), np.array(offsets)


def novelty(root: Path, target: str, size: int) -> dict[str, float]:
    train = [_image(p, size) for p in _split_files(root, "train", "images", target)]
    test = [_image(p, size) for p in _split_files(root, "test", "images", target)]

    def thumbnails(split: str) -> np.ndarray:
        files = _split_files(root, split, "nmfcs", target)
        return np.stack([cv2.resize(_image(p, size), (32, 32), interpolation=cv2.INTER_AREA).ravel() for p in files])

    nearest = ((thumbnails("test")[:, None] - thumbnails("train")[None]) ** 2).sum(-1).argmin(1)
    train_pixels = np.stack(train).reshape(len(train), -1)
    test_pixels = np.stack(test).reshape(len(test), -1)
    oracle = ((test_pixels[:, None] - train_pixels[None]) ** 2).sum(-1).argmin(1)
    train_exp, train_angles, train_offsets = _state(root, "train", target)
    test_exp, test_angles, test_offsets = _state(root, "test", target)
    exp_gap = np.abs(test_exp[:, None] - train_exp[None]).max(-1).min(1)
    angle_gap = np.abs(test_angles[:, None] - train_angles[None]).max(-1).min(1)
    beyond = np.maximum(test_angles - train_angles.max(0), train_angles.min(0) - test_angles).clip(min=0)
    return {
        "train_frames": len(train),
        "test_frames": len(test),
        "apd_nearest_frame_by_nmfc": float(np.mean([_apd(test[i], train[k]) for i, k in enumerate(nearest)])),
        "apd_nearest_frame_by_pixels_oracle": float(np.mean([_apd(test[i], train[k]) for i, k in enumerate(oracle)])),
        "apd_consecutive_test_frames": float(np.mean([_apd(test[i], test[i - 1]) for i in range(1, len(test))])),
        "expression_gap_median": float(np.median(exp_gap)),
        "expression_gap_p90": float(np.percentile(exp_gap, 90)),
        "pose_gap_deg_median": float(np.median(angle_gap)),
        "pose_gap_deg_p90": float(np.percentile(angle_gap, 90)),
        "pose_beyond_training_range_deg_max": float(beyond.max()),
        "test_frames_beyond_training_pose_range": int((beyond.max(1) > 0).sum()),
        "translation_gap_px_median": float(
            np.median(np.abs(test_offsets[:, None] - train_offsets[None]).max(-1).min(1))
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--target", default="id000")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    root = args.root
    if root is None:
        for candidate in sorted(Path("data/cache/faceworld").glob("head2head-*")):
            settings = json.loads((candidate / "faceworld.json").read_text()).get("settings", {})
            if settings.get("frames_per_video") == 360:
                root = candidate
        if root is None:
            raise SystemExit("no cached quick-start dataset: run the quick start once, or pass --root")
    print(json.dumps({"root": str(root), **novelty(root, args.target, args.size)}, indent=1))


if __name__ == "__main__":
    main()
