"""Every writer: the same seed gives identical bytes with one or two worker processes; another seed differs."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import pytest

from src.faceworld.writers.details import write_details_dataset
from src.faceworld.writers.head2head import write_head2head_dataset
from src.faceworld.writers.prnet import write_prnet_dataset
from src.faceworld.writers.reenact import write_reenactment_dataset
from src.utils.errors import DatasetError

WRITERS = {
    "head2head": partial(
        write_head2head_dataset, num_identities=2, frames_per_video=6, size=32, part_frames=2, reenactments=1
    ),
    "dg": partial(write_reenactment_dataset, num_identities=3, frames_per_video=2, pairs_per_identity=1, size=32),
    "dfdn": partial(
        write_details_dataset, num_identities=2, expressions=("neutral", "browraise"), map_size=64, patch_size=16,
        stride=16,
    ),
    "prnet": partial(
        write_prnet_dataset, num_identities=2, images_per_identity=2, size=32, transfer_pairs=1, transfer_frames=2
    ),
}  # fmt: skip


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_same_seed_same_bytes_whatever_the_workers(tmp_path, layout):
    writer = WRITERS[layout]
    one = _hashes(writer(tmp_path / "one", seed=3, workers=1, progress=False))
    two = _hashes(writer(tmp_path / "two", seed=3, workers=2, progress=False))
    assert one and one == two
    assert not [name for name in one if ".tmp" in name]  # no temporaries left behind
    other = _hashes(writer(tmp_path / "other", seed=4, workers=1, progress=False))
    assert other.keys() == one.keys()
    images = (".png", ".jpg")  # dg writes JPEG crops, as the original's datasets hold
    changed = [name for name in one if name.endswith(images) and one[name] != other[name]]
    assert len(changed) > 0.5 * sum(name.endswith(images) for name in one)


def test_rerun_rewrites_and_other_settings_are_refused(tmp_path):
    """Writing again with the same settings reproduces the set; other settings never mix into it."""
    writer = WRITERS["prnet"]
    root = writer(tmp_path / "set", seed=1, workers=1, progress=False)
    before = _hashes(root)
    assert _hashes(writer(root, seed=1, workers=1, progress=False)) == before
    with pytest.raises(DatasetError, match="written with other settings"):
        writer(root, seed=2, workers=1, progress=False)
    assert _hashes(root) == before
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("someone else's")
    with pytest.raises(DatasetError, match="busy: not empty"):
        write_head2head_dataset(
            tmp_path / "busy", num_identities=1, frames_per_video=3, size=32, part_frames=2, progress=False
        )
