"""Evaluation metrics against independent references: pycocotools for AP, hand-computed REC
cases, a table of tricky multiple-choice answers."""

import contextlib
import io
import json

import numpy as np
import pytest

from evaluation.choices import extract_choice
from evaluation.detection import Detection, GroundTruth, coco_ap, nms_ap, ovdeval_nms
from evaluation.metrics import aggregate, predicted_box, predicted_detections, score_record
from evaluation.records import EvalRecord

# ---------------------------------------------------------------- AP vs pycocotools


def _pycocotools_ap(gts, dets, images):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = sorted({g.category_id for g in gts} | {d.category_id for d in dets})
    gt_json = {
        "images": [{"id": i, "width": 1000, "height": 1000} for i in images],
        "categories": [{"id": c, "name": str(c)} for c in cats],
        "annotations": [
            {
                "id": k + 1,
                "image_id": g.image_id,
                "category_id": g.category_id,
                "bbox": list(g.bbox),
                "area": g.bbox[2] * g.bbox[3],
                "iscrowd": 0,
            }
            for k, g in enumerate(gts)
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt_json))
        coco.createIndex()
        res = coco.loadRes(
            [
                {"image_id": d.image_id, "category_id": d.category_id, "bbox": list(d.bbox), "score": d.score}
                for d in dets
            ]
        )
        ev = COCOeval(coco, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0], ev.stats[1]


def _random_case(seed, tied_scores=False):
    rng = np.random.default_rng(seed)
    images = list(range(1, 7))
    gts, dets = [], []
    for img in images:
        for _ in range(rng.integers(1, 6)):
            x, y = rng.uniform(0, 700, 2)
            w, h = rng.uniform(20, 300, 2)
            cat = int(rng.integers(1, 4))
            gts.append(GroundTruth(img, cat, (x, y, w, h)))
            for _ in range(rng.integers(0, 3)):  # jittered true positives, sometimes with the wrong label
                jit = rng.normal(0, 0.15, 4) * [w, h, w, h]
                score = round(float(rng.uniform()), 1) if tied_scores else float(rng.uniform())
                dets.append(
                    Detection(
                        img,
                        cat if rng.uniform() < 0.8 else int(rng.integers(1, 4)),
                        (x + jit[0], y + jit[1], max(w + jit[2], 5), max(h + jit[3], 5)),
                        score,
                    )
                )
        for _ in range(rng.integers(0, 4)):  # pure false positives
            score = round(float(rng.uniform()), 1) if tied_scores else float(rng.uniform())
            dets.append(
                Detection(
                    img, int(rng.integers(1, 4)), tuple(rng.uniform(0, 500, 2)) + tuple(rng.uniform(10, 200, 2)), score
                )
            )
    return gts, dets, images


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tied", [False, True])
def test_coco_ap_matches_pycocotools(seed, tied):
    gts, dets, images = _random_case(seed, tied)
    ours = coco_ap(gts, dets)
    ref_ap, ref_ap50 = _pycocotools_ap(gts, dets, images)
    assert ours["ap"] == pytest.approx(ref_ap, abs=1e-12)
    assert ours["ap50"] == pytest.approx(ref_ap50, abs=1e-12)


def test_nms_ap_matches_pycocotools_after_ovdeval_suppression():
    gts, dets, images = _random_case(11)
    kept = ovdeval_nms(gts, dets)
    assert len(kept) < len(dets)
    assert nms_ap(gts, dets)["nms_ap"] == pytest.approx(_pycocotools_ap(gts, kept, images)[0], abs=1e-12)


def test_same_box_for_positive_and_hard_negative_is_penalized():
    gts = [GroundTruth(1, 0, (10, 10, 100, 100))]
    # The model answers the same box for the positive label and for its hard negative.
    both = [Detection(1, 0, (10, 10, 100, 100), 0.9), Detection(1, 1, (10, 10, 100, 100), 0.95)]
    out = nms_ap(gts, both)
    assert out["ap"] == pytest.approx(1.0)  # per-label AP is blind to the hard negative
    assert out["nms_ap"] == pytest.approx(0.0)  # the negative wins the suppression: no true positive left
    right = nms_ap(gts, [Detection(1, 0, (10, 10, 100, 100), 0.95), Detection(1, 1, (10, 10, 100, 100), 0.9)])
    assert right["nms_ap"] == pytest.approx(1.0)


# ---------------------------------------------------------------- REC


def _rec(gt, width=200, height=100):
    return EvalRecord(
        id="r",
        kind="rec",
        dataset="refcoco",
        question="q",
        width=width,
        height=height,
        gt_boxes=[gt],
        category="refcoco/val",
    )


def _chain(*steps, answer="done"):
    areas = "".join(
        f"<area>{json.dumps([{'bbox_2d': b, 'depth': 0.5} for b in boxes])}</area><text>look</text>" for boxes in steps
    )
    return f"<think>{areas}</think><answer>{answer}</answer>"


def test_rec_hand_computed_cases():
    gt = [0.0, 0.0, 0.5, 0.5]
    cases = [
        (_chain([[0, 0, 1, 1]], [[0.0, 0.0, 0.5, 0.5]]), 1.0),  # exact
        (_chain([[0.0, 0.0, 0.5, 0.25]]), 0.5),  # half the area: IoU exactly 0.5 counts
        (_chain([[0.25, 0.0, 0.75, 0.5]]), 1 / 3),  # shifted by half its width
        (_chain([[0.0, 0.0, 0.25, 0.5], [0.25, 0.0, 0.5, 0.5]]), 1.0),  # two boxes: their enclosing box
        ("<answer>[0, 0, 100, 50]</answer>", 1.0),  # pixel box in the answer (200 x 100 image)
        ("<answer>[0.0, 0.0, 0.5, 0.4]</answer>", 0.8),  # normalized box in the answer
        ("<answer>somewhere on the left</answer>", 0.0),  # no box
    ]
    records = [_rec(gt) for _ in cases]
    scores = [score_record(r, text) for r, (text, _) in zip(records, cases)]
    for s, (_, iou) in zip(scores, cases):
        assert s["iou"] == pytest.approx(iou)
    metrics = aggregate("rec", records, scores)["overall"]
    assert metrics["acc@0.5"] == pytest.approx(5 / 7)
    assert metrics["miou"] == pytest.approx((1 + 0.5 + 1 / 3 + 1 + 1 + 0.8 + 0) / 7)


def test_rec_final_step_wins_over_earlier_steps():
    assert predicted_box(_chain([[0.5, 0.5, 1, 1]], [[0, 0, 0.2, 0.2]])) == [0, 0, 0.2, 0.2]


# ---------------------------------------------------------------- choices

CHOICES = ["rotated left", "rotated right", "left"]
TRICKY = [
    ("(B)", 1),
    ("B.", 1),
    ("B", 1),
    ("b)", 1),
    ("The answer is b", 1),
    ("Answer: C", 2),
    ("The correct option is (a).", 0),
    ("rotated right", 1),
    ("It was rotated right.", 1),
    ("left", 2),  # "left" alone is option C, not part of "rotated left"
    ("(A) rotated left", 0),
    ("A. rotated left", 0),
    ("A or B", None),
    ("A and C", None),
    ("B, or maybe A", None),
    ("rotated left or rotated right", None),
    ("I cannot tell", None),
    ("", None),
    ("E", None),
    ("The answer is a rotated view", None),  # an article, not option A
]


@pytest.mark.parametrize("answer,expected", TRICKY)
def test_choice_extraction_table(answer, expected):
    assert extract_choice(answer, CHOICES) == expected


def test_article_a_is_not_option_a():
    assert extract_choice("A red car", ["red car", "blue car"]) == 0  # option text, not the letter
    assert extract_choice("A blue car", ["red car", "blue car"]) == 1


def test_mc_accuracy_per_category():
    recs = [
        EvalRecord(
            id=str(i), kind="mc", dataset="cvbench", question="q", choices=["yes", "no"], answer="yes", category=cat
        )
        for i, cat in enumerate(["2D Count", "2D Count", "3D Depth"])
    ]
    scores = [score_record(r, f"<answer>{a}</answer>") for r, a in zip(recs, ["(A)", "B", "yes"])]
    m = aggregate("mc", recs, scores)
    assert m["2D Count"]["accuracy"] == 0.5 and m["3D Depth"]["accuracy"] == 1.0
    assert m["overall"]["accuracy"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- OVD parsing and VQA


def test_ovd_detections_in_listing_order_all_scored_one():
    """VLM-R1's OVDEval protocol: every box gets confidence 1.0, listing order kept."""
    text = (
        '<answer>```json\n[{"bbox_2d": [10, 10, 110, 60], "label": "Red Mug"}, '
        '{"bbox_2d": [0.5, 0.5, 0.9, 0.9], "label": "blue mug"}, {"bbox_2d": [1, 2], "label": "red mug"}, '
        '{"bbox_2d": [0, 0, 5, 5], "label": "cat"}]\n```</answer>'
    )
    dets, skipped = predicted_detections(text, ["red mug", "blue mug"], 200, 100)
    assert [d["label"] for d in dets] == ["red mug", "blue mug"]
    assert dets[0]["box"] == pytest.approx([0.05, 0.1, 0.55, 0.6])
    assert [d["score"] for d in dets] == [1.0, 1.0]
    assert skipped == 2  # a 2-number box and a label that was not asked for


def test_vqa_mean_per_subtask_with_rule_based_scorer():
    recs = [
        EvalRecord(id=str(i), kind="vqa", dataset="viscot", question="q", answer=a, category=c)
        for i, (a, c) in enumerate([("red", "gqa"), ("3", "gqa"), ("yes", "vsr")])
    ]
    scores = [
        score_record(r, t) for r, t in zip(recs, ["<answer>red</answer>", "<answer>four</answer>", "Yes, it is."])
    ]
    m = aggregate("vqa", recs, scores)
    assert m["gqa"]["score"] == 0.5 and m["vsr"]["score"] == 1.0
    assert m["overall"]["mean_of_subtasks"] == 0.75
