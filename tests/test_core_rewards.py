"""The four GRPO-SIF rewards in each mode, and the offline rule-based judge."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from sif.chain import Chain, Region, Step, render_chain
from sif.depth import clear_depth_cache, save_gray16
from sif.rewards import (
    InMemoryProgressStore,
    bbox_reward,
    depth_reward,
    format_reward,
    make_answer_reward,
    rule_based_score,
)

WHOLE = (0.0, 0.0, 1.0, 1.0)
GT = [[0.0, 0.0, 0.5, 0.5]]
MALFORMED = [None, 123, "", "<area>[", "<think><area>garbage</area>", {"role": "assistant"}, [], [{"content": None}]]


def chain(*steps, answer="red") -> str:
    """Canonical chain text from step box lists (depth 0.5 unless given as (box, depth))."""
    out = []
    for boxes in steps:
        regions = tuple(
            Region(tuple(b[0]), b[1]) if isinstance(b, tuple) and len(b) == 2 else Region(tuple(b), 0.5) for b in boxes
        )
        out.append(Step(regions, "look"))
    return render_chain(Chain(tuple(out), answer))


def conv(text):
    return [{"role": "assistant", "content": text}]


# ---------------------------------------------------------------- format


def test_format_reward_accepts_every_completion_shape():
    ok = chain([WHOLE])
    assert format_reward([ok, conv(ok), {"role": "assistant", "content": ok}]) == [1.0, 1.0, 1.0]
    assert format_reward(["<answer>red</answer>", ok.replace("0.500", "0.5000")]) == [0.0, 0.0]
    assert format_reward(MALFORMED) == [0.0] * len(MALFORMED)


# ---------------------------------------------------------------- grounding


def test_bbox_reward_rewards_correction():
    wrong_then_right = chain([WHOLE], [[0.5, 0.5, 1.0, 1.0]], GT)
    assert bbox_reward([wrong_then_right], gt_boxes=[GT]) == [pytest.approx(2.0)]  # 1 + (1 − 0)
    # the whole-image first step is skipped when finding B_init
    assert bbox_reward([chain([WHOLE], GT)], gt_boxes=[GT]) == [pytest.approx(1.0)]


def test_bbox_reward_only_whole_image_uses_it_as_init():
    s_whole = (0.25 + 0.25) / 2  # global IoU 0.25, pair IoU 0.25
    assert bbox_reward([chain([WHOLE])], gt_boxes=[GT]) == [pytest.approx(s_whole)]


def test_bbox_reward_regression_default_vs_positive_only():
    right_then_wrong = chain([WHOLE], GT, [[0.5, 0.5, 1.0, 1.0]])
    assert bbox_reward([right_then_wrong], gt_boxes=[GT]) == [pytest.approx(-1.0)]
    assert bbox_reward([right_then_wrong], gt_boxes=[GT], positive_only=True) == [pytest.approx(0.0)]


def test_bbox_reward_pair_denominator():
    extra = chain(GT + [[0.5, 0.5, 1.0, 1.0]])  # one step: init == end, no gain term
    assert bbox_reward([extra], gt_boxes=[GT]) == [pytest.approx((0.5 + 1.0) / 2)]
    assert bbox_reward([extra], gt_boxes=[GT], pair_denominator="max") == [pytest.approx((0.5 + 0.5) / 2)]


def test_bbox_reward_malformed_scores_zero():
    assert bbox_reward(MALFORMED, gt_boxes=[GT] * len(MALFORMED)) == [0.0] * len(MALFORMED)


# ---------------------------------------------------------------- depth


@pytest.fixture
def depth_file(tmp_path):
    """Left half at depth 0.0, right half at 0.6."""
    clear_depth_cache()
    d = np.zeros((40, 80))
    d[:, 40:] = 0.6
    path = tmp_path / "depth.png"
    save_gray16(d, path)
    yield str(path)
    clear_depth_cache()


LEFT, RIGHT = (0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)


def test_depth_reward_strict_vs_fractional(depth_file):
    good = chain([(RIGHT, 0.62)], [(LEFT, 0.0)])
    half = chain([(RIGHT, 0.62)], [(RIGHT, 0.70)])  # 0.70 is off by more than 10 % of 0.6
    assert depth_reward([good, half], depth_path=[depth_file] * 2) == [1.0, 0.0]
    assert depth_reward([good, half], depth_path=[depth_file] * 2, fractional=True) == [1.0, 0.5]
    assert depth_reward([half], depth_path=[depth_file], tolerance=0.2) == [1.0]


def test_depth_reward_near_zero_ground_truth_is_exact_unless_a_floor_is_asked(depth_file):
    """The paper's rule (no floor) by default: at d_gt = 0 only depth 0 passes; the floor is an option."""
    assert depth_reward([chain([(LEFT, 0.0)])], depth_path=[depth_file]) == [1.0]
    assert depth_reward([chain([(LEFT, 0.01)])], depth_path=[depth_file]) == [0.0]
    assert depth_reward([chain([(LEFT, 0.01)])], depth_path=[depth_file], floor=0.02) == [1.0]
    assert depth_reward([chain([(LEFT, 0.05)])], depth_path=[depth_file], floor=0.02) == [0.0]


def test_depth_reward_encoding_column_and_bad_inputs(depth_file, tmp_path):
    ok = chain([(RIGHT, 0.6)])
    assert depth_reward([ok], depth_path=[depth_file], depth_encoding=["gray16_depth"]) == [1.0]
    assert depth_reward([ok], depth_path=[str(tmp_path / "missing.png")]) == [0.0]
    assert depth_reward([ok], depth_path=[depth_file], depth_encoding=["jet"]) == [0.0]
    no_depth = ok.replace(',"depth":0.600', "")
    assert depth_reward([no_depth], depth_path=[depth_file]) == [0.0]
    assert depth_reward(MALFORMED, depth_path=[depth_file] * len(MALFORMED)) == [0.0] * len(MALFORMED)


# ---------------------------------------------------------------- progressive answer


def answers(*preds):
    return [conv(f"<think>x</think><answer>{p}</answer>") for p in preds]


def test_answer_reward_first_time_then_progress():
    reward = make_answer_reward(rule_based_score, InMemoryProgressStore())
    kw = dict(answer=["red"] * 4, question=["q"] * 4, sample_id=["s"] * 4)
    assert reward(answers("red", "blue", "blue", "blue"), **kw) == [1.0, 0.0, 0.0, 0.0]  # mean 0.25 kept
    assert reward(answers("red", "red", "blue", "blue"), **kw) == pytest.approx([1.75, 1.75, -0.25, -0.25])


def test_answer_reward_positive_only():
    reward = make_answer_reward(rule_based_score, InMemoryProgressStore(), positive_only=True)
    kw = dict(answer=["red"] * 2, question=["q"] * 2, sample_id=["s"] * 2)
    reward(answers("red", "red"), **kw)
    assert reward(answers("red", "blue"), **kw) == [1.0, 0.0]


def test_answer_reward_groups_by_sample_id():
    store = InMemoryProgressStore()
    reward = make_answer_reward(rule_based_score, store)
    reward(
        answers("red", "blue", "2", "2"),
        answer=["red", "red", "2", "2"],
        question=["q"] * 4,
        sample_id=["a", "a", "b", "b"],
    )
    assert store.previous_mean("a") == 0.5 and store.previous_mean("b") == 1.0
    out = reward(answers("red", "3"), answer=["red", "2"], question=["q"] * 2, sample_id=["a", "b"])
    assert out == pytest.approx([1.5, -1.0])


def test_answer_reward_malformed_scores_zero_and_counts_as_zero():
    store = InMemoryProgressStore()
    reward = make_answer_reward(rule_based_score, store)
    n = len(MALFORMED)
    assert reward(MALFORMED, answer=["red"] * n, question=["q"] * n, sample_id=["m"] * n) == [0.0] * n
    assert store.previous_mean("m") == 0.0


def test_answer_reward_clamps_the_judge():
    reward = make_answer_reward(lambda q, a, p: 7.0, InMemoryProgressStore())
    assert reward(answers("x"), answer=["y"], question=["q"], sample_id=["s"]) == [1.0]


def test_rewards_bind_options_with_partial():
    strict = partial(bbox_reward, pair_denominator="max")
    assert strict([chain(GT)], gt_boxes=[GT]) == [pytest.approx(1.0)]


# ---------------------------------------------------------------- rule-based judge


@pytest.mark.parametrize(
    "answer, prediction, score",
    [
        ("3", "three", 1.0),
        ("3", "There are 3 cubes.", 1.0),
        ("3", "4", 0.0),
        ("2.5", "2.51", 1.0),  # within 1 %
        ("1,000", "1000", 1.0),
        ("Red", "red.", 1.0),
        ("the red cube", "Red cube", 1.0),
        ("yes", "Yes, it is.", 1.0),
        ("no", "yes", 0.0),
        ("B", "(B)", 1.0),
        ("B", "The answer is B", 1.0),
        ("B", "C", 0.0),
        ("red", "", 0.0),
    ],
)
def test_rule_based_score(answer, prediction, score):
    assert rule_based_score("q", answer, prediction) == score


def test_rule_based_score_partial_credit_is_token_f1():
    # gt {red, cube}, prediction {blue, cube}: precision = recall = 1/2
    assert rule_based_score("q", "red cube", "blue cube") == pytest.approx(0.5)
    assert rule_based_score("q", "red cube", "green ball") == 0.0
