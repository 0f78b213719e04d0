"""Chance baselines: blind answer guessers per question kind and boxes that ignore the picture."""

from __future__ import annotations

import pytest

from evaluation.baselines import blind_hiou, chance_accuracy
from evaluation.records import EvalRecord


def _rec(kind: str, answer: str, box=(0.1, 0.5, 0.3, 0.9)) -> EvalRecord:
    return EvalRecord(
        id=f"{kind}-{answer}",
        kind="synth",
        dataset="synthetic",
        question="q?",
        answer=answer,
        category=kind,
        gt_boxes=[list(box)],
    )


def test_chance_accuracy_per_kind_is_the_better_blind_guesser():
    train = (
        [_rec("colour", "red")] * 3 + [_rec("colour", "blue")] + [_rec("name", a) for a in ("red ball", "blue cube")]
    )
    test = [_rec("colour", "red"), _rec("colour", "green"), _rec("name", "blue cube")]
    out = chance_accuracy(train, test)
    # colour: uniform over {red, blue} hits red half the time -> 0.25 over the two held-out; majority "red" -> 0.5
    assert out["colour"] == {"n": 2, "uniform": 0.25, "majority": 0.5, "chance": 0.5}
    # name: uniform over two names -> 0.5; majority (the first of a tie) "red ball" misses
    assert out["name"]["uniform"] == 0.5 and out["name"]["chance"] == 0.5
    assert out["overall"]["chance"] == pytest.approx((0.5 * 2 + 0.5) / 3) and out["overall"]["n"] == 3


def test_a_kind_never_seen_in_training_has_chance_zero():
    out = chance_accuracy([_rec("colour", "red")], [_rec("count", "2")])
    assert out["count"]["chance"] == 0.0


def test_blind_boxes():
    train = [_rec("k", "a", (0.0, 0.5, 0.2, 0.9)), _rec("k", "a", (0.2, 0.5, 0.4, 0.9))]
    test = [_rec("k", "a", (0.1, 0.5, 0.3, 0.9))]
    out = blind_hiou(train, test)
    assert out["boxes"]["centred"] == [0.4, 0.3, 0.6, 0.7]
    assert out["boxes"]["mean_box"] == [0.1, 0.5, 0.3, 0.9]  # the mean training box is this held-out box
    assert out["mean_box"] == pytest.approx(1.0)
    assert out["whole_image"] == pytest.approx(0.2 * 0.4)
    assert out["centred"] == pytest.approx(0.0)
    assert out["kind_mean_box"] == pytest.approx(1.0) and out["boxes"]["kind_mean_box"] == {"k": [0.1, 0.5, 0.3, 0.9]}


def test_the_kind_box_is_the_mean_box_of_that_question_kind():
    train = [_rec("low", "a", (0.0, 0.6, 0.2, 1.0)), _rec("high", "a", (0.5, 0.2, 0.6, 0.4))]
    test = [_rec("low", "a", (0.0, 0.6, 0.2, 1.0)), _rec("high", "a", (0.5, 0.2, 0.6, 0.4))]
    out = blind_hiou(train, test)
    assert out["kind_mean_box"] == pytest.approx(1.0) and out["mean_box"] < 0.5
