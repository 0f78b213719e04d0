"""HIoU edge cases and the exact union IoU against shapely."""

from __future__ import annotations

import numpy as np
import pytest

from sif.geometry import box_iou, global_iou, hiou, pair_iou

A = [0.0, 0.0, 0.5, 0.5]
B = [0.5, 0.5, 1.0, 1.0]


@pytest.mark.parametrize("fn", [global_iou, pair_iou, hiou])
def test_both_empty_is_one_and_one_empty_is_zero(fn):
    assert fn([], []) == 1.0
    assert fn([A], []) == 0.0
    assert fn([], [A]) == 0.0


@pytest.mark.parametrize("fn", [global_iou, pair_iou, hiou])
def test_degenerate_boxes_are_ignored(fn):
    flat = [0.2, 0.2, 0.2, 0.8]
    inverted = [0.6, 0.6, 0.4, 0.9]
    assert fn([A, flat, inverted], [A]) == 1.0
    assert fn([flat], [inverted]) == 1.0  # both empty once the degenerate ones are dropped
    assert fn([flat], [A]) == 0.0


@pytest.mark.parametrize("fn", [global_iou, pair_iou, hiou])
def test_identical_is_one_and_disjoint_is_zero(fn):
    assert fn([A, B], [B, A]) == pytest.approx(1.0)
    assert fn([A], [B]) == 0.0


def test_many_to_one_min_and_max_denominators():
    pred = [A, [0.0, 0.0, 0.25, 0.25], B]
    gt = [A]
    # the best match is A↔A (IoU 1); the other two predictions stay unmatched
    assert pair_iou(pred, gt) == pytest.approx(1.0)
    assert pair_iou(pred, gt, denominator="max") == pytest.approx(1 / 3)
    g = global_iou(pred, gt)
    assert g == pytest.approx(0.25 / 0.5)
    assert hiou(pred, gt, "max") == pytest.approx((g + 1 / 3) / 2)
    with pytest.raises(ValueError, match="denominator"):
        pair_iou(pred, gt, denominator="mean")


def test_pair_iou_uses_the_optimal_matching():
    # Greedy would pair p0 with g0 (IoU 0.5) and leave p1 with g1 at 0; the optimum is better.
    p = [[0.0, 0.0, 0.4, 0.4], [0.2, 0.0, 0.6, 0.4]]
    g = [[0.1, 0.0, 0.5, 0.4], [0.0, 0.0, 0.3, 0.4]]
    ious = np.array([[box_iou(a, b) for b in g] for a in p])
    best = max(ious[0, 0] + ious[1, 1], ious[0, 1] + ious[1, 0])
    assert pair_iou(p, g) == pytest.approx(best / 2)


def test_global_iou_matches_shapely_on_random_boxes():
    pytest.importorskip("shapely")
    from shapely.geometry import box
    from shapely.ops import unary_union

    rng = np.random.default_rng(7)

    def boxes(n):
        lo = rng.uniform(0, 0.8, (n, 2))
        hi = lo + rng.uniform(0.01, 0.4, (n, 2))
        return np.clip(np.hstack([lo, hi]), 0, 1).tolist()

    for _ in range(200):
        p, g = boxes(int(rng.integers(1, 6))), boxes(int(rng.integers(1, 6)))
        up, ug = unary_union([box(*b) for b in p]), unary_union([box(*b) for b in g])
        expected = up.intersection(ug).area / up.union(ug).area
        assert global_iou(p, g) == pytest.approx(expected, abs=1e-9)


def test_global_iou_matches_a_fine_grid():
    rng = np.random.default_rng(3)
    n = 400
    for _ in range(20):
        p = (rng.integers(0, n, (3, 4)) / n).tolist()
        g = (rng.integers(0, n, (2, 4)) / n).tolist()
        p = [[min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])] for b in p]
        g = [[min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])] for b in g]

        def raster(bs):
            m = np.zeros((n, n), bool)
            for x1, y1, x2, y2 in bs:
                m[round(y1 * n) : round(y2 * n), round(x1 * n) : round(x2 * n)] = True
            return m

        mp, mg = raster(p), raster(g)
        if not mp.any() or not mg.any():
            continue  # all-degenerate draws are covered by the edge-case tests
        assert global_iou(p, g) == pytest.approx((mp & mg).sum() / (mp | mg).sum(), abs=1e-12)
