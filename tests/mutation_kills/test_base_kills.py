"""The base's evaluation helpers against hand-written expectations: which rows a kept sample holds, how the chunks
of a sequence are joined (time concatenated, the last chunk's per-sequence values, the carried state dropped), and
which frames an evaluation keeps (evenly spread, as numpy.linspace rounds them), and which training phases are
valid."""

from __future__ import annotations

import pytest
import torch

from src.models.base.evaluation import evenly_spread, join_chunks, keep
from src.models.base.specs import parse_phase
from src.models.base.training import CARRY
from src.utils.errors import UserError


def test_chunks_join_along_time_and_keep_the_last_chunks_per_sequence_values() -> None:
    chunks = [
        {"fake": torch.full((2, 3, 1), float(k)), "count": torch.tensor([k, k]), "name": f"c{k}", CARRY: k}
        for k in range(3)
    ]
    joined = join_chunks(chunks)
    assert set(joined) == {"fake", "count", "name"}
    assert joined["fake"].shape == (2, 9, 1)
    assert joined["fake"][0, :, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert joined["count"].tolist() == [2, 2] and joined["name"] == "c2"  # the last chunk's, not the one before
    single = join_chunks(chunks[:1])
    assert set(single) == {"fake", "count", "name"} and single["name"] == "c0"


def test_kept_rows_of_every_kind_of_output() -> None:
    rows = torch.tensor([2, 0])
    value = {
        "image": torch.arange(12.0).reshape(3, 4).requires_grad_(),
        "scales": [torch.arange(3), torch.arange(6).reshape(3, 2)],
        "ids": ["a", "b", "c"],
        "scalar": torch.tensor(5.0),
        "other": torch.arange(4),  # not per sample (length 4, batch 3): kept whole
        "text": "run",
    }
    kept = keep(value, rows, 3)
    assert kept["image"].tolist() == [[8, 9, 10, 11], [0, 1, 2, 3]] and not kept["image"].requires_grad
    assert kept["scales"][0].tolist() == [2, 0] and kept["scales"][1].tolist() == [[4, 5], [0, 1]]
    assert kept["ids"] == ["c", "a"] and kept["scalar"].item() == 5.0 and kept["other"].tolist() == [0, 1, 2, 3]
    assert kept["text"] == "run" and isinstance(kept["scales"], list)


def test_evaluation_frames_are_spread_evenly() -> None:
    assert evenly_spread(3, 5) == {0, 1, 2} and evenly_spread(4, 4) == {0, 1, 2, 3}
    assert evenly_spread(7, 4) == {0, 2, 4, 6}  # linspace(0, 6, 4)
    assert evenly_spread(11, 3) == {0, 5, 10}
    assert evenly_spread(100, 2) == {0, 99}


def test_a_phase_needs_a_non_empty_epoch_range() -> None:
    """[first, end) with 0 <= first < end; end null runs until training stops. [2, 2] would be a phase of no epoch."""
    assert parse_phase({"name": "warmup", "epochs": [0, 1]}, 0).end_epoch == 1
    assert parse_phase({"name": "rest", "epochs": [1, None]}, 1).end_epoch is None
    for epochs in ([2, 2], [3, 1], [-1, 2]):
        with pytest.raises(UserError, match=r"^model\.phases\[4\]\.epochs: need 0 <= first < end, got "):
            parse_phase({"name": "x", "epochs": epochs}, 4)


def test_update_entry_errors_begin_with_the_entrys_config_key() -> None:
    """`model.updates[i]: ...` first, so the one error line says which list entry to edit."""
    from src.models.base.specs import parse_update

    with pytest.raises(UserError, match=r"^model\.updates\[1\]: expected a mapping with at least `name`"):
        parse_update({"optimizer": "adam"}, 1)
    with pytest.raises(UserError, match=r"^model\.updates\[0\]: unknown key\(s\) \['bogus'\]; allowed: "):
        parse_update({"name": "G", "bogus": 1}, 0)
