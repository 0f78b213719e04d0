"""A scripted predictor built from each record's ground truth, with a known, seeded error.

It is a testing and backfill tool, never a model: it lets the whole evaluation path (adapters,
store, resume, metrics, report) run on real annotation files without images or GPUs, with
numbers a test can predict. Backend kind `scripted`.

- REC: the ground-truth box shrunk about its centre to a fraction `a` of its area, so its IoU
  with the ground truth is `a` (before the chain's 3-decimal rounding), with
  `a = lo + (hi − lo) · u` and `u = crc32(f"{seed}:{record.id}") / 2**32`.
- OVD: every ground-truth object, with its label, in annotation order.
- Questions: the right answer (the option letter for choice questions), except that a record
  with `u < wrong_rate` gets a wrong one.
- Synthetic: the record's ground-truth chain (`meta["chain"]`), or the answer alone.
"""

from __future__ import annotations

import json
import math
import zlib

from evaluation.choices import LETTERS
from evaluation.records import EvalRecord
from sif.chain import Chain, Region, Step, as_bbox, render_chain
from sif.errors import ConfigError

WHOLE = Region((0.0, 0.0, 1.0, 1.0), 0.5)


def record_unit(record_id: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by the record id and the seed."""
    return zlib.crc32(f"{seed}:{record_id}".encode()) / 2**32


def shrink(box, area_fraction: float) -> list[float]:
    """`box` scaled about its centre so that its area is `area_fraction` of the original."""
    s = math.sqrt(area_fraction)
    x1, y1, x2, y2 = box
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * s / 2, (y2 - y1) * s / 2
    return [cx - hw, cy - hh, cx + hw, cy + hh]


class ScriptedBackend:
    """Answers from the ground truth with a seeded, documented error (see the module docstring)."""

    needs_image = False
    name = "scripted"

    def __init__(self, *, area_range: tuple[float, float] = (0.2, 0.8), wrong_rate: float = 0.0, seed: int = 0):
        lo, hi = area_range
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"area_range must satisfy 0 < lo ≤ hi ≤ 1, got {area_range}")
        self.area_range, self.wrong_rate, self.seed = (lo, hi), wrong_rate, seed

    def area_fraction(self, record: EvalRecord) -> float:
        lo, hi = self.area_range
        return lo + (hi - lo) * record_unit(record.id, self.seed)

    def predict_record(self, record: EvalRecord) -> str:
        if record.kind == "rec":
            box = shrink(record.gt_boxes[0], self.area_fraction(record))
            return _chain([Region(as_bbox(box), 0.5)], "the described region")
        if record.kind == "ovd":
            answer = json.dumps([{"bbox_2d": [round(v, 3) for v in b], "label": lab} for lab, b in record.objects])
            return _chain([Region(as_bbox(b), 0.5) for _, b in record.objects], answer)
        if record.kind == "synth" and record.meta.get("chain") and not self._wrong(record):
            return record.meta["chain"]
        return _chain([Region(as_bbox(b), 0.5) for b in record.gt_boxes], self._answer(record))

    def _wrong(self, record: EvalRecord) -> bool:
        return record_unit(record.id, self.seed) < self.wrong_rate

    def _answer(self, record: EvalRecord) -> str:
        if record.choices and record.answer in record.choices:
            i = record.choices.index(record.answer)
            if self._wrong(record):
                i = (i + 1) % len(record.choices)
            return f"({LETTERS[i]})"
        return "I do not know" if self._wrong(record) else str(record.answer or "")

    def generate(self, image, depth, question, **kwargs) -> str:
        raise TypeError("the scripted backend answers from a record's ground truth; use predict_record(record)")


def _chain(final: list[Region], answer: str) -> str:
    steps = [Step((WHOLE,), "Looking at the whole image.")]
    if final:
        steps.append(Step(tuple(final), "This is the region that answers the question."))
    return render_chain(Chain(tuple(steps), answer))
