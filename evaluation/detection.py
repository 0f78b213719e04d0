"""COCO-style box AP and OVDEval's NMS-AP, in numpy (no pycocotools at run time).

NMS-AP (OVDEval, Yao et al. 2024): before a COCO AP, every ground-truth box of an image keeps
only the highest-scoring prediction of *any* label that overlaps it with IoU > 0.5 (among equal
scores the one listed last, as OVDEval's eval.py orders them); the other overlapping predictions
are dropped unless they are the kept one of another ground truth. A
model that answers the same box for the positive label and its hard negatives therefore keeps
one of them, not both, and the inflated AP of per-label evaluation goes away.

`coco_ap` follows pycocotools' COCOeval for `iouType="bbox"`, area "all", maxDets 100: per
image and label, detections sorted by score (stable) are matched greedily to the unmatched
ground truth of highest IoU ≥ t, for t = 0.50:0.05:0.95; precision is made monotone and read at
101 recall points; labels without ground truth are left out of the mean. Boxes are pixel
`[x, y, w, h]`; images are visited in ascending id, so ties in score break the same way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETS = 100


@dataclass(frozen=True)
class Detection:
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]  # pixel x, y, w, h
    score: float


@dataclass(frozen=True)
class GroundTruth:
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]


def xywh_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) pixel `[x, y, w, h]` boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def ovdeval_nms(gts: list[GroundTruth], dets: list[Detection], iou_threshold: float = 0.5) -> list[Detection]:
    """OVDEval's ground-truth-guided, label-agnostic suppression (see the module docstring)."""
    by_image_gt: dict[int, list[GroundTruth]] = defaultdict(list)
    for g in gts:
        by_image_gt[g.image_id].append(g)
    by_image_dt: dict[int, list[int]] = defaultdict(list)
    for i, d in enumerate(dets):
        by_image_dt[d.image_id].append(i)
    removed: set[int] = set()
    for image_id, idx in by_image_dt.items():
        image_gts = by_image_gt.get(image_id, [])
        if not image_gts:
            continue
        boxes = np.array([dets[i].bbox for i in idx])
        scores = np.array([dets[i].score for i in idx])
        ious = xywh_iou(np.array([g.bbox for g in image_gts]), boxes)
        keep: set[int] = set()
        drop: set[int] = set()
        for row in ious:
            hits = np.flatnonzero(row > iou_threshold)
            if hits.size:
                # eval.py's `np.argsort(scores)[::-1]`: the highest score first, and among equal
                # scores (every box of a VLM scores 1.0) the one listed last.
                order = hits[np.argsort(scores[hits], kind="stable")[::-1]]
                keep.add(idx[order[0]])
                drop.update(idx[j] for j in order[1:])
        removed |= drop - keep
    return [d for i, d in enumerate(dets) if i not in removed]


def _match_image(gt_boxes: np.ndarray, dt: list[Detection]) -> np.ndarray:
    """For detections already sorted by score: (thresholds, n) array, True where matched."""
    matched = np.zeros((len(IOU_THRESHOLDS), len(dt)), dtype=bool)
    if not len(gt_boxes) or not dt:
        return matched
    ious = xywh_iou(np.array([d.bbox for d in dt]), gt_boxes)
    for t, thr in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(gt_boxes), dtype=bool)
        for d in range(len(dt)):
            best, best_iou = -1, min(thr, 1 - 1e-10)
            for g in range(len(gt_boxes)):
                if taken[g] or ious[d, g] < best_iou:
                    continue
                best, best_iou = g, ious[d, g]
            if best >= 0:
                taken[best] = True
                matched[t, d] = True
    return matched


def _precision_at_recall(tp: np.ndarray, fp: np.ndarray, n_gt: int) -> np.ndarray:
    """Interpolated precision at the 101 COCO recall points for one threshold."""
    tp_sum, fp_sum = np.cumsum(tp, dtype=np.float64), np.cumsum(fp, dtype=np.float64)
    recall = tp_sum / n_gt
    precision = tp_sum / (tp_sum + fp_sum + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    out = np.zeros(len(RECALL_POINTS))
    valid = at < len(precision)
    out[valid] = precision[at[valid]]
    return out


def coco_ap(gts: list[GroundTruth], dets: list[Detection]) -> dict[str, float]:
    """COCO box AP@[.5:.95] and AP@.5 (area all, 100 detections per image and label).

    Returns {"ap": …, "ap50": …, "ap75": …, "categories": n}; -1 for the APs when no label has
    ground truth.
    """
    gt_by: dict[tuple[int, int], list] = defaultdict(list)
    for g in gts:
        gt_by[(g.category_id, g.image_id)].append(g.bbox)
    dt_by: dict[tuple[int, int], list[Detection]] = defaultdict(list)
    for d in dets:
        dt_by[(d.category_id, d.image_id)].append(d)
    categories = sorted({c for c, _ in gt_by})
    images = sorted({i for _, i in gt_by} | {i for _, i in dt_by})
    per_category = []  # (thresholds, 101) precision for each label with ground truth
    for cat in categories:
        scores: list[float] = []
        matches: list[np.ndarray] = []
        n_gt = 0
        for img in images:
            gt_boxes = np.array(gt_by.get((cat, img), []), dtype=np.float64).reshape(-1, 4)
            dt = sorted(dt_by.get((cat, img), []), key=lambda d: -d.score)[:MAX_DETS]
            n_gt += len(gt_boxes)
            scores.extend(d.score for d in dt)
            matches.append(_match_image(gt_boxes, dt))
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
        matched = np.concatenate(matches, axis=1)[:, order] if scores else np.zeros((len(IOU_THRESHOLDS), 0), bool)
        per_category.append(np.stack([_precision_at_recall(m, ~m, n_gt) for m in matched]))
    if not per_category:
        return {"ap": -1.0, "ap50": -1.0, "ap75": -1.0, "categories": 0}
    precision = np.stack(per_category)  # (categories, thresholds, recall points)
    return {
        "ap": float(precision.mean()),
        "ap50": float(precision[:, 0].mean()),
        "ap75": float(precision[:, 5].mean()),
        "categories": len(categories),
    }


def nms_ap(gts: list[GroundTruth], dets: list[Detection]) -> dict[str, float]:
    """OVDEval's NMS-AP: `coco_ap` after `ovdeval_nms`; also the plain AP for comparison."""
    kept = ovdeval_nms(gts, dets)
    out = coco_ap(gts, kept)
    plain = coco_ap(gts, dets)
    return {
        "nms_ap": out["ap"],
        "nms_ap50": out["ap50"],
        "ap": plain["ap"],
        "ap50": plain["ap50"],
        "detections": len(dets),
        "after_nms": len(kept),
        "categories": out["categories"],
    }
