"""head2head on the shared base, with synthetic batches in the datamodule's contract: the per-frame loop with
previous-frame feedback, chunking with the carry, the warp loss, the temporal frame skipping, every D table's
terms in a real training step, the curriculum, the metrics against independent computations, the baseline and
the export."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from src.models.components.head2head_generator import HEAD2HEAD_GENERATOR_PARAMETERS, Head2HeadGenerator
from src.models.components.head2head_parts import (
    NearestTrainingFrame,
    crop_around,
    sequence_apd,
    sequence_flicker,
    sequence_mapd,
    sequence_mouth_apd,
    skipped_windows,
)
from src.models.head2head import Head2HeadModule
from tests.head2head.synthetic import SyntheticSequences, ZeroFlow, synthetic_sequence, tiny_config

SIZE = 32


def collate(items: list[dict]) -> dict:
    return torch.utils.data.default_collate(items)


def batch_of(count: int = 2, length: int = 8) -> dict:
    return collate([synthetic_sequence(length, SIZE, seed) for seed in range(count)])


def test_generator_parameter_count_at_the_original_settings() -> None:
    generator = Head2HeadGenerator()
    assert sum(p.numel() for p in generator.parameters()) == HEAD2HEAD_GENERATOR_PARAMETERS == 70_806_531
    assert generator.conditioning_channels == 18 and generator.previous_channels == 6


class RecordingGenerator(torch.nn.Module):
    """frame = mean of the current NMFC channels + 0.5 * the newest previous frame; records what it was given."""

    n_frames, input_nc, output_nc = 3, 6, 3

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, conditioning: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        self.seen.append((conditioning.clone(), previous.clone()))
        current = conditioning[:, 12:15].mean(1, keepdim=True).expand(-1, 3, -1, -1)
        return self.scale * torch.tanh(current + 0.5 * previous[:, 3:6])


def test_per_frame_loop_feeds_back_previous_frames_and_chunks_equal_one_pass() -> None:
    module = Head2HeadModule(**tiny_config(eval_flicker=False, loss_weights={"l1": 1.0}))
    module.eval()
    batch = batch_of(2, 8)
    stub = RecordingGenerator()
    with torch.no_grad():
        whole = module.generate({**batch}, stub)["frames"]
    first_conditioning, first_previous = stub.seen[0]
    assert torch.equal(first_previous, torch.zeros_like(first_previous))  # nothing generated yet
    conditioning = torch.cat([batch["nmfc"], batch["eyes"]], 2)
    # frame 0 is conditioned on copies of itself; frame 3 on frames 1, 2, 3
    assert torch.equal(first_conditioning, conditioning[:, [0, 0, 0]].flatten(1, 2))
    assert torch.equal(stub.seen[3][0], conditioning[:, 1:4].flatten(1, 2))
    expected_previous = torch.cat([whole[:, 1], whole[:, 2]], 1)
    assert torch.equal(stub.seen[3][1], expected_previous)
    stub.seen.clear()
    with torch.no_grad():
        chunked = module.generate_whole(batch, stub)["frames"]  # chunks of 4 frames with the carry
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_evaluation_windows_continue_a_stream_exactly() -> None:
    """The datamodule streams test videos in windows; consecutive windows equal one long sequence."""
    module = Head2HeadModule(**tiny_config(eval_flicker=False, loss_weights={"l1": 1.0})).eval()
    whole = collate([synthetic_sequence(10, SIZE, 0)])
    parts = [{k: v[:, a:b] if k in module.SEQUENCE_KEYS else v for k, v in whole.items()} for a, b in ((0, 6), (6, 10))]
    with torch.no_grad():
        expected = module.generate_whole(whole, module.generator)["frames"]
        module._stream = None
        streamed = torch.cat([module.generate_whole(p, module.generator)["frames"] for p in parts], 1)
        restarted = module.generate_whole(parts[1], module.generator)["frames"]  # not a continuation: fresh start
    assert torch.allclose(streamed, expected, atol=1e-6)
    assert not torch.allclose(restarted, expected[:, 6:], atol=1e-3)


def test_a_sequence_shorter_than_n_frames_g_still_gets_one_frame_per_input() -> None:
    module = Head2HeadModule(**tiny_config(eval_flicker=False, loss_weights={"l1": 1.0})).eval()
    single = collate([synthetic_sequence(1, SIZE, 3)])
    with torch.no_grad():
        frames = module.generate_whole(single, module.generator)["frames"]
    assert frames.shape == (1, 1, 3, SIZE, SIZE) and torch.isfinite(frames).all()


def test_skipped_windows_follow_vid2vid() -> None:
    frames = torch.arange(10).float().view(1, 10)
    windows, joined = skipped_windows(None, frames[:, :6], skip=1)
    assert windows.tolist() == [[3, 4, 5], [0, 1, 2]]
    windows, joined = skipped_windows(frames[:, :6], frames[:, 6:10], skip=3)
    assert windows.tolist() == [[3, 6, 9], [0, 3, 6]] and joined.shape[1] == 10
    windows, _ = skipped_windows(None, frames[:, :4], skip=3)
    assert windows is None  # a window needs 7 frames


def test_warp_targets_mask_the_first_frame_and_follow_the_previous_fake() -> None:
    module = Head2HeadModule(**tiny_config(loss_weights={"warp": 1.0}))
    object.__setattr__(module, "flow_estimator", ZeroFlow())
    module.train()
    batch = batch_of(1, 4)
    outputs = module.generate({**batch, "carry": None}, module.generator)
    fakes, mask, target = outputs["frames"], outputs["warp_mask"], outputs["warp_target"]
    assert float(mask[:, 0].abs().sum()) == 0.0  # no previous frame
    assert torch.allclose(target[:, 1:], fakes[:, :-1].detach(), atol=1e-4)  # zero flow: the previous frame
    losses = module.generator_losses(batch, outputs, frozenset({"warp"}))
    confident = mask.expand_as(fakes)
    expected = ((fakes - target) * confident).abs().mean()
    assert torch.allclose(losses["warp"], expected)
    # the next chunk warps its first frame from the carried last frame
    second = module.generate({**batch, "carry": outputs["carry"]}, module.generator)
    assert torch.allclose(second["warp_target"][:, 0], fakes[:, -1].detach(), atol=1e-4)


def test_one_frame_chunks_give_the_warp_targets_of_one_chunk() -> None:
    """chunk_frames 1: the first chunk has no frame pair for the (real, DIS) estimator; it must be masked out, and
    the next one-frame chunk must warp from the carried frame exactly as a two-frame chunk does."""
    torch.manual_seed(0)
    module = Head2HeadModule(**tiny_config(loss_weights={"warp": 1.0}))
    module.train()
    batch = batch_of(1, 2)
    whole = module.generate({**batch, "carry": None}, module.generator)
    first_chunk = {k: v[:, :1] if k in module.SEQUENCE_KEYS else v for k, v in batch.items()}
    second_chunk = {k: v[:, 1:] if k in module.SEQUENCE_KEYS else v for k, v in batch.items()}
    first = module.generate({**first_chunk, "carry": None}, module.generator)
    assert first["warp_mask"].shape == (1, 1, 1, SIZE, SIZE) and float(first["warp_mask"].abs().sum()) == 0.0
    second = module.generate({**second_chunk, "carry": first["carry"]}, module.generator)
    assert torch.equal(second["warp_mask"], whole["warp_mask"][:, 1:])
    assert torch.allclose(second["warp_target"], whole["warp_target"][:, 1:], atol=1e-6)


def test_a_training_run_computes_every_table_and_the_curriculum_cuts_sequences() -> None:
    torch.manual_seed(0)
    module = Head2HeadModule(**tiny_config(eval_flicker=True))
    seen_lengths: list[int] = []
    original = module.run_chunks

    def spy(batch, generator, each_chunk=None, carry=None):
        if module.training:  # evaluation runs the same chunk loop on whole windows
            seen_lengths.append(int(batch["nmfc"].shape[1]))
        return original(batch, generator, each_chunk, carry)

    module.run_chunks = spy  # type: ignore[method-assign]
    data = DataLoader(SyntheticSequences(2, 12, SIZE), batch_size=2, collate_fn=collate)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, data, data)
    assert seen_lengths == [8]  # training at epoch 0: sequence_length.start (evaluation streams whole windows)
    logged = trainer.callback_metrics
    for name in ("image", "mouth", "eyes", "temporal_1", "temporal_3"):
        assert float(logged[f"train/D/{name}/real_epoch"]) > 0.0, name
        assert f"train/G/{name}/fm_epoch" in logged
    assert float(logged["train/D/temporal_9/real_epoch"]) == 0.0  # 8 frames: no window skipping 9 yet
    assert float(logged["train/G/warp_epoch"]) > 0.0
    assert module.sequence_length(0) == 8 and module.sequence_length(1) == 16 and module.sequence_length(5) == 16
    assert {"val/apd", "val/flicker", "val/mapd", "val/mouth_apd"} <= set(logged)


def test_apd_mapd_and_empty_nmfc_against_numpy() -> None:
    rng = np.random.default_rng(0)
    fake = rng.uniform(-1, 1, (1, 2, 3, 8, 8)).astype(np.float32)
    real = rng.uniform(-1, 1, (1, 2, 3, 8, 8)).astype(np.float32)
    nmfc = -np.ones((1, 2, 3, 8, 8), np.float32)
    nmfc[0, 0, 1, 2:5, 3:7] = 0.3  # frame 1 has an empty NMFC
    distance = np.sqrt((((fake - real) * 127.5) ** 2).sum(2))
    apd = sequence_apd(torch.from_numpy(fake), torch.from_numpy(real))
    assert np.isclose(float(apd[0]), distance.mean(), rtol=1e-5)
    mapd, empty = sequence_mapd(torch.from_numpy(fake), torch.from_numpy(real), torch.from_numpy(nmfc))
    assert np.isclose(float(mapd[0]), distance[0, 0, 2:5, 3:7].mean(), rtol=1e-5)
    assert float(empty[0]) == 1.0


def test_mouth_apd_uses_the_crop_around_the_mouth() -> None:
    real = torch.zeros(1, 1, 3, 64, 64)
    fake = real.clone()
    fake[..., 40:50, 10:20] = 1.0  # differs only around (15, 45)
    landmarks = torch.zeros(1, 1, 70, 2)
    landmarks[..., 48:, 0], landmarks[..., 48:, 1] = 15.0, 45.0
    inside = sequence_mouth_apd(fake, real, landmarks)
    landmarks[..., 48:, 0], landmarks[..., 48:, 1] = 50.0, 10.0
    outside = sequence_mouth_apd(fake, real, landmarks)
    size = 18  # 72 * 64 / 256
    assert np.isclose(float(inside), 100 * 127.5 * np.sqrt(3) / size**2, rtol=1e-5)
    assert float(outside) == 0.0
    crop = crop_around(torch.arange(64.0).repeat(64, 1)[None, None], torch.tensor([[62.0, 1.0]]), 18, 18)
    assert crop.shape[-2:] == (18, 18) and float(crop[0, 0, 0, -1]) == 63.0  # moved inside the frame


def test_flicker_is_zero_for_a_consistent_video_and_counts_jumps() -> None:
    batch = batch_of(1, 4)
    real = batch["image"]
    still = sequence_flicker(real[:, :1].expand(-1, 4, -1, -1, -1), real[:, :1].expand(-1, 4, -1, -1, -1), ZeroFlow())
    assert float(still[0]) < 1e-3  # 0-255 units; resampling by a zero flow rounds at 1e-5
    jumpy = real.clone()
    jumpy[:, 2] = -jumpy[:, 2]
    assert float(sequence_flicker(jumpy, real[:, :1].expand(-1, 4, -1, -1, -1), ZeroFlow())[0]) > 10.0


def test_nearest_training_frame_returns_the_matching_training_image() -> None:
    batch = batch_of(2, 4)
    baseline = NearestTrainingFrame.from_batches([batch])
    conditioning = torch.cat([batch["nmfc"][:, 2], batch["eyes"][:, 2]], 1).repeat(1, 3, 1, 1)
    out = baseline(conditioning, torch.zeros(2, 6, SIZE, SIZE))
    levels = ((batch["image"][:, 2] + 1) * 127.5).round() / 127.5 - 1  # stored as 8-bit levels
    assert torch.allclose(out, levels, atol=1e-6)
    assert float((out - batch["image"][:, 2]).abs().max()) <= 0.5 / 127.5 + 1e-6


def test_export_declares_one_chunk_step() -> None:
    module = Head2HeadModule(**tiny_config(eval_flicker=False, loss_weights={"l1": 1.0}))
    specs = module.export_modules(SIZE)
    spec = specs["generator"]
    assert [i.name for i in spec.inputs] == ["conditioning", "previous"]
    assert spec.inputs[0].shape == (18, SIZE, SIZE) and spec.inputs[1].shape == (6, SIZE, SIZE)
    out = spec.module(torch.zeros(2, 18, SIZE, SIZE), torch.zeros(2, 6, SIZE, SIZE))
    assert out.shape == (2, 3, SIZE, SIZE)


def test_unknown_table_and_bad_curriculum_are_one_line_errors() -> None:
    from src.utils.errors import UserError

    config = tiny_config()
    config["discriminators"] = {**config["discriminators"], "nose": config["discriminators"]["image"]}
    with pytest.raises(UserError, match=r"discriminators\.nose"):
        Head2HeadModule(**config)
    with pytest.raises(UserError, match="sequence_length"):
        Head2HeadModule(**tiny_config(sequence_length={"start": 0, "double_every": 5}))


def test_report_samples_name_each_clip_by_its_sequence_and_show_nmfc_prediction_truth() -> None:
    """The held-out report's videos: one per kept sequence, named by the batch's "sequence" (else <stage>_<n>), with
    the NMFC, the prediction and the truth as 8-bit frames (an independent numpy conversion here)."""
    module = Head2HeadModule(**tiny_config(eval_flicker=False, loss_weights={"l1": 1.0}))
    named = batch_of(2, 3)
    unnamed = {k: v[:1] for k, v in batch_of(1, 3).items() if k != "sequence"}
    predictions = [torch.rand(2, 3, 3, SIZE, SIZE) * 2.4 - 1.2, torch.rand(1, 3, 3, SIZE, SIZE) * 2 - 1]
    module.eval_results["val"] = {
        "samples": [(named, {"frames": predictions[0]}), (unnamed, {"frames": predictions[1]})]
    }

    def levels(frames: torch.Tensor) -> np.ndarray:  # (T, 3, H, W) in [-1, 1] -> (T, H, W, 3) uint8
        return np.round((np.clip(frames.numpy(), -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)

    samples = module.report_samples("val")
    assert [s.name for s in samples] == ["id000", "id001", "val_2"]
    items = [(named, predictions[0], 0), (named, predictions[0], 1), (unnamed, predictions[1], 0)]
    for sample, (batch, frames, index) in zip(samples, items):
        sample.validate()
        assert [label for label, _ in sample.videos] == ["NMFC", "prediction", "truth"]
        expected = [levels(batch["nmfc"][index]), levels(frames[index]), levels(batch["image"][index])]
        for (_, video), reference in zip(sample.videos, expected):
            assert video.dtype == np.uint8 and np.array_equal(video, reference)
    assert module.report_samples("test") == []  # a stage never evaluated has no samples
    module.eval_results["test"] = module.eval_results.pop("val")
    assert [s.name for s in module.report_samples()] == ["id000", "id001", "test_2"]  # the report's default: test
