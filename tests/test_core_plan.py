"""Reverse-expansion planning: order, determinism, distractors, rounding and depths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sif.depth import DepthMap
from sif.geometry import boxes_overlap
from sif.plan import STEP_KINDS, plan_focus, plan_focus_detailed

DEPTH = DepthMap(np.random.default_rng(0).random((60, 80)).astype(np.float32))


def contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def test_single_box_plan_reads_whole_expansion_gt():
    plan = plan_focus_detailed([[0.4, 0.4, 0.6, 0.6]], DEPTH, 0, distractor_prob=0.0, n_expand=2)
    assert plan.kinds == ["whole", "expansion", "gt"]
    assert [s[0].bbox for s in plan.steps] == [(0.0, 0.0, 1.0, 1.0), (0.2, 0.2, 0.8, 0.8), (0.4, 0.4, 0.6, 0.6)]
    assert not plan.has_distractor and plan.index("gt") == 2 and plan.index("distractor") is None


def test_distractor_is_a_similar_box_away_from_the_focus():
    for seed in range(10):
        plan = plan_focus_detailed([[0.1, 0.1, 0.2, 0.2]], DEPTH, seed, distractor_prob=1.0, n_expand=3)
        assert plan.kinds == ["whole", "distractor", "expansion", "gt"]
        (d,), (e,) = plan.steps[1], plan.steps[2]
        assert not boxes_overlap(d.bbox, e.bbox)
        area = lambda b: (b[2] - b[0]) * (b[3] - b[1])
        assert 0.6 * area(e.bbox) <= area(d.bbox) <= 1.5 * area(e.bbox)


def test_step_size_reaches_the_border_in_n_steps():
    (_, (exp,), _) = plan_focus([[0.2, 0.3, 0.4, 0.5]], DEPTH, 0, distractor_prob=0.0, n_expand=4)
    assert exp.bbox == (0.15, 0.225, 0.55, 0.625)


def test_several_separate_boxes_get_an_enclosing_step():
    gt = [[0.05, 0.05, 0.1, 0.1], [0.85, 0.85, 0.95, 0.95]]
    plan = plan_focus_detailed(gt, DEPTH, 1, distractor_prob=0.0, n_expand=4)
    assert plan.kinds == ["whole", "enclosing", "expansion", "gt"]
    enclosing, expansion = plan.steps[1], plan.steps[2]
    assert len(enclosing) == 1 and len(expansion) == 2
    assert all(contains(enclosing[0].bbox, r.bbox) for r in expansion)


def test_overlapping_expansions_merge():
    gt = [[0.3, 0.3, 0.45, 0.45], [0.5, 0.5, 0.6, 0.6]]
    plan = plan_focus_detailed(gt, DEPTH, 0, distractor_prob=0.0, n_expand=2)
    assert plan.kinds == ["whole", "expansion", "gt"]  # merged into one box: no enclosing step
    (merged,) = plan.steps[1]
    assert all(contains(merged.bbox, b) for b in gt)


def test_same_seed_same_plan_and_generator_accepted():
    gt = [[0.1, 0.6, 0.3, 0.9]]
    a = plan_focus(gt, DEPTH, 42, distractor_prob=0.5)
    assert a == plan_focus(gt, DEPTH, np.random.default_rng(42), distractor_prob=0.5)
    different = {str(plan_focus(gt, DEPTH, s, distractor_prob=0.5)) for s in range(20)}
    assert len(different) > 1


def test_depths_are_rounded_box_means_and_arrays_work():
    steps = plan_focus([[0.123, 0.456, 0.789, 0.9]], DEPTH.array, 3, distractor_prob=1.0)
    for step in steps:
        for r in step:
            assert r.depth == round(DEPTH.box_mean(r.bbox), 3)


def test_tiny_and_edge_boxes_never_degenerate():
    steps = plan_focus([[0.99999, 0.5, 1.0, 0.5002], [0.0, 0.0, 0.0001, 0.0001]], DEPTH, 0)
    for step in steps:
        for r in step:
            x1, y1, x2, y2 = r.bbox
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
            assert all(v == round(v, 3) for v in r.bbox)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one ground-truth box"):
        plan_focus([], DEPTH, 0)
    with pytest.raises(ValueError, match="n_expand"):
        plan_focus([[0.1, 0.1, 0.2, 0.2]], DEPTH, 0, n_expand=0)


_coord = st.integers(0, 1000)


@st.composite
def gt_boxes(draw):
    out = []
    for _ in range(draw(st.integers(1, 4))):
        x1, x2 = sorted(draw(st.lists(_coord, min_size=2, max_size=2, unique=True)))
        y1, y2 = sorted(draw(st.lists(_coord, min_size=2, max_size=2, unique=True)))
        out.append([x1 / 1000, y1 / 1000, x2 / 1000, y2 / 1000])
    return out


@settings(max_examples=150, deadline=None)
@given(gt_boxes(), st.integers(0, 2**32 - 1), st.sampled_from([None, 1, 2, 5]))
def test_plan_invariants(gt, seed, n_expand):
    plan = plan_focus_detailed(gt, DEPTH, seed, distractor_prob=1.0, n_expand=n_expand)
    assert plan.steps[0][0].bbox == (0.0, 0.0, 1.0, 1.0) and len(plan.steps[0]) == 1
    assert [r.bbox for r in plan.steps[-1]] == [tuple(b) for b in gt]
    assert plan.kinds[0] == "whole" and plan.kinds[-1] == "gt"
    order = [STEP_KINDS.index(k) for k in plan.kinds]
    assert order == sorted(order) and len(set(order)) == len(order)
    later = [r.bbox for step in plan.steps[2:] for r in step]
    if plan.has_distractor:
        (d,) = plan.steps[1]
        assert not any(boxes_overlap(d.bbox, b) for b in later)
        focus = plan.steps[2]  # the step right after the distractor contains all the ground truth
        assert all(any(contains(f.bbox, b) for f in focus) for b in gt)
    for step in plan.steps:
        for r in step:
            assert 0 <= r.bbox[0] < r.bbox[2] <= 1 and 0 <= r.bbox[1] < r.bbox[3] <= 1
            assert 0 <= r.depth <= 1
