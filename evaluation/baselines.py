"""What a model scores without looking: the figures every synthetic result is read against.

Chance answer accuracy per question kind is the better of two blind guessers, both fitted on the
training answers of that kind: one that picks uniformly among the answers seen, and one that
always gives the most frequent answer. Grounding chance is the final-step HIoU of a box that
ignores the picture: the whole image, a box of the mean training size centred in the image, the
mean training box (mean centre and size), and the mean training box of the question's kind (what a
model learns from the question alone, e.g. that the nearest object stands low in the picture).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from evaluation.records import EvalRecord
from sif.chain import WHOLE_IMAGE
from sif.geometry import hiou
from sif.rewards import rule_based_score


def _exact(record: EvalRecord, answer: str) -> bool:
    return rule_based_score(record.question, record.answer or "", answer) == 1.0


def chance_accuracy(train: Sequence[EvalRecord], test: Sequence[EvalRecord]) -> dict:
    """Per question kind (`category`) and overall (weighted by the held-out counts): the expected
    held-out accuracy of the uniform and the majority guesser, and `chance`, the larger."""
    answers: dict[str, Counter] = defaultdict(Counter)
    for r in train:
        answers[r.category][r.answer or ""] += 1
    held: dict[str, list[EvalRecord]] = defaultdict(list)
    for r in test:
        held[r.category].append(r)
    out: dict = {}
    for kind, records in sorted(held.items()):
        seen = answers.get(kind, Counter())
        uniform = sum(sum(_exact(r, a) for a in seen) / len(seen) for r in records) / len(records) if seen else 0.0
        majority = seen.most_common(1)[0][0] if seen else ""
        guessed = sum(_exact(r, majority) for r in records) / len(records) if seen else 0.0
        out[kind] = {"n": len(records), "uniform": uniform, "majority": guessed, "chance": max(uniform, guessed)}
    n = sum(v["n"] for v in out.values())
    out["overall"] = {
        key: sum(v[key] * v["n"] for v in out.values()) / n if n else float("nan")
        for key in ("uniform", "majority", "chance")
    }
    out["overall"]["n"] = n
    return out


def _mean_size(train: Iterable[EvalRecord]) -> tuple[float, float, float, float]:
    """Mean centre (x, y) and size (w, h) of the training ground-truth boxes."""
    boxes = [b for r in train for b in r.gt_boxes]
    if not boxes:
        return 0.5, 0.5, 0.5, 0.5
    n = len(boxes)
    return (
        sum(b[0] + b[2] for b in boxes) / 2 / n,
        sum(b[1] + b[3] for b in boxes) / 2 / n,
        sum(b[2] - b[0] for b in boxes) / n,
        sum(b[3] - b[1] for b in boxes) / n,
    )


def _box(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [
        round(max(cx - w / 2, 0.0), 3),
        round(max(cy - h / 2, 0.0), 3),
        round(min(cx + w / 2, 1.0), 3),
        round(min(cy + h / 2, 1.0), 3),
    ]


def blind_hiou(train: Sequence[EvalRecord], test: Sequence[EvalRecord]) -> dict:
    """Mean held-out final-step HIoU of each blind box."""
    cx, cy, w, h = _mean_size(train)
    boxes = {"whole_image": list(WHOLE_IMAGE), "centred": _box(0.5, 0.5, w, h), "mean_box": _box(cx, cy, w, h)}
    by_kind: dict[str, list[EvalRecord]] = defaultdict(list)
    for r in train:
        by_kind[r.category].append(r)
    kind_box = {k: _box(*_mean_size(v)) for k, v in by_kind.items()}
    out: dict = {}
    for name, box in boxes.items():
        out[name] = _mean([hiou([box], r.gt_boxes) for r in test])
    out["kind_mean_box"] = _mean([hiou([kind_box.get(r.category, boxes["mean_box"])], r.gt_boxes) for r in test])
    out["boxes"] = {**boxes, "kind_mean_box": kind_box}
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def chance_baselines(train: Sequence[EvalRecord], test: Sequence[EvalRecord]) -> dict:
    return {"accuracy": chance_accuracy(train, test), "final_hiou": blind_hiou(train, test)}
