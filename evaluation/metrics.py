"""Per-record scoring of a model's text and the per-benchmark aggregates.

`score_record` reads one prediction (a SIF chain, or plain text from a model that ignores the
format) and returns a small JSON-able dict; `aggregate` turns the dicts of a run into the
metrics the report shows. Scoring never raises on model output: what cannot be read scores 0.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from evaluation.choices import extract_choice
from evaluation.detection import Detection, GroundTruth, nms_ap
from evaluation.records import EvalRecord
from sif.chain import parse_chain, validate_chain
from sif.geometry import box_iou, enclosing_box, hiou, to_normalized
from sif.rewards import bbox_reward, depth_reward, rule_based_score

Scorer = Callable[[str, str, str], float]  # (question, ground truth, prediction) -> [0, 1]
REC_THRESHOLD = 0.5
_NUM = r"-?\d+(?:\.\d+)?"
_BOX = re.compile(r"\[\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\]")


def answer_text(text: str) -> tuple[str, list]:
    """The answer and the steps of a prediction; text without tags is taken as the answer."""
    parsed = parse_chain(text or "")
    answer = parsed.chain.answer
    if answer is None:
        answer = re.sub(r"</?(think|answer|area|text)>", " ", text or "").strip() if not parsed.chain.steps else ""
    return answer, list(parsed.chain.steps)


def _box_from_numbers(nums: Sequence[float], width: int, height: int) -> list[float] | None:
    """A normalized box from 4 numbers: normalized if all are ≤ 1, else pixels of the image."""
    x1, y1, x2, y2 = (float(v) for v in nums)
    if max(x1, y1, x2, y2) > 1.0:
        if not (width and height):
            return None
        x1, y1, x2, y2 = to_normalized([x1, y1, x2, y2], width, height)
    return [x1, y1, x2, y2] if x2 > x1 and y2 > y1 else None


def predicted_box(text: str, width: int = 0, height: int = 0) -> list[float] | None:
    """REC: the final step's region (the enclosing box if it has several), else a box in the answer."""
    answer, steps = answer_text(text)
    if steps and steps[-1].regions:
        return enclosing_box([list(r.bbox) for r in steps[-1].regions])
    m = _BOX.search(answer)
    return _box_from_numbers([float(v) for v in m.groups()], width, height) if m else None


def _labelled_objects(answer: str) -> list[dict]:
    """Objects with a `bbox_2d` (or `bbox`) and a `label` from the answer, JSON or not."""
    body = re.sub(r"^```(?:json)?|```$", "", answer.strip(), flags=re.M).strip()
    try:
        data = json.loads(body)
        items = data if isinstance(data, list) else [data]
        return [o for o in items if isinstance(o, dict)]
    except json.JSONDecodeError:
        out = []
        for m in re.finditer(r"\{[^{}]*\}", body):
            try:
                out.append(json.loads(m.group(0)))
            except json.JSONDecodeError:
                continue
        return out


OVD_SCORE = 1.0  # VLM-R1's OVDEval evaluation gives every predicted box confidence 1.0


def predicted_detections(text: str, labels: Sequence[str], width: int, height: int) -> tuple[list[dict], int]:
    """OVD: labelled boxes from the answer (a JSON list, in code fences or not; `None` for no
    object), as normalized boxes, and how many were unreadable or named a label not asked for.

    Every box gets score 1.0, as VLM-R1's OVDEval evaluation gives them (a model states no
    confidence); among equal scores COCO AP keeps the listing order.
    """
    answer, _ = answer_text(text)
    known = {lab.strip().lower(): lab for lab in labels}
    objects = [] if answer.strip().strip(".").lower() == "none" else _labelled_objects(answer)
    out, skipped = [], 0
    for obj in objects:
        label = known.get(str(obj.get("label", "")).strip().lower())
        nums = obj.get("bbox_2d", obj.get("bbox"))
        box = None
        if label is not None and isinstance(nums, list) and len(nums) == 4:
            try:
                box = _box_from_numbers(nums, width, height)
            except (TypeError, ValueError):
                box = None
        if box is None:
            skipped += 1
            continue
        out.append({"label": label, "box": [round(v, 6) for v in box], "score": OVD_SCORE})
    return out, skipped


# ---------------------------------------------------------------- per record


def score_rec(record: EvalRecord, text: str) -> dict:
    box = predicted_box(text, record.width, record.height)
    iou = box_iou(box, record.gt_boxes[0]) if box is not None and record.gt_boxes else 0.0
    return {"iou": iou, "hit": iou >= REC_THRESHOLD, "box": box}


def score_ovd(record: EvalRecord, text: str) -> dict:
    """The detections; `correct` (for browsing, not a metric): every object found with its label
    at IoU ≥ 0.5 and nothing else claimed."""
    dets, skipped = predicted_detections(text, record.labels, record.width, record.height)
    unmatched = list(record.objects)
    spurious = skipped
    for d in dets:
        hit = next((o for o in unmatched if o[0] == d["label"] and box_iou(d["box"], o[1]) >= REC_THRESHOLD), None)
        if hit is None:
            spurious += 1
        else:
            unmatched.remove(hit)
    return {"detections": dets, "skipped": skipped, "correct": not unmatched and not spurious}


def _choice_or_judge(record: EvalRecord, answer: str, scorer: Scorer) -> dict:
    if record.choices:
        picked = extract_choice(answer, record.choices, by_letter=not record.meta.get("options_as_text"))
        truth = record.choices.index(record.answer) if record.answer in record.choices else None
        return {"choice": picked, "score": float(picked is not None and picked == truth)}
    return {"score": min(max(float(scorer(record.question, record.answer or "", answer)), 0.0), 1.0) if answer else 0.0}


def score_vqa(record: EvalRecord, text: str, scorer: Scorer) -> dict:
    """`correct` (for browsing): a judge score of at least 0.5."""
    answer, _ = answer_text(text)
    out = _choice_or_judge(record, answer, scorer)
    return {"answer": answer, **out, "correct": out["score"] >= 0.5}


def score_mc(record: EvalRecord, text: str, scorer: Scorer) -> dict:
    """Choice questions; questions without options fall back to an exact match of the
    rule-based scorer (yes/no, numbers, normalized text)."""
    answer, _ = answer_text(text)
    out = _choice_or_judge(record, answer, lambda q, gt, p: float(rule_based_score(q, gt, p) == 1.0))
    return {"answer": answer, **out, "correct": out["score"] == 1.0}


_INTEGER = re.compile(r"-?\d+")


def score_spatialbench(record: EvalRecord, text: str) -> dict:
    """SpatialBot's rule on the answer: right when the ground truth is a substring of it (case
    as written). Counting reads the answer's first integer (none: 0, i.e. a relative error of 1)."""
    answer, _ = answer_text(text)
    out = {"answer": answer, "hit": (record.answer or "") in answer if answer else False}
    if record.category == "counting":
        m = _INTEGER.search(answer or "")
        count, truth = (int(m.group()) if m else 0), int(record.answer or 0)
        out.update(count=count, relative_error=abs(count - truth) / truth if truth else float(count != 0))
        out["correct"] = count == truth
    else:
        out["correct"] = out["hit"]
    return out


def score_synth(record: EvalRecord, text: str, scorer: Scorer) -> dict:
    """Accuracy, format, final-step HIoU and depth check, and the GRPO-SIF total reward the
    chain would earn on a sample's first visit (format + judge score + grounding + depth)."""
    answer, steps = answer_text(text)
    answer_score = min(max(float(scorer(record.question, record.answer or "", answer)), 0.0), 1.0) if answer else 0.0
    format_ok = not validate_chain(text or "")
    grounding = bbox_reward([text or ""], [record.gt_boxes])[0]
    depth = depth_reward([text or ""], [record.depth], [record.depth_encoding or "auto"])[0] if record.depth else None
    return {
        "answer": answer,
        "correct": bool(answer) and rule_based_score(record.question, record.answer or "", answer) == 1.0,
        "format_ok": format_ok,
        "hiou": hiou([list(r.bbox) for r in steps[-1].regions], record.gt_boxes) if steps else 0.0,
        "depth_ok": None if depth is None else depth == 1.0,
        "answer_score": answer_score,
        "bbox_reward": grounding,
        "total_reward": float(format_ok) + answer_score + grounding + (depth or 0.0),
    }


def score_record(record: EvalRecord, text: str, scorer: Scorer = rule_based_score) -> dict:
    """The scores of one prediction, with `correct` (did it get this record right: what the
    workbench lists as wrong); never raises on bad model output."""
    if record.kind == "rec":
        out = score_rec(record, text)
        return {**out, "correct": out["hit"]}
    if record.kind == "ovd":
        return score_ovd(record, text)
    if record.dataset == "spatialbench":
        return score_spatialbench(record, text)
    return {"vqa": score_vqa, "mc": score_mc, "synth": score_synth}[record.kind](record, text, scorer)


# ---------------------------------------------------------------- aggregates


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


def _grouped(records, scores, metric: Callable[[list[dict]], dict]) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for rec, s in zip(records, scores):
        groups[rec.category or rec.dataset].append(s)
    out = {"overall": metric([s for g in groups.values() for s in g])}
    if len(groups) > 1 or next(iter(groups), "overall") != "overall":
        out.update({k: metric(v) for k, v in sorted(groups.items())})
    return out


def _rec_metric(scores: list[dict]) -> dict:
    return {"n": len(scores), "acc@0.5": _mean(s["hit"] for s in scores), "miou": _mean(s["iou"] for s in scores)}


def _accuracy(scores: list[dict]) -> dict:
    return {"n": len(scores), "accuracy": _mean(s["score"] for s in scores)}


def _judge_mean(scores: list[dict]) -> dict:
    return {"n": len(scores), "score": _mean(s["score"] for s in scores)}


def _synth_metric(scores: list[dict]) -> dict:
    depth = [s["depth_ok"] for s in scores if s["depth_ok"] is not None]
    return {
        "n": len(scores),
        "accuracy": _mean(s["correct"] for s in scores),
        "final_hiou": _mean(s["hiou"] for s in scores),
        "depth_consistency": _mean(depth) if depth else None,
        "format_validity": _mean(s["format_ok"] for s in scores),
        "total_reward": _mean(s["total_reward"] for s in scores),
    }


def _ovd_metric(records: list[EvalRecord], scores: list[dict]) -> dict:
    cats: dict[str, int] = {}
    images: dict[tuple, int] = {}  # sub-tasks number their images independently
    gts, dets = [], []
    for i, (rec, s) in enumerate(zip(records, scores)):
        image_id = images.setdefault((rec.category, rec.meta.get("image_id", i)), len(images))
        for label, box in rec.objects:
            gts.append(GroundTruth(image_id, cats.setdefault(label, len(cats)), _xywh(box, rec)))
        for d in s["detections"]:
            dets.append(Detection(image_id, cats.setdefault(d["label"], len(cats)), _xywh(d["box"], rec), d["score"]))
    out = nms_ap(gts, dets)
    out["n"] = len(records)
    out["unreadable"] = sum(s["skipped"] for s in scores)
    return out


def _xywh(box, rec: EvalRecord) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    w, h = rec.width or 1, rec.height or 1
    return (x1 * w, y1 * h, (x2 - x1) * w, (y2 - y1) * h)


# ---------------------------------------------------------------- SpatialBench (SpatialBot's script)


def _pairs(records: list[EvalRecord], scores: list[dict]) -> list[list[dict]]:
    groups: dict[int, list[dict]] = defaultdict(list)
    for rec, s in zip(records, scores):
        groups[rec.meta.get("pair", rec.meta.get("position", 0) // 2)].append(s)
    return [groups[k] for k in sorted(groups)]


def _spatialbench_category(category: str, records: list[EvalRecord], scores: list[dict]) -> dict:
    n = len(scores)
    if category == "counting":
        errors = [s["relative_error"] for s in scores]
        return {
            "n": n,
            "accuracy": 1.0 - _mean(errors),
            "exact": _mean(s["correct"] for s in scores),
            "mean_relative_error": _mean(errors),
        }
    if category in ("existence", "size", "reach"):
        pairs = _pairs(records, scores)
        # A question whose partner is missing forms a pair that is not both right.
        both = sum(len(p) == 2 and all(s["hit"] for s in p) for p in pairs)
        hits = sum(s["hit"] for s in scores)
        out = {"n": n, "pairs": len(pairs), "acc": hits / n if n else float("nan")}
        out["acc+"] = both / len(pairs) if pairs else float("nan")
        if category == "existence":
            out["accuracy"] = out["acc+"]
        else:  # SpatialBot prints (acc + acc+) over 3 points a pair
            out["accuracy"] = (hits + both) / (3 * len(pairs)) if pairs else float("nan")
        return out
    return {"n": n, "accuracy": _mean(s["hit"] for s in scores)}


def spatialbench_metrics(records: list[EvalRecord], scores: list[dict]) -> dict:
    """Per category as SpatialBot's eval_spatialbench.py scores it; overall: the categories' mean."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[rec.category].append(i)
    out = {
        cat: _spatialbench_category(cat, [records[i] for i in idx], [scores[i] for i in idx])
        for cat, idx in sorted(groups.items())
    }
    overall = {"n": len(records), "accuracy": _mean(m["accuracy"] for m in out.values()), "categories": len(out)}
    return {"overall": overall, **out}


# ---------------------------------------------------------------- MMBench CircularEval


def _circular(records: list[EvalRecord], scores: list[dict]) -> dict:
    groups: dict[str, list[tuple[EvalRecord, dict]]] = defaultdict(list)
    for rec, s in zip(records, scores):
        groups[rec.meta.get("group", rec.id)].append((rec, s))
    circular = [all(s["correct"] for _, s in g) for g in groups.values()]
    vanilla = [s["correct"] for g in groups.values() for rec, s in g if rec.meta.get("shift", 0) == 0]
    return {
        "n": len(groups),
        "accuracy": _mean(circular),
        "vanilla_accuracy": _mean(vanilla),
        "passes": len(records),
    }


def circular_metrics(records: list[EvalRecord], scores: list[dict]) -> dict:
    """MMBench CircularEval: a question counts only when every circular pass is right; `n` counts
    questions. Also the vanilla accuracy (the unshifted pass alone)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[rec.category].append(i)
    out = {"overall": _circular(records, scores)}
    if len(groups) > 1:
        out.update(
            {c: _circular([records[i] for i in idx], [scores[i] for i in idx]) for c, idx in sorted(groups.items())}
        )
    return out


def benchmark_metrics(benchmark: str, kind: str, records: list[EvalRecord], scores: list[dict]) -> dict:
    """The run's metrics as the benchmark's protocol (`records.PROTOCOLS`) reports them."""
    if benchmark == "spatialbench":
        return spatialbench_metrics(records, scores)
    if benchmark == "mmbench":
        return circular_metrics(records, scores)
    return aggregate(kind, records, scores)


def aggregate(kind: str, records: list[EvalRecord], scores: list[dict]) -> dict:
    """The run's metrics: per category (REC split, sub-task, question kind) and overall."""
    if kind == "ovd":
        groups: dict[str, list[int]] = defaultdict(list)
        for i, rec in enumerate(records):
            groups[rec.category or rec.dataset].append(i)
        out = {"overall": _ovd_metric(records, scores)}
        if len(groups) > 1:
            out.update(
                {
                    k: _ovd_metric([records[i] for i in idx], [scores[i] for i in idx])
                    for k, idx in sorted(groups.items())
                }
            )
        return out
    metric = {"rec": _rec_metric, "vqa": _judge_mean, "mc": _accuracy, "synth": _synth_metric}[kind]
    out = _grouped(records, scores, metric)
    if kind == "vqa" and len(out) > 2:  # the paper's VisCoT-s figure is the mean over sub-tasks
        out["overall"]["mean_of_subtasks"] = _mean(v["score"] for k, v in out.items() if k != "overall")
    return out
