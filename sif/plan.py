"""Reverse-expansion focus planning (FORMATS §6).

Starting from the ground-truth boxes, the planner grows them toward the image border, keeps
the first expansion (plus the box enclosing it when it is still several boxes), optionally adds
a distractor that a chain first looks at and then rejects, adds the whole image, and returns the
steps in reading order: whole image → [distractor] → [enclosing] → expansion → ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sif.chain import WHOLE_IMAGE, BBox, Region, as_bbox
from sif.depth import DepthMap
from sif.errors import ConfigError
from sif.geometry import boxes_overlap, enclosing_box

StepKind = Literal["whole", "distractor", "enclosing", "expansion", "gt"]
STEP_KINDS: tuple[str, ...] = ("whole", "distractor", "enclosing", "expansion", "gt")
DISTRACTOR_TRIES = 64
_Q = 1000  # boxes live on a 1/1000 grid: 3 decimals
GridBox = tuple[int, int, int, int]  # a box in grid cells


@dataclass(frozen=True)
class FocusPlan:
    """The planned steps and what each one is, so texts can be written per kind."""

    steps: list[list[Region]]
    kinds: list[str]

    def index(self, kind: str) -> int | None:
        """Position of the first step of `kind`, or None when the plan has none."""
        return self.kinds.index(kind) if kind in self.kinds else None

    @property
    def has_distractor(self) -> bool:
        return "distractor" in self.kinds


def _as_rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _grid(box: Sequence[float], outward: bool = False) -> GridBox:
    """A box on the 1/1000 grid, inside [0, 1000] and at least one cell wide and high.

    `outward` rounds the low edges down and the high edges up, so the result contains `box`.
    """
    x1, y1, x2, y2 = (float(v) * _Q for v in box)
    if outward:
        g = [int(np.floor(x1 + 1e-9)), int(np.floor(y1 + 1e-9)), int(np.ceil(x2 - 1e-9)), int(np.ceil(y2 - 1e-9))]
    else:
        g = [int(round(v)) for v in (x1, y1, x2, y2)]
    g = [min(max(v, 0), _Q) for v in g]
    for lo, hi in ((0, 2), (1, 3)):
        if g[hi] <= g[lo]:  # degenerate after rounding: widen by one cell, inside the image
            if g[lo] < _Q:
                g[hi] = g[lo] + 1
            else:
                g[lo] = _Q - 1
    return g[0], g[1], g[2], g[3]


def _norm(g: GridBox) -> BBox:
    return as_bbox(round(v / _Q, 3) for v in g)


def _enclosing(boxes: list[GridBox]) -> GridBox:
    x1, y1, x2, y2 = (int(v) for v in enclosing_box(boxes))
    return x1, y1, x2, y2


def _merge_overlapping(boxes: list[GridBox]) -> list[GridBox]:
    """Replace overlapping boxes by their enclosing box until no two overlap."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if boxes_overlap(boxes[i], boxes[j]):
                    boxes[i] = _enclosing([boxes[i], boxes[j]])
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def _first_expansion(gt: list[GridBox], n_expand: int) -> list[GridBox]:
    """Each box grown by 1/n_expand of its distance to every border, overlapping ones merged."""
    grown = [
        _grid(
            (
                (x1 - x1 / n_expand) / _Q,
                (y1 - y1 / n_expand) / _Q,
                (x2 + (_Q - x2) / n_expand) / _Q,
                (y2 + (_Q - y2) / n_expand) / _Q,
            ),
            outward=True,
        )
        for x1, y1, x2, y2 in gt
    ]
    return _merge_overlapping(grown)


def _distractor(focus: list[GridBox], like: GridBox, rng: np.random.Generator) -> GridBox | None:
    """A box about the size of `like` that overlaps none of `focus`, or None after bounded tries."""
    w0, h0 = like[2] - like[0], like[3] - like[1]
    for attempt in range(DISTRACTOR_TRIES):
        shrink = 1.0 if attempt < DISTRACTOR_TRIES // 2 else 0.5  # late tries accept smaller boxes
        scale = rng.uniform(0.8, 1.2) * shrink
        w = int(min(max(round(w0 * scale), 1), _Q))
        h = int(min(max(round(h0 * scale), 1), _Q))
        x1 = int(rng.integers(0, _Q - w + 1))
        y1 = int(rng.integers(0, _Q - h + 1))
        box = (x1, y1, x1 + w, y1 + h)
        if not any(boxes_overlap(box, f) for f in focus):
            return box
    return None


def plan_focus_detailed(
    gt_boxes: Sequence[Sequence[float]],
    depth_map: DepthMap | np.ndarray,
    rng=None,
    *,
    distractor_prob: float = 0.5,
    n_expand: int | None = None,
) -> FocusPlan:
    """The focus plan with each step's kind (see module docstring).

    `n_expand` is how many expansion steps would take the ground truth to the border
    (default: drawn from 2..4); only the first of them is kept.
    """
    if not len(gt_boxes):
        raise ConfigError("plan_focus needs at least one ground-truth box")
    rng = _as_rng(rng)
    dmap = depth_map if isinstance(depth_map, DepthMap) else DepthMap(np.asarray(depth_map))
    if n_expand is None:
        n_expand = int(rng.integers(2, 5))
    if n_expand < 1:
        raise ConfigError(f"n_expand must be at least 1, got {n_expand}")

    gt = [_grid(b) for b in gt_boxes]
    expansion = _first_expansion(gt, n_expand)
    steps: list[tuple[str, list[GridBox]]] = [("expansion", expansion)]
    if len(expansion) > 1:
        steps.insert(0, ("enclosing", [_enclosing(expansion)]))
    if rng.random() < distractor_prob:
        focus = [b for _, boxes in steps for b in boxes] + gt
        box = _distractor(focus, steps[0][1][0], rng)
        if box is not None:
            steps.insert(0, ("distractor", [box]))
    whole = _grid(WHOLE_IMAGE)
    # A coarse step that already is the whole image adds nothing: drop it.
    steps = [(k, b) for k, b in steps if b != [whole]]
    steps = [("whole", [whole])] + steps + [("gt", gt)]

    def region(g):
        box = _norm(g)
        return Region(box, round(dmap.box_mean(box), 3))

    return FocusPlan([[region(g) for g in boxes] for _, boxes in steps], [k for k, _ in steps])


def plan_focus(
    gt_boxes: Sequence[Sequence[float]],
    depth_map: DepthMap | np.ndarray,
    rng=None,
    *,
    distractor_prob: float = 0.5,
    n_expand: int | None = None,
) -> list[list[Region]]:
    """The focus steps, whole image first and ground truth last, each region with its mean depth.

    >>> steps = plan_focus([[0.4, 0.4, 0.6, 0.6]], np.zeros((10, 10)), 0, distractor_prob=0, n_expand=2)
    >>> [s[0].bbox for s in steps]
    [(0.0, 0.0, 1.0, 1.0), (0.2, 0.2, 0.8, 0.8), (0.4, 0.4, 0.6, 0.6)]
    """
    return plan_focus_detailed(gt_boxes, depth_map, rng, distractor_prob=distractor_prob, n_expand=n_expand).steps
