"""Depth decoding of the three encodings, box means, the decode cache and the palette."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from PIL import Image

import sif.depth as depth_mod
from sif.depth import (
    SPECTRAL_R,
    DepthMap,
    clear_depth_cache,
    decode_image,
    encode_spectral_r,
    from_disparity,
    save_gray16,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_depth_cache()
    yield
    clear_depth_cache()


def _levels(h=48, w=64, seed=0) -> np.ndarray:
    """A disparity-level field that uses every level 0..255."""
    k = np.random.default_rng(seed).integers(0, 256, (h, w))
    k.flat[:256] = np.arange(256)
    return k


def test_palette_is_matplotlibs_spectral_r_floored():
    matplotlib = pytest.importorskip("matplotlib")
    cmap = matplotlib.colormaps["Spectral_r"]
    expected = np.floor(255 * cmap(np.arange(256))[:, :3]).astype(np.uint8)
    assert np.array_equal(SPECTRAL_R, expected)


def test_spectral_r_decodes_to_one_minus_level(tmp_path):
    k = _levels()
    path = tmp_path / "d.png"
    Image.fromarray(SPECTRAL_R[k]).save(path)
    dmap = DepthMap.load(path)
    assert dmap.encoding == "spectral_r"
    np.testing.assert_allclose(dmap.array, 1 - k / 255, atol=1e-4)


def test_damaged_spectral_colours_decode_to_nearest_palette_colour():
    rng = np.random.default_rng(1)
    k = _levels()
    noisy = np.clip(SPECTRAL_R[k].astype(int) + rng.integers(-6, 7, k.shape + (3,)), 0, 255).astype(np.uint8)
    d2 = ((noisy[..., None, :].astype(int) - SPECTRAL_R.astype(int)) ** 2).sum(-1)
    nearest = d2.argmin(-1)
    arr, enc = decode_image(Image.fromarray(noisy), "spectral_r")
    assert enc == "spectral_r"
    np.testing.assert_allclose(arr, 1 - nearest / 255, atol=1e-6)


def test_jpeg_round_trip_stays_close(tmp_path):
    # A smooth field survives JPEG; decoding picks nearby palette levels, not noise.
    k = np.tile(np.linspace(0, 255, 128).round().astype(int), (64, 1))
    path = tmp_path / "d.jpg"
    Image.fromarray(SPECTRAL_R[k]).save(path, quality=90)
    arr = DepthMap.load(path, "spectral_r").array
    assert np.median(np.abs(arr - (1 - k / 255))) < 4 / 255


def test_gray_disparity_is_one_minus_value(tmp_path):
    v = _levels().astype(np.uint8)
    path = tmp_path / "g.png"
    Image.fromarray(v, mode="L").save(path)
    dmap = DepthMap.load(path)
    assert dmap.encoding == "gray_disparity"
    np.testing.assert_allclose(dmap.array, 1 - v / 255, atol=1e-6)
    # an RGB file with equal channels is the same encoding
    rgb_path = tmp_path / "g3.png"
    Image.fromarray(np.stack([v] * 3, -1)).save(rgb_path)
    assert DepthMap.load(rgb_path).encoding == "gray_disparity"


def test_gray16_is_exact(tmp_path):
    d = np.random.default_rng(2).integers(0, 65536, (30, 40)) / 65535
    path = tmp_path / "d16.png"
    save_gray16(d, path)
    dmap = DepthMap.load(path)
    assert dmap.encoding == "gray16_depth"
    np.testing.assert_allclose(dmap.array, d, atol=1e-7)


def test_spectral_encode_decode_round_trip():
    d = np.random.default_rng(4).random((20, 30)).astype(np.float32)
    arr, _ = decode_image(Image.fromarray(encode_spectral_r(d)))
    assert np.abs(arr - d).max() <= 0.5 / 255 + 1e-6


def test_from_disparity_puts_the_nearest_at_zero():
    d = from_disparity(np.array([[10.0, 5.0], [0.0, 2.5]]))
    np.testing.assert_allclose(d, [[0.0, 0.5], [1.0, 0.75]])
    assert np.all(from_disparity(np.full((2, 2), 3.0)) == 0)


def test_unknown_encoding_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown depth encoding 'jet'"):
        decode_image(Image.new("RGB", (4, 4)), "jet")


def test_box_mean_matches_numpy_slicing():
    rng = np.random.default_rng(5)
    arr = rng.random((37, 53)).astype(np.float32)
    dmap = DepthMap(arr)
    for _ in range(300):
        x1, x2 = np.sort(rng.uniform(0, 1, 2))
        y1, y2 = np.sort(rng.uniform(0, 1, 2))
        c1, r1 = int(np.floor(x1 * 53)), int(np.floor(y1 * 37))
        c2, r2 = max(int(np.ceil(x2 * 53)), c1 + 1), max(int(np.ceil(y2 * 37)), r1 + 1)
        c1, r1 = min(c1, 52), min(r1, 36)
        expected = arr[r1:r2, c1:c2].astype(np.float64).mean()
        assert dmap.box_mean([x1, y1, x2, y2]) == pytest.approx(expected, abs=1e-6)
    assert dmap.box_mean([0, 0, 1, 1]) == pytest.approx(arr.mean(), abs=1e-6)
    assert dmap.pixel_span([1.0, 1.0, 1.0, 1.0]) == (52, 36, 53, 37)  # clipped, never empty


def test_box_means_are_direct_for_a_few_boxes_then_from_the_table_and_stay_stable():
    rng = np.random.default_rng(6)
    arr = rng.random((40, 60)).astype(np.float32)
    dmap = DepthMap(arr)
    first = [dmap.box_mean(b) for b in ([0, 0, 1, 1], [0.2, 0.2, 0.5, 0.6])]
    assert dmap._sat is None  # a plan's few boxes need no table
    corners = np.sort(rng.uniform(0, 1, (50, 2, 2)), axis=1)  # [[x1, y1], [x2, y2]] per box
    boxes = corners.reshape(50, 4)
    means = [dmap.box_mean(b) for b in boxes]
    assert dmap._sat is not None  # many boxes: the table was built
    assert [dmap.box_mean(b) for b in ([0, 0, 1, 1], [0.2, 0.2, 0.5, 0.6])] == first  # same answer as before
    for b, m in zip(boxes, means):
        c1, r1, c2, r2 = dmap.pixel_span(b)
        assert m == pytest.approx(arr[r1:r2, c1:c2].astype(np.float64).mean(), abs=1e-9)


def test_thousands_of_box_means_at_once_agree_with_one_at_a_time_hostile_boxes_included():
    rng = np.random.default_rng(7)
    arr = rng.random((45, 70)).astype(np.float32)
    corners = np.sort(rng.uniform(-0.2, 1.2, (5000, 2, 2)), axis=1)
    boxes = [*corners.reshape(5000, 4).tolist(), [math.nan, 0, 1e308, -1e308], [1, 1, 1, 1], [0, 0, 0, 0]]
    at_once = DepthMap(arr).box_means(boxes)
    one_by_one = [DepthMap(arr).box_mean(b) for b in boxes]  # a fresh map each: summed directly
    assert len(at_once) == len(boxes) and at_once == pytest.approx(one_by_one, abs=1e-9)
    assert DepthMap(arr).box_means(boxes[:3]) == one_by_one[:3]  # a few boxes take the direct path


def test_cache_decodes_each_file_version_once(tmp_path, monkeypatch):
    calls = []
    real = depth_mod.decode_image
    monkeypatch.setattr(depth_mod, "decode_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = tmp_path / "d.png"
    Image.fromarray(SPECTRAL_R[_levels()]).save(path)
    first = DepthMap.load(path)
    assert DepthMap.load(path) is first and DepthMap.load(str(path)) is first
    assert len(calls) == 1
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new version of the file
    DepthMap.load(path)
    assert len(calls) == 2
    with pytest.raises(FileNotFoundError, match="depth map not found"):
        DepthMap.load(tmp_path / "missing.png")


def test_cache_is_bounded_by_bytes_least_recently_used_first(tmp_path, monkeypatch):
    one_map = 48 * 64 * 4  # a 64×48 float32 map
    monkeypatch.setattr(depth_mod, "_CACHE", depth_mod._LRU(2 * one_map))
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"d{i}.png")
        save_gray16(np.full((48, 64), i / 4), paths[-1])
    a, b = DepthMap.load(paths[0]), DepthMap.load(paths[1])
    assert a.nbytes == one_map and DepthMap.load(paths[0]) is a  # a is now the most recently used
    c = DepthMap.load(paths[2])  # over budget: b, the least recently used, goes
    assert DepthMap.load(paths[0]) is a and DepthMap.load(paths[2]) is c
    b2 = DepthMap.load(paths[1])  # decoded again; now a goes
    assert b2 is not b and DepthMap.load(paths[2]) is c and DepthMap.load(paths[1]) is b2
    c.sat  # noqa: B018 (a summed-area table: float64, twice the map)
    assert c.nbytes == 3 * one_map
    d = DepthMap.load(paths[3])  # c with its table weighs the budget and more: it goes
    assert DepthMap.load(paths[1]) is b2 and DepthMap.load(paths[3]) is d
    assert DepthMap.load(paths[2]) is not c
