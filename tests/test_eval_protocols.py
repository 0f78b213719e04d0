"""The papers' protocols, each against numbers worked out by hand: SpatialBot's SpatialBench
scores, MMBench's CircularEval, SAT's options as text, OVDEval NMS-AP as VLM-R1 runs it, and
strict JSON reports."""

from __future__ import annotations

import json

import pytest

from evaluation.adapters import OVD_PROMPT, load_benchmark
from evaluation.metrics import aggregate, benchmark_metrics, predicted_detections, score_record
from evaluation.records import PROTOCOLS, EvalRecord
from evaluation.report import write_report
from tests.support.evaluation import mmbench_tsv, png_base64


def _answer(text: str) -> str:
    return f"<answer>{text}</answer>"


def _scored(benchmark: str, records, answers: dict[str, str]):
    scores = [score_record(r, _answer(answers[r.id])) for r in records]
    return benchmark_metrics(benchmark, records[0].kind, records, scores), scores


# ---------------------------------------------------------------- SpatialBench (SpatialBot)


def _spatialbench_folder(tmp_path):
    folder = tmp_path / "spatialbench"
    folder.mkdir()
    files = {
        "positional": ["left", "right", "above", "Yes"],
        "existence": ["Yes", "No", "Yes", "No", "Yes", "No"],
        "size": ["Yes", "No", "Yes", "No"],
        "counting": ["3", "5", "2"],
    }
    for category, answers in files.items():
        rows = [
            {"id": f"{category}_{i}", "image": f"img/{category}_{i}.jpg", "question": f"q{i}?", "answer": a}
            for i, a in enumerate(answers)
        ]
        (folder / f"{category}.json").write_text(json.dumps(rows))
    return folder


def test_spatialbench_scores_as_spatialbot(tmp_path):
    loaded = load_benchmark("spatialbench", _spatialbench_folder(tmp_path))
    assert not loaded.problems and len(loaded.records) == 17
    answers = {
        # positional: the ground truth must be a substring of the answer, case as written
        "spatialbench-positional-positional_0": "It is on the left",  # hit
        "spatialbench-positional-positional_1": "left",  # miss
        "spatialbench-positional-positional_2": "above the table",  # hit
        "spatialbench-positional-positional_3": "yes",  # miss: "Yes" is not in "yes"
        # existence: pairs (0,1) (2,3) (4,5) count only when both are right
        "spatialbench-existence-existence_0": "Yes",
        "spatialbench-existence-existence_1": "No",  # pair 0 right
        "spatialbench-existence-existence_2": "Yes",
        "spatialbench-existence-existence_3": "Yes",  # pair 1 wrong
        "spatialbench-existence-existence_4": "No",
        "spatialbench-existence-existence_5": "No",  # pair 2 wrong
        # size: 3 of 4 questions right, 1 of 2 pairs both right
        "spatialbench-size-size_0": "Yes",
        "spatialbench-size-size_1": "No",
        "spatialbench-size-size_2": "Yes",
        "spatialbench-size-size_3": "Yes",
        # counting: counts 3, 4, 0 (unreadable) against 3, 5, 2: relative errors 0, 0.2, 1
        "spatialbench-counting-counting_0": "3",
        "spatialbench-counting-counting_1": "There are 4 cups.",
        "spatialbench-counting-counting_2": "none",
    }
    m, _ = _scored("spatialbench", loaded.records, answers)
    assert m["positional"]["accuracy"] == pytest.approx(2 / 4)
    assert m["existence"]["accuracy"] == pytest.approx(1 / 3) and m["existence"]["acc"] == pytest.approx(4 / 6)
    assert m["existence"]["pairs"] == 3
    assert m["size"]["acc"] == pytest.approx(3 / 4) and m["size"]["acc+"] == pytest.approx(1 / 2)
    assert m["size"]["accuracy"] == pytest.approx((3 + 1) / (3 * 2))  # SpatialBot's printed score
    assert m["counting"]["accuracy"] == pytest.approx(1 - (0 + 0.2 + 1.0) / 3)
    assert m["counting"]["exact"] == pytest.approx(1 / 3)
    assert m["overall"]["accuracy"] == pytest.approx((0.5 + 1 / 3 + 4 / 6 + 0.6) / 4)  # mean of categories
    assert m["overall"]["categories"] == 4


def test_spatialbench_partner_missing_from_a_pair_leaves_the_pair_wrong(tmp_path):
    rows = [{"id": f"e{i}", "image": "a.jpg", "question": "q", "answer": a} for i, a in enumerate(["Yes", "No", "No"])]
    (tmp_path / "existence.json").write_text(json.dumps(rows))
    records = load_benchmark("spatialbench", tmp_path / "existence.json").records
    m, _ = _scored("spatialbench", records, {r.id: r.answer for r in records})
    assert m["existence"]["pairs"] == 2 and m["existence"]["accuracy"] == pytest.approx(1 / 2)


# ---------------------------------------------------------------- MMBench CircularEval


def test_mmbench_circular_passes_and_prompt(tmp_path):
    data = mmbench_tsv(
        tmp_path / "mmbench_dev.tsv",
        [
            dict(index=1, question="What colour?", hint="A red square.", A="blue", B="red", C="green", answer="B",
                 category="color", **{"l2-category": "perception"}, image=png_base64()),
            dict(index=2, question="Is it square?", hint="nan", A="yes", B="no", answer="A",
                 category="shape", **{"l2-category": "reasoning"}, image="1"),  # the picture of row 1
        ],
    )  # fmt: skip
    loaded = load_benchmark("mmbench", data)
    assert not loaded.problems
    assert [r.id for r in loaded.records] == [
        "mmbench-1-c0",
        "mmbench-1-c1",
        "mmbench-1-c2",
        "mmbench-2-c0",
        "mmbench-2-c1",
    ]
    second = loaded.records[1]
    assert second.choices == ["red", "green", "blue"] and second.answer == "red"
    assert second.question == (
        "Hint: A red square.\nQuestion: What colour?\nOptions:\nA. red\nB. green\nC. blue\n"
        "Please select the correct answer from the options above."
    )
    assert loaded.records[3].question.startswith("Question: Is it square?")  # no "nan" hint
    assert loaded.records[3].image == loaded.records[0].image and not loaded.records[0].image_missing

    answers = {
        "mmbench-1-c0": "B",  # red: right
        "mmbench-1-c1": "A",  # red is now A: right
        "mmbench-1-c2": "A",  # red is now C: wrong, so question 1 fails CircularEval
        "mmbench-2-c0": "A",  # yes: right
        "mmbench-2-c1": "(B) yes",  # yes is now B: right
    }
    m, scores = _scored("mmbench", loaded.records, answers)
    assert [s["correct"] for s in scores] == [True, True, False, True, True]
    assert m["overall"] == {"n": 2, "accuracy": 0.5, "vanilla_accuracy": 1.0, "passes": 5}
    assert m["perception"]["accuracy"] == 0.0 and m["reasoning"]["accuracy"] == 1.0


def test_mmbench_tsv_with_its_own_circular_copies_is_used_as_given(tmp_path):
    row = dict(question="Which?", category="c", **{"l2-category": "l2"}, image=png_base64())
    data = mmbench_tsv(
        tmp_path / "mm.tsv",
        [
            {**row, "index": 7, "A": "x", "B": "y", "answer": "A"},
            {**row, "index": 1_000_007, "A": "y", "B": "x", "answer": "B", "image": "7"},
        ],
    )
    records = load_benchmark("mmbench", data).records
    assert [r.id for r in records] == ["mmbench-7-c0", "mmbench-7-c1"]
    assert records[1].choices == ["y", "x"] and records[1].answer == "x"
    m, _ = _scored("mmbench", records, {"mmbench-7-c0": "A", "mmbench-7-c1": "A"})
    assert m["overall"]["accuracy"] == 0.0 and m["overall"]["vanilla_accuracy"] == 1.0


# ---------------------------------------------------------------- SAT: options as text


def test_sat_answers_are_read_by_option_text_only(tmp_path):
    rows = [
        {
            "id": i,
            "image": "a.png",
            "question": "Which way did the camera turn?",
            "answers": ["left", "right"],
            "correct_answer": "right",
            "question_type": "ego_movement",
        }
        for i in range(4)
    ]
    path = tmp_path / "sat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    records = load_benchmark("sat", path).records
    answers = {
        "sat-0": "It turned right.",  # names the right option
        "sat-1": "B",  # letters are not part of SAT's format
        "sat-2": "left or right",  # both options
        "sat-3": "left",
    }
    m, scores = _scored("sat", records, answers)
    assert [s["correct"] for s in scores] == [True, False, False, False]
    assert m["overall"]["accuracy"] == pytest.approx(1 / 4)
    assert "Choose between the following options: left, or right." in records[0].question


# ---------------------------------------------------------------- OVDEval as VLM-R1 runs it


def _ovd_record():
    return EvalRecord(
        id="negation-0",
        kind="ovd",
        dataset="ovdeval",
        category="negation",
        question=OVD_PROMPT.format(labels="red mug; blue mug"),
        width=100,
        height=100,
        labels=["red mug", "blue mug"],
        objects=[("red mug", [0.1, 0.1, 0.5, 0.5])],
        gt_boxes=[[0.1, 0.1, 0.5, 0.5]],
        meta={"image_id": 0},
    )


def test_ovd_prompt_none_answer_and_nms_ap_with_equal_scores():
    record = _ovd_record()
    assert record.question.startswith(
        "Please carefully check the image and detect the following objects: red mug; blue mug."
    )
    assert predicted_detections(_answer("None"), record.labels, 100, 100) == ([], 0)

    red = {"bbox_2d": [0.1, 0.1, 0.5, 0.5], "label": "red mug"}
    blue = {"bbox_2d": [10, 10, 50, 50], "label": "blue mug"}  # the same box, in pixels, for the hard negative
    # Every box scores 1.0; OVDEval's NMS keeps, among equal scores, the box listed last.
    last_is_negative = score_record(record, _answer(json.dumps([red, blue])))
    last_is_positive = score_record(record, _answer(json.dumps([blue, red])))
    m = aggregate("ovd", [record], [last_is_negative])["overall"]
    assert (m["ap"], m["nms_ap"], m["after_nms"]) == (pytest.approx(1.0), pytest.approx(0.0), 1)
    m = aggregate("ovd", [record], [last_is_positive])["overall"]
    assert (m["ap"], m["nms_ap"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert not last_is_positive["correct"]  # a box claimed for the hard negative is a wrong answer to browse
    assert score_record(record, _answer(json.dumps([red])))["correct"]


# ---------------------------------------------------------------- every protocol names its source; strict JSON


def test_every_benchmark_names_its_protocol():
    from evaluation.records import BENCHMARK_KINDS

    assert set(PROTOCOLS) == set(BENCHMARK_KINDS)
    assert "eval_spatialbench.py" in PROTOCOLS["spatialbench"] and "CircularEval" in PROTOCOLS["mmbench"]
    assert "eval.py" in PROTOCOLS["ovd"] and "Appendix A.3" in PROTOCOLS["sat"]


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_reports_are_strict_json(tmp_path):
    config = {"benchmark": "cvbench", "data": "x"}
    metrics = {"overall": {"n": 0, "accuracy": float("nan")}, "a": {"n": 1, "accuracy": float("inf")}}
    _, js = write_report(
        tmp_path, "r1", config, {"records": 1}, metrics, [{"id": "x", "iou": float("nan")}], [], [], []
    )
    report = _strict(js.read_text())
    assert report["metrics"]["overall"]["accuracy"] is None and report["records"][0]["iou"] is None
    assert report["protocol"] == PROTOCOLS["cvbench"]
