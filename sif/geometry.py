"""Box geometry on normalized `[x1, y1, x2, y2]` boxes: IoU, union IoU, matched IoU, HIoU.

The union areas are exact (coordinate compression), not rasterised, so scores do not depend
on a grid resolution and stay fast for the handful of boxes a chain step holds.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from sif.errors import ConfigError

Box = Sequence[float]
PairDenominator = Literal["min", "max"]  # what the summed matched IoUs are divided by


def four_numbers(box) -> list[float] | None:
    """`box` as 4 floats when it is a list or tuple of 4 finite real numbers, else None: no
    coercion of strings (`"0011"` has 4 characters, it is not a box), bools or nested lists.

    >>> four_numbers([0, 0.5, 1, 1]), four_numbers("0011"), four_numbers([0, 0, 1, float("nan")])
    ([0.0, 0.5, 1.0, 1.0], None, None)
    """
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in box):
        return None
    try:
        out = [float(v) for v in box]
    except OverflowError:  # an integer beyond the range of a float
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _proper(boxes: Sequence[Box]) -> np.ndarray:
    """Boxes as an (n, 4) float array with degenerate ones (zero or negative area) dropped."""
    arr = np.asarray([list(map(float, b)) for b in boxes], dtype=np.float64).reshape(-1, 4)
    keep = (arr[:, 2] > arr[:, 0]) & (arr[:, 3] > arr[:, 1])
    return arr[keep]


def box_iou(a: Box, b: Box) -> float:
    """IoU of two boxes; 0 when either is degenerate."""
    ax1, ay1, ax2, ay2 = map(float, a)
    bx1, by1, bx2, by2 = map(float, b)
    area_a = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1)
    area_b = max(0.0, bx2 - bx1) * max(0.0, by2 - by1)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    iw = min(ax2, bx2) - max(ax1, bx1)
    ih = min(ay2, by2) - max(ay1, by1)
    inter = max(0.0, iw) * max(0.0, ih)
    return inter / (area_a + area_b - inter)


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two (n, 4) and (m, 4) arrays of proper boxes."""
    p = pred[:, None, :]
    g = gt[None, :, :]
    iw = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]), 0, None)
    inter = iw * ih
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_g = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    return inter / (area_p[:, None] + area_g[None, :] - inter)


def _coverage(boxes: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Which cells of the compressed grid (xs × ys edges) the union of `boxes` covers."""
    cover = np.zeros((len(ys) - 1, len(xs) - 1), dtype=bool)
    for x1, y1, x2, y2 in boxes:
        i1, i2 = np.searchsorted(xs, [x1, x2])
        j1, j2 = np.searchsorted(ys, [y1, y2])
        cover[j1:j2, i1:i2] = True
    return cover


def global_iou(pred: Sequence[Box], gt: Sequence[Box]) -> float:
    """IoU of the union of `pred` with the union of `gt` (FORMATS §4).

    >>> global_iou([[0, 0, 0.5, 1], [0.5, 0, 1, 1]], [[0, 0, 1, 1]])
    1.0
    """
    p, g = _proper(pred), _proper(gt)
    if len(p) == 0 and len(g) == 0:
        return 1.0
    if len(p) == 0 or len(g) == 0:
        return 0.0
    both = np.vstack([p, g])
    xs = np.unique(both[:, [0, 2]])
    ys = np.unique(both[:, [1, 3]])
    cell_area = np.outer(np.diff(ys), np.diff(xs))
    cp, cg = _coverage(p, xs, ys), _coverage(g, xs, ys)
    union = float(cell_area[cp | cg].sum())
    return float(cell_area[cp & cg].sum()) / union if union > 0 else 0.0


def pair_iou(pred: Sequence[Box], gt: Sequence[Box], denominator: PairDenominator = "min") -> float:
    """Mean IoU of the one-to-one matching that maximizes total IoU (Kuhn–Munkres).

    The sum of matched IoUs is divided by min(|P|, |G|) (the reference's choice) or, stricter,
    by max(|P|, |G|), which also charges for unmatched boxes.

    >>> pair_iou([[0, 0, 1, 1], [0, 0, 0.5, 0.5]], [[0, 0, 1, 1]])
    1.0
    >>> pair_iou([[0, 0, 1, 1], [0, 0, 0.5, 0.5]], [[0, 0, 1, 1]], denominator="max")
    0.5
    """
    if denominator not in ("min", "max"):
        raise ConfigError(f"denominator must be 'min' or 'max', not {denominator!r}")
    p, g = _proper(pred), _proper(gt)
    if len(p) == 0 and len(g) == 0:
        return 1.0
    if len(p) == 0 or len(g) == 0:
        return 0.0
    m = iou_matrix(p, g)
    rows, cols = linear_sum_assignment(m, maximize=True)
    total = float(m[rows, cols].sum())
    n = min(len(p), len(g)) if denominator == "min" else max(len(p), len(g))
    return total / n


def hiou(pred: Sequence[Box], gt: Sequence[Box], denominator: PairDenominator = "min") -> float:
    """Hybrid IoU: the mean of the union IoU and the matched-pair IoU (FORMATS §4)."""
    if len(pred) == 1 and len(gt) == 1 and _is_proper(pred[0]) and _is_proper(gt[0]):
        # One proper box each (the usual final step): both terms are that pair's IoU, and
        # skipping numpy on 1×1 arrays makes scoring and imports markedly cheaper.
        return box_iou(pred[0], gt[0])
    return (global_iou(pred, gt) + pair_iou(pred, gt, denominator)) / 2


def _is_proper(box: Box) -> bool:
    return float(box[2]) > float(box[0]) and float(box[3]) > float(box[1])


def enclosing_box(boxes: Sequence[Box]) -> list[float]:
    """The smallest box containing all `boxes`."""
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return [float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())]


def boxes_overlap(a: Box, b: Box) -> bool:
    """True when the two boxes share a region of positive area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def to_pixels(box: Box, width: int, height: int) -> list[float]:
    """A normalized box in pixel coordinates of a `width` × `height` image."""
    return [box[0] * width, box[1] * height, box[2] * width, box[3] * height]


def to_normalized(box: Box, width: int, height: int) -> list[float]:
    """A pixel box normalized to a `width` × `height` image, clipped to [0, 1]."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [
        min(max(x1 / width, 0.0), 1.0),
        min(max(y1 / height, 0.0), 1.0),
        min(max(x2 / width, 0.0), 1.0),
        min(max(y2 / height, 0.0), 1.0),
    ]
