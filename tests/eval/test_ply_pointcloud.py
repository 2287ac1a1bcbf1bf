import numpy as np
import pytest

from src.io.ply import backproject, default_intrinsics, read_ply, write_ply


def _frame():
    rng = np.random.default_rng(0)
    depth = np.zeros((12, 16), np.float32)
    depth[3:9, 4:12] = rng.uniform(550, 650, size=(6, 8)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    return rgb, depth


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip_matches_back_projection(tmp_path, binary):
    rgb, depth = _frame()
    intrinsics = (20.0, 22.0, 7.5, 5.5)
    path = tmp_path / "cloud.ply"
    count = write_ply(path, rgb, depth, intrinsics, binary=binary)
    cloud = read_ply(path)
    assert count == 48 == len(cloud.points)
    # Pixel (u=4, v=3) is the first foreground pixel in row-major order.
    z = depth[3, 4]
    expected = [(4 - 7.5) * z / 20.0, (3 - 5.5) * z / 22.0, z]
    np.testing.assert_allclose(cloud.points[0], expected, rtol=1e-5, atol=1e-3)
    assert cloud.colors[0].tolist() == rgb[3, 4].tolist()
    ys, xs = np.nonzero(depth)
    np.testing.assert_allclose(cloud.points[:, 2], depth[ys, xs], rtol=1e-6)
    np.testing.assert_array_equal(cloud.colors, rgb[ys, xs])
    assert not list(tmp_path.glob(".*.tmp*"))  # atomic write left no temporary behind


def test_default_intrinsics_are_documented_and_used(tmp_path):
    rgb, depth = _frame()
    fx, fy, cx, cy = default_intrinsics(16, 12)
    assert fx == fy > 0 and (cx, cy) == (7.5, 5.5)
    points, _ = backproject(depth)
    explicit, _ = backproject(depth, (fx, fy, cx, cy))
    np.testing.assert_array_equal(points, explicit)
    write_ply(tmp_path / "d.ply", rgb, depth)
    assert b"intrinsics (default)" in (tmp_path / "d.ply").read_bytes()[:400]


def test_ply_errors_name_the_problem(tmp_path):
    rgb, depth = _frame()
    with pytest.raises(ValueError, match="differ"):
        write_ply(tmp_path / "x.ply", rgb[:5], depth)
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply")
    with pytest.raises(ValueError, match=r"bad\.ply"):
        read_ply(bad)
    write_ply(tmp_path / "t.ply", rgb, depth)
    truncated = tmp_path / "t.ply"
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_ply(truncated)
