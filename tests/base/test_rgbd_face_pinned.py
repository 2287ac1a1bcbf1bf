"""rgbd_face is unchanged by the base refactor: the first training steps are pinned to numbers captured before it.

Everything is explicit here (networks, criteria, weights, thresholds, data): nothing depends on conf/ defaults,
which others retune. The numbers were captured from the pre-refactor GANModule (commit 51ff42d) on CPU with one
thread; a refactor that changes any step (update order, toggling, clipping, loss table, EMA, masking rule) moves
at least one of them far beyond the tolerance.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from src.models.rgbd_face import RGBDFaceModule

SIZE, FRAMES, STEPS = 32, 6, 3
REL = 1e-5


class PinnedFaces(Dataset):
    """Deterministic RGBD 'faces' (an ellipse of depth, background exactly -1) with a drawing as input."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1234)
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
        self.items = []
        for index in range(FRAMES):
            shift = 0.2 * (torch.rand(2, generator=generator) - 0.5)
            r2 = ((xx - shift[0]) / 0.6) ** 2 + ((yy - shift[1]) / 0.75) ** 2
            inside = r2 < 1
            depth = torch.where(inside, -0.5 + 0.3 * r2, torch.full_like(r2, -1.0))
            rgb = torch.where(inside, 0.8 - r2, torch.full_like(r2, -1.0)).expand(3, -1, -1) * torch.tensor(
                [1.0, 0.8, 0.6]
            ).view(3, 1, 1)
            feature = torch.where((r2 - 0.5).abs() < 0.08, 1.0, -1.0)[None]
            self.items.append(
                {
                    "feature": feature.float(),
                    "rgbd": torch.cat([rgb, depth[None]]).clamp(-1, 1).float(),
                    "face_mask": inside[None].float(),
                    "depth_near_mm": torch.tensor(480.0),
                    "depth_far_mm": torch.tensor(700.0),
                    "depth_bits": torch.tensor(16),
                    "frame_id": f"pin_{index:06d}",
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def pinned_kwargs(depth_mask_rule: str, ema_decay: float | None, clip: float | None) -> dict[str, Any]:
    return {
        "generator": {
            "_target_": "src.models.components.generators.UnetGenerator",
            "input_nc": 1,
            "output_nc": 4,
            "num_downs": 5,
            "ngf": 4,
            "norm": "batch",
            "use_dropout": False,
        },
        "discriminator": {
            "_target_": "src.models.components.discriminators.NLayerDiscriminator",
            "input_nc": 5,
            "ndf": 4,
            "n_layers": 2,
            "norm": "batch",
            "layout": "pix2pixhd",
        },
        "criteria": {
            "gan": {"_target_": "src.losses.gan.GANLoss", "mode": "lsgan"},
            "fm": {"_target_": "src.losses.feature_matching.FeatureMatchingLoss"},
            "l1": {"_target_": "src.losses.reconstruction.L1ReconstructionLoss"},
            "depth_l1_mm": {"_target_": "src.losses.depth.DepthL1Loss", "mm_per_unit": 1.0},
            "depth_grad": {"_target_": "src.losses.depth.DepthGradientLoss", "mm_per_unit": 1.0},
        },
        "loss_weights": {"gan": 1.0, "fm": 2.0, "l1": 100.0, "depth_l1_mm": 0.5, "depth_grad": 0.25},
        "discriminator_loss_weights": {"real": 0.5, "fake": 0.5},
        "optimizer_g": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-3, "betas": [0.5, 0.999]},
        "optimizer_d": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3, "betas": [0.5, 0.999]},
        "scheduler": {
            "_target_": "src.models.gan.LinearDecayLR",
            "_partial_": True,
            "n_epochs": 1,
            "n_epochs_decay": 1,
        },
        "update_order": "d_first",
        "gradient_clip_val": clip,
        "gradient_clip_algorithm": "norm",
        "ema_decay": ema_decay,
        "inference_norm": "running",
        "inference_dropout": False,
        "num_kept_samples": 2,
        "depth_mask_rule": depth_mask_rule,
        "background_threshold": -0.9,
        "lpips_metric": None,
    }


class StepRecorder(L.Callback):
    """The per-step values of every logged loss, in order."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        metrics = trainer.callback_metrics
        self.steps.append({k[: -len("_step")]: float(v) for k, v in metrics.items() if k.endswith("_step")})


def fit_pinned(module: RGBDFaceModule, tmp_path: Path) -> list[dict[str, float]]:
    """Logged per-step losses of STEPS training steps on the pinned faces (the caller seeds)."""
    recorder = StepRecorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=STEPS,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=DataLoader(PinnedFaces(), batch_size=2, shuffle=False))
    return recorder.steps


def run_pinned(tmp_path: Path, **settings: Any) -> tuple[list[dict[str, float]], torch.Tensor]:
    torch.set_num_threads(1)
    L.seed_everything(7, verbose=False)
    module = RGBDFaceModule(**pinned_kwargs(**settings))
    steps = fit_pinned(module, tmp_path)
    dataset = PinnedFaces()
    module.eval()
    batch = {k: v for k, v in next(iter(DataLoader(dataset, batch_size=FRAMES))).items()}
    with torch.no_grad():
        output = module.generate(batch, module.inference_generator)["rgbd"]
    return steps, output


def describe(output: torch.Tensor) -> list[float]:
    """A checksum of the generated batch: sums, a moment, and a few pixels of colour and depth."""
    flat = output.double().flatten()
    return [
        float(flat.sum()),
        float(flat.abs().sum()),
        float((flat * torch.arange(flat.numel(), dtype=torch.float64).remainder(97)).sum()),
        float(output[0, 0, 16, 16]),
        float(output[1, 3, 10, 20]),
        float(output[5, 2, 31, 0]),
    ]


PINNED: dict[str, dict[str, Any]] = {
    "prediction": {
        "steps": [
            {
                "train/D/real": 1.2671705484390259,
                "train/D/fake": 0.037255652248859406,
                "train/D/total": 0.6522130966186523,
                "train/G/gan": 1.0945415496826172,
                "train/G/fm": 0.8798108696937561,
                "train/G/l1": 0.7631339430809021,
                "train/G/depth_l1_mm": 36.66128158569336,
                "train/G/depth_grad": 6.959686756134033,
                "train/G/total": 99.23812103271484,
            },
            {
                "train/D/real": 1.0717134475708008,
                "train/D/fake": 0.02230062708258629,
                "train/D/total": 0.5470070242881775,
                "train/G/gan": 0.9389739036560059,
                "train/G/fm": 0.8295383453369141,
                "train/G/l1": 0.7563689351081848,
                "train/G/depth_l1_mm": 33.448299407958984,
                "train/G/depth_grad": 6.395742416381836,
                "train/G/total": 96.55803680419922,
            },
            {
                "train/D/real": 0.9180300831794739,
                "train/D/fake": 0.018989941105246544,
                "train/D/total": 0.4685100018978119,
                "train/G/gan": 0.807581901550293,
                "train/G/fm": 0.832189679145813,
                "train/G/l1": 0.751326322555542,
                "train/G/depth_l1_mm": 31.245149612426758,
                "train/G/depth_grad": 5.539514064788818,
                "train/G/total": 94.61204528808594,
            },
        ],
        "output": [
            -268.8908510894689,
            270.30610953774885,
            -12916.976617871493,
            -0.0019771496299654245,
            -0.012339490465819836,
            0.0004452215216588229,
        ],
    },
    "original_ema_clip": {
        "steps": [
            {
                "train/D/real": 1.2671705484390259,
                "train/D/fake": 0.03527761995792389,
                "train/D/total": 0.6512240767478943,
                "train/G/gan": 1.0703001022338867,
                "train/G/fm": 0.2310890406370163,
                "train/G/l1": 0.09645035862922668,
                "train/G/depth_l1_mm": 36.66128158569336,
                "train/G/depth_grad": 6.959686756134033,
                "train/G/total": 31.248077392578125,
            },
            {
                "train/D/real": 1.07154381275177,
                "train/D/fake": 0.016357237473130226,
                "train/D/total": 0.5439504981040955,
                "train/G/gan": 0.9083905220031738,
                "train/G/fm": 0.18586020171642303,
                "train/G/l1": 0.09081482142210007,
                "train/G/depth_l1_mm": 33.44581985473633,
                "train/G/depth_grad": 6.428792476654053,
                "train/G/total": 28.691701889038086,
            },
            {
                "train/D/real": 0.914105236530304,
                "train/D/fake": 0.018397189676761627,
                "train/D/total": 0.4662512242794037,
                "train/G/gan": 0.7706906199455261,
                "train/G/fm": 0.16299080848693848,
                "train/G/l1": 0.08461363613605499,
                "train/G/depth_l1_mm": 31.0078125,
                "train/G/depth_grad": 5.952828407287598,
                "train/G/total": 26.55014991760254,
            },
        ],
        # The EMA output changed on purpose (steps unchanged): the EMA generator gathers its own BatchNorm
        # statistics instead of averaging the raw G's (src/models/base/networks.py: update_ema; tests/base/test_ema.py).
        "output": [
            130.3296747886925,
            245.04288531007478,
            6225.206236692233,
            0.019951563328504562,
            -0.009153776802122593,
            0.011393151246011257,
        ],
    },
}


@pytest.mark.parametrize(
    "case, settings",
    [
        ("prediction", {"depth_mask_rule": "prediction", "ema_decay": None, "clip": None}),
        ("original_ema_clip", {"depth_mask_rule": "original", "ema_decay": 0.5, "clip": 0.5}),
    ],
)
def test_rgbd_face_first_steps_are_pinned(tmp_path: Path, case: str, settings: dict[str, Any]) -> None:
    steps, output = run_pinned(tmp_path, **settings)
    expected = PINNED[case]
    assert len(steps) == STEPS
    for index, (got, want) in enumerate(zip(steps, expected["steps"])):
        assert sorted(got) == sorted(want), f"step {index}: logged terms changed"
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=REL, abs=1e-7), f"step {index}: {key}"
    assert describe(output) == pytest.approx(expected["output"], rel=REL, abs=1e-6)


def test_checkpoint_layout_is_unchanged() -> None:
    """State-dict keys (in order) and optimizer layout as the pre-refactor base wrote them: old checkpoints load."""
    module = RGBDFaceModule(**pinned_kwargs(depth_mask_rule="original", ema_decay=0.5, clip=None))
    keys = list(module.state_dict())
    assert len(keys) == 111 and {k.split(".")[0] for k in keys} == {"discriminator", "generator", "generator_ema"}
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    assert digest == "4073897dcbecfdd6f43094d8bdfc5bcf8aa3d18ce4daf8b57605cc082e8daed4"
    optimizers, schedulers = module.configure_optimizers()
    assert [len(o.param_groups[0]["params"]) for o in optimizers] == [25, 12] and len(schedulers) == 2
