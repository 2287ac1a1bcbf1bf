"""The framework's two RFG aids (both off by default = the original): the supersampled landmark drawing (lines keep
their sub-pixel position as grey levels) and the geometry term (a frozen landmark regressor reads the output); and
the IDSG export manifest's declared input ranges."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import hydra
import numpy as np
import pytest
import torch

from src.datamodules.dg import DGDataModule, dg_drawing, landmark_values
from src.landmarks.drawing import dg_segments, draw_dg_landmarks
from src.models.components.dg_geometry import GeometryRegressor, LandmarkGeometryLoss
from src.utils.errors import DatasetError, UserError
from tests.dg.conftest import SIZE, compose_model

pytestmark = pytest.mark.usefixtures("one_thread")


def rfg_overrides(checkpoints: dict) -> list[str]:
    """The tiny RFG behind the tiny untrained IDSG, without the perceptual term (no face-recognition weights)."""
    return [f"model.idsg_checkpoint={checkpoints['idsg']}", "model.loss_weights.perceptual=0"]


def face(dg_dataset, index: int = 0) -> np.ndarray:
    """(68, 2) landmarks in pixels of a SIZE crop: one FaceWorld face of the tiny set."""
    first = (dg_dataset / "test_list.txt").read_text().splitlines()[index].split(" ")
    points, _ = landmark_values(dg_dataset / first[3])
    return points


def naive_supersampled(points: np.ndarray, size: int, k: int, width: float) -> np.ndarray:
    """Independent reference: every segment drawn with cv2 on a k x larger canvas, then each k x k block averaged."""
    big = np.zeros((size * k, size * k), np.uint8)
    scaled = np.trunc(points * k).astype(int)
    for a, b in dg_segments(points, size):
        cv2.line(big, tuple(int(v) for v in scaled[a]), tuple(int(v) for v in scaled[b]), 255, round(width * k))
    return big.reshape(size, k, size, k).mean(axis=(1, 3)) / 255.0


def test_default_drawing_is_the_originals_and_supersampling_is_the_block_mean(dg_dataset):
    points = face(dg_dataset)
    np.testing.assert_array_equal(dg_drawing(points, SIZE) * 255, draw_dg_landmarks(points, SIZE))
    soft = dg_drawing(points, SIZE, supersample=4, line_width=1.5)
    np.testing.assert_allclose(soft, naive_supersampled(points, SIZE, 4, 1.5), atol=1e-6)
    assert soft.dtype == np.float32 and soft.min() >= 0.0 and soft.max() <= 1.0


def test_supersampled_drawing_moves_with_a_sub_pixel_shift_and_the_original_does_not(dg_dataset):
    points = face(dg_dataset)
    points = np.floor(points) + 0.05  # whole-pixel truncation then hides any shift below 0.95 px

    def centre_x(image: np.ndarray) -> float:
        return float((image * np.arange(image.shape[1])[None]).sum() / image.sum())

    shifted = points + np.array([0.5, 0.0])
    hard = centre_x(draw_dg_landmarks(shifted, SIZE) / 255.0) - centre_x(draw_dg_landmarks(points, SIZE) / 255.0)
    soft = centre_x(dg_drawing(shifted, SIZE, supersample=8)) - centre_x(dg_drawing(points, SIZE, supersample=8))
    assert hard == 0.0
    assert soft == pytest.approx(0.5, abs=0.1)


def test_drawing_settings_reach_the_batches_and_the_models_evaluation_drawing(dg_dataset, tiny_checkpoints):
    data = DGDataModule(root=str(dg_dataset), batch_size=2, val_fraction=0.0, drawing_supersample=4)
    data.setup()
    sample = data.datasets["test"][0]
    expected = dg_drawing(sample["target_landmarks"].reshape(68, 2).numpy() * SIZE, SIZE, supersample=4)
    np.testing.assert_allclose(sample["target_drawing"][0].numpy(), expected, atol=1e-6)
    cfg = compose_model(
        "dg_rfg",
        [*rfg_overrides(tiny_checkpoints), "data.drawing_supersample=4", "data.drawing_line_width=1.5"],
    )
    model = hydra.utils.instantiate(cfg.model)
    assert (model.drawing_supersample, model.drawing_line_width) == (4, 1.5)  # taken from data.* by the config
    exported = model.export_modules(SIZE)["rfg"].metadata["drawing"]  # the export manifest says how to draw
    assert exported == {"half_face": "symmetric", "drawing_supersample": 4, "drawing_line_width": 1.5}
    drawn = model.draw(sample["target_landmarks"][None], SIZE)
    points = sample["target_landmarks"].reshape(68, 2).numpy() * SIZE
    np.testing.assert_allclose(drawn[0, 0].numpy(), dg_drawing(points, SIZE, supersample=4, line_width=1.5), atol=1e-6)


@pytest.mark.parametrize(
    ("setting", "error", "key"),
    [
        ({"drawing_supersample": 0}, UserError, "data.drawing_supersample"),
        ({"drawing_supersample": 2.5}, UserError, "data.drawing_supersample"),
        ({"drawing_line_width": -1.0}, DatasetError, "data.drawing_line_width"),
    ],
)
def test_bad_drawing_settings_name_their_key(setting, error, key):
    with pytest.raises(error, match=key):
        DGDataModule(root="unused", batch_size=2, **setting)


def synthetic_faces(dg_dataset, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft drawings of one face moved and scaled at random, as images, with their landmarks / SIZE."""
    rng = np.random.default_rng(seed)
    base = face(dg_dataset)
    centre = base.mean(axis=0)
    images, marks = [], []
    for _ in range(count):
        points = (base - centre) * rng.uniform(0.7, 1.1) + centre + rng.uniform(-5, 5, size=2)
        drawing = dg_drawing(points, SIZE, supersample=4, half_face="off")
        images.append(np.repeat(drawing[None], 3, axis=0))
        marks.append(points.reshape(-1) / SIZE)
    return torch.from_numpy(np.stack(images)).float(), torch.from_numpy(np.stack(marks)).float()


def test_geometry_loss_is_the_mean_point_distance_and_needs_fitting(dg_dataset):
    torch.manual_seed(0)
    loss = LandmarkGeometryLoss(SIZE, steps=3, batch_size=4)
    images, marks = synthetic_faces(dg_dataset, 4)
    with pytest.raises(RuntimeError, match="not fitted"):
        loss(images, marks)
    loss.fit([(images, marks)])
    image = images.clone().requires_grad_(True)
    value = loss(image, marks)
    read = loss.regressor(images).detach().numpy().reshape(4, 68, 2)
    truth = marks.numpy().reshape(4, 68, 2)
    naive = np.mean([np.hypot(*(read[b, p] - truth[b, p])) for b in range(4) for p in range(68)])
    assert float(value.detach()) == pytest.approx(naive, rel=1e-5)
    value.backward()
    assert image.grad is not None and image.grad.abs().sum() > 0  # the output is pushed
    assert all(p.grad is None and not p.requires_grad for p in loss.regressor.parameters())  # the regressor is not
    assert bool(loss.fitted) and bool(LandmarkGeometryLoss(SIZE).fitted) is False
    restored = LandmarkGeometryLoss(SIZE)
    restored.load_state_dict(loss.state_dict())  # the checkpoint keeps weights and the fitted flag
    assert bool(restored.fitted) and float(restored(images, marks).detach()) == pytest.approx(
        float(value.detach()), rel=1e-6
    )


def test_geometry_regressor_learns_to_read_landmarks(dg_dataset):
    torch.manual_seed(0)
    images, marks = synthetic_faces(dg_dataset, 160)
    loss = LandmarkGeometryLoss(SIZE, steps=150, batch_size=32, lr=3e-3)
    fitted = loss.fit([(images[:128], marks[:128])])
    held_out = float(loss(images[128:], marks[128:])) * 256
    mean_guess = (marks[128:] - marks[:128].mean(0)).reshape(-1, 68, 2).norm(dim=2).mean().item() * 256
    assert fitted["steps"] == 150 and held_out < 0.5 * mean_guess, (held_out, mean_guess)


def test_geometry_regressor_differs_from_the_evaluation_probe():
    from src.models.components.dg_landmark_probe import LandmarkProbe

    regressor, probe = GeometryRegressor(SIZE), LandmarkProbe(SIZE)
    kinds = {type(m).__name__ for m in regressor.modules()}
    assert (
        "GroupNorm" in kinds
        and "BatchNorm2d" not in kinds
        and "BatchNorm2d" in {type(m).__name__ for m in probe.modules()}
    )
    assert regressor.features[0].in_channels == 5  # coordinate channels; the probe reads RGB only


def test_rfg_trains_its_geometry_regressor_once_at_fit_start(dg_dataset, tiny_checkpoints):
    cfg = compose_model(
        "dg_rfg",
        [*rfg_overrides(tiny_checkpoints), "model.loss_weights.landmark=1.0", "model.criteria.landmark.steps=4"],
    )
    model = hydra.utils.instantiate(cfg.model)
    data = DGDataModule(root=str(dg_dataset), batch_size=2, val_fraction=0.0, image_size=SIZE)
    data.setup()
    model._trainer = SimpleNamespace(datamodule=data)  # what on_fit_start reads of the trainer
    geometry = model.criteria["landmark"]
    before = [p.clone() for p in geometry.regressor.parameters()]
    model.on_fit_start()
    assert bool(geometry.fitted)
    after = [p.clone() for p in geometry.regressor.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    model.on_fit_start()  # fitted (a resumed run): not trained again
    assert all(torch.equal(a, p) for a, p in zip(after, geometry.regressor.parameters()))
    batch = next(iter(data.train_dataloader()))
    model.train()
    outputs = model.generate(batch, model.generator)
    losses = model.generator_losses(batch, outputs, frozenset({"landmark"}))
    expected = geometry(outputs["image"], batch["target_landmarks"])  # the drawn landmarks: the true target's
    torch.testing.assert_close(losses["landmark"], expected)


def test_idsg_export_manifest_declares_the_input_ranges(tmp_path):
    """The identity code is an unbounded linear embedding centred on zero: the manifest must declare [-1, 1] (the
    range export examples are drawn from and users read), landmarks and image [0, 1]."""
    from src.export.generator import MANIFEST_FILE, export_modules

    torch.manual_seed(0)
    model = hydra.utils.instantiate(compose_model("dg_idsg").model).eval()
    specs = model.export_modules(SIZE)
    assert [i.low for i in specs["face_encoder"].inputs] == [0.0] and [
        i.high for i in specs["face_encoder"].inputs
    ] == [1.0]
    export_modules({"idsg": specs["idsg"]}, tmp_path, formats=("onnx",))  # the MLPs only: the encoder is slow to trace
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    ranges = {
        (module, entry["name"]): entry["range"]
        for module, described in manifest["modules"].items()
        for entry in described["inputs"]
    }
    assert ranges == {
        ("idsg", "landmarks"): [0.0, 1.0],
        ("idsg", "identity_code"): [-1.0, 1.0],
    }
    codes = model.inference_generator.face_encoder(torch.rand(16, 3, SIZE, SIZE))
    assert codes.min() < 0 < codes.max()  # codes take both signs: a range starting at 0 or above would miss half


def test_bench_paired_line_reports_mean_standard_error_and_share():
    from tests.bench_scripts import load_bench

    bench = load_bench("dg_pipeline")
    mine = {"probe_lm_error_px": torch.tensor([1.0, 2.0, 4.0, 3.0]), "psnr": torch.tensor([20.0, 21.0, 19.0, 22.0])}
    theirs = {"probe_lm_error_px": torch.tensor([2.0, 2.5, 3.0, 5.0]), "psnr": torch.tensor([19.0, 21.5, 18.0, 21.0])}
    mine["ssim"], theirs["ssim"] = mine["psnr"] / 40, theirs["psnr"] / 40
    line = bench.paired_line("rfg_on_reference", mine, theirs)
    probe = np.array([-1.0, -0.5, 1.0, -2.0])  # lower is better: 3 of 4 improve
    error = probe.std(ddof=1) / 2
    assert (
        f"probe_lm_error_px {probe.mean():+.3f} px (standard error {error:.3f}, {probe.mean() / error:+.1f} SE, 75.0 %"
        in line
    )
    psnr = np.array([1.0, -0.5, 1.0, 1.0])  # higher is better: 3 of 4 improve
    assert (
        f"psnr {psnr.mean():+.3f} dB (standard error {psnr.std(ddof=1) / 2:.3f}" in line and line.count("75.0 %") == 3
    )
