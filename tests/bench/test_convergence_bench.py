"""bench/convergence.py's planning and identity subsets (the training runs themselves are the bench's job)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from src.io.rgbd_layout import frame_group, processed_paths
from src.utils.errors import UserError
from tests.bench_scripts import load_bench


def _bench():
    return load_bench("convergence")


@pytest.mark.parametrize(
    ("steps", "frames", "batch_size"), [(2500, 1001, 4), (460, 1001, 4), (238, 25, 4), (7, 1001, 4), (5000, 3, 8)]
)
def test_plan_keeps_the_schedule_shape_and_the_step_count(steps: int, frames: int, batch_size: int) -> None:
    epochs, batches = _bench().plan(steps, frames, batch_size)
    per_epoch = math.ceil(frames / batch_size)
    assert epochs >= 10 and epochs % 2 == 0  # two equal halves (constant, decay), at least 10 LR epochs
    if batches is None:  # whole epochs: off by at most one epoch (the count is rounded to an even number)
        assert abs(epochs * per_epoch - steps) <= per_epoch
    else:  # 10 drawn epochs of steps / 10 batches, never more batches than the split holds
        assert epochs == 10 and abs(epochs * batches - steps) <= 5 and batches <= per_epoch


def _fake_processed(root: Path, identities: int, frames: int) -> list[str]:
    """Files named like a processed dataset (contents irrelevant: the subset only links them)."""
    ids = [f"id{i:03d}_{k:06d}" for i in range(identities) for k in range(frames)]
    for split, split_ids in (("train", ids), ("eval", ["id900_000000"])):
        for frame_id in split_ids:
            for path in processed_paths(root, split, frame_id).values():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{split}/{path.parent.name}/{frame_id}")
    (root / "config.txt").write_text("near_mm: 1\n")
    return ids


def test_identity_subset_links_the_first_identities_and_keeps_eval(tmp_path: Path) -> None:
    ids = _fake_processed(tmp_path / "full", identities=6, frames=2)
    subset, count = _bench().identity_subset(tmp_path / "full", ids, 4, tmp_path / "sub")
    linked = sorted(p.stem for p in (subset / "train" / "Color").iterdir())
    assert count == 8 and linked == [f for f in ids if frame_group(f) in {"id000", "id001", "id002", "id003"}]
    for frame_id in linked:
        for kind, path in processed_paths(subset, "train", frame_id).items():
            assert path.read_text() == f"train/{kind}/{frame_id}"
    assert (subset / "eval" / "Color" / "id900_000000.png").read_text() == "eval/Color/id900_000000"
    assert (subset / "config.txt").read_text() == "near_mm: 1\n"
    with pytest.raises(UserError, match="holds only 6 identities"):
        _bench().identity_subset(tmp_path / "full", ids, 7, tmp_path / "sub7")


def test_arguments_are_checked_before_any_work() -> None:
    bench = _bench()
    quick = bench.parse_args(["--quick"])
    assert quick.minutes == bench.QUICK["minutes"] and quick.identity_minutes == bench.QUICK["identity_minutes"]
    for bad in (["--minutes", "0"], ["--identities", "-1"], ["--threads", "0"], ["model.ngf"]):
        with pytest.raises(UserError):
            bench.parse_args(bad)


@pytest.mark.parametrize(
    ("n_epochs", "n_epochs_decay", "epochs", "expected"),
    [(3, 3, 10, (5, 5)), (0, 6, 12, (0, 12)), (30, 70, 10, (3, 7)), (2, 1, 10, (7, 3)), (5, 0, 10, (10, 0))],
)
def test_stretched_schedule_keeps_the_configs_shares(
    n_epochs: int, n_epochs_decay: int, epochs: int, expected: tuple[int, int]
) -> None:
    assert _bench().stretch_schedule(n_epochs, n_epochs_decay, epochs) == expected


def test_stretched_schedule_rejects_an_empty_schedule() -> None:
    with pytest.raises(UserError, match=r"model\.scheduler"):
        _bench().stretch_schedule(0, 0, 10)


def test_table_states_the_load_of_every_run_and_of_the_machine() -> None:
    run = {"sweep": "minutes", "identities": 10, "budget_min": 2.0, "cpu_min": 1.98, "wall_min": 7.5, "steps": 500}
    run.update(epochs=10, load_start=6.34, load_end=3.5, psnr_rgbd=16.5)
    results = {
        "runs": [run],
        "references": {"mean_face": {"psnr_rgbd": 15.25}},
        "threads": 2,
        "cpu_s_per_step": 0.25,
        "machine": {
            "cpus": 2,
            "load_average_at_start": (6.0, 5, 4),
            "load_average_at_end": (2.5, 2, 2),
            "niceness": 10,
        },
    }
    table = _bench().markdown(results)
    row = next(line for line in table.splitlines() if line.startswith("| minutes"))
    assert row.rstrip(" |").split(" | ")[5:9] == ["6.3-3.5", "500", "10", "16.500"]
    assert "2 CPUs, load average (1 min) 6.0 -> 2.5, bench at nice 10" in table
    assert "| mean_face | - |" in table and "15.250" in table
