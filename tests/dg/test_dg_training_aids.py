"""The quick start's training aids, each against an independent reference: the mirrored sample (the drawing of the
mirrored landmarks against the mirror image of the original's drawing, and the files), the landmark statistics
(against a plain loop over the landmark CSVs) and the generator's standardised input and linear path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.datamodules.dg import DGDataModule, landmark_values, mirror_points
from src.landmarks.drawing import draw_dg_landmarks
from src.models.components.dg_idsg import build_idsg
from src.utils.errors import DatasetError
from tests.dg.conftest import SIZE


def frontal_points(side: float = 256.0) -> np.ndarray:
    """A plausible iBUG-68 layout (the classical detector's template, 70 points in a unit box) scaled to a crop."""
    from src.landmarks.detectors.classical import load_template

    return load_template()[:68] * side * 0.6 + side * 0.2


def test_mirror_swaps_sides_and_draws_the_mirror_image():
    points = frontal_points()
    mirrored = mirror_points(points, 256.0)
    np.testing.assert_allclose(mirror_points(mirrored, 256.0), points)  # an involution
    # image-left points land on the image-left side again, as the other half's mirror
    np.testing.assert_allclose(mirrored[0], [256.0 - points[16, 0], points[16, 1]])
    np.testing.assert_allclose(mirrored[36], [256.0 - points[45, 0], points[45, 1]])
    np.testing.assert_allclose(mirrored[48], [256.0 - points[54, 0], points[54, 1]])
    np.testing.assert_allclose(mirrored[30], [256.0 - points[30, 0], points[30, 1]])  # the nose tip stays
    assert mirrored[36, 0] < mirrored[45, 0] and mirrored[0, 0] < mirrored[16, 0]
    # the drawing connects the same chains: drawing the mirrored points ~ the mirror image of the drawing
    original = draw_dg_landmarks(points + 0.37, 256, half_face="off") > 0  # off-integer: int() truncation symmetric
    drawn = draw_dg_landmarks(mirror_points(points + 0.37, 256.0), 256, half_face="off") > 0
    flipped = original[:, ::-1]
    overlap = (drawn & flipped).sum() / (drawn | flipped).sum()
    assert overlap > 0.8, overlap
    wrong = draw_dg_landmarks(mirror_points(points + 0.37, 256.0)[::-1], 256, half_face="off") > 0
    assert (wrong & flipped).sum() / (wrong | flipped).sum() < 0.5  # a wrong point order would not match


def test_flipped_training_samples_are_the_mirrored_files(dg_dataset: Path):
    data = DGDataModule(root=str(dg_dataset), batch_size=4, val_fraction=0.0, flip_probability=1.0)
    data.setup()
    train, test = data.datasets["train"], data.datasets["test"]
    assert test.flip_probability == 0.0  # only training samples are mirrored
    sample, pair = train[0], train.pairs[0]
    mirrored = mirror_points(pair.landmarks[1], SIZE).reshape(-1) / SIZE
    np.testing.assert_allclose(sample["reference_landmarks"].numpy(), mirrored, rtol=1e-6)
    assert sample["target_yaw_deg"].item() == pytest.approx(-pair.target_yaw_deg, abs=1e-4)
    unflipped = train._image(pair.images[2])[0]
    torch.testing.assert_close(sample["source_image"], unflipped.flip(-1))
    expected = draw_dg_landmarks(mirror_points(pair.landmarks[3], SIZE), SIZE)
    np.testing.assert_array_equal(sample["target_drawing"][0].numpy() * 255, expected)
    with pytest.raises(DatasetError, match=r"data\.flip_probability"):
        DGDataModule(root=str(dg_dataset), flip_probability=1.5)


def test_landmark_statistics_are_those_of_the_training_csvs(dg_dataset: Path):
    for flip in (0.0, 0.5):
        data = DGDataModule(root=str(dg_dataset), batch_size=4, val_fraction=0.0, flip_probability=flip)
        mean, std = data.landmark_statistics()
        rows = []
        for line in (dg_dataset / "train_list.txt").read_text().splitlines():
            for name in line.split(" ")[:3]:
                points, _ = landmark_values(dg_dataset / name)
                rows.append(points.reshape(-1) / SIZE)
                if flip:
                    rows.append(mirror_points(points, SIZE).reshape(-1) / SIZE)
        expected = np.array(rows)
        np.testing.assert_allclose(mean, expected.mean(0), rtol=1e-9)
        np.testing.assert_allclose(std, expected.std(0, ddof=1), rtol=1e-9)


def test_generator_reads_standardised_landmarks_and_starts_as_copy_reference():
    torch.manual_seed(0)
    generator = build_idsg(code_dim=8, channels=4, blocks=2, residual=True, normalize_landmarks=True, linear_skip=True)
    generator.landmark_mean.copy_(torch.rand(136))
    generator.landmark_std.copy_(torch.rand(136) + 0.5)
    landmarks, image = torch.rand(3, 136), torch.rand(3, 3, 32, 32)
    expected = generator.landmark_encoder((landmarks - generator.landmark_mean) / generator.landmark_std)
    torch.testing.assert_close(generator.encode_landmarks(landmarks), expected)
    torch.testing.assert_close(generator.eval()(landmarks, image), landmarks)  # both paths start at zero
    with torch.no_grad():
        generator.skip.bias.fill_(0.01)
    torch.testing.assert_close(generator(landmarks, image), landmarks + 0.01)
    raw = build_idsg(code_dim=8, channels=4, blocks=2, residual=True)
    torch.testing.assert_close(raw.encode_landmarks(landmarks), raw.landmark_encoder(landmarks))  # the original
    with pytest.raises(ValueError, match="linear_skip needs residual"):
        build_idsg(code_dim=8, channels=4, blocks=2, linear_skip=True)


def test_idsg_fits_its_statistics_from_batches_without_a_datamodule():
    import hydra

    from tests.dg.conftest import compose_model

    cfg = compose_model("dg_idsg", ["model.generator.normalize_landmarks=true"])
    model = hydra.utils.instantiate(cfg.model)
    g = torch.Generator().manual_seed(1)
    batches = [{k: torch.rand(4, 136, generator=g) for k in ("reference_landmarks", "source_landmarks")} for _ in "ab"]
    values = model.fit_statistics(batches)
    stacked = torch.cat([b[k] for b in batches for k in ("reference_landmarks", "source_landmarks")]).double()
    torch.testing.assert_close(values["landmark_mean"], stacked.mean(0).float())
    torch.testing.assert_close(values["landmark_std"], stacked.std(0).float())
    assert model.landmark_mean is model.generator.landmark_mean  # what the base's fit writes into
    off = hydra.utils.instantiate(compose_model("dg_idsg").model)
    assert torch.equal(off.fit_statistics([])["landmark_std"], torch.ones(136))  # the original: no standardising


def test_landmark_probe_learns_the_training_crops_landmarks(dg_dataset: Path):
    from src.models.components.dg_landmark_probe import fit_landmark_probe, probe_error_px

    data = DGDataModule(root=str(dg_dataset), batch_size=16, val_fraction=0.0, drawings=False)
    data.setup()
    batches = [next(iter(data.train_dataloader()))]
    probe, fitted = fit_landmark_probe(batches, SIZE, steps=150, lr=3e-3)
    assert fitted["steps"] == 150 and not probe.training
    images = torch.cat([batches[0]["source_image"], batches[0]["target_image"]])
    truth = torch.cat([batches[0]["source_landmarks"], batches[0]["target_landmarks"]])
    with torch.no_grad():
        error = probe_error_px(probe(images), truth)
    # the mean shape of these crops, the answer of a probe that reads nothing from the image
    mean_shape = probe_error_px(truth.mean(0, keepdim=True).expand_as(truth), truth)
    manual = (probe(images).detach().reshape(-1, 68, 2) - truth.reshape(-1, 68, 2)).norm(dim=2).mean(1) * 256
    torch.testing.assert_close(error, manual)
    assert error.mean() < 0.6 * mean_shape.mean(), (error.mean(), mean_shape.mean())
