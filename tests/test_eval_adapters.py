"""Benchmark adapters: each public release format becomes EvalRecords; bad records are reported
by name and field, and loading continues."""

import json

import pytest

from evaluation.adapters import OVD_PROMPT, REC_PROMPT, load_benchmark
from evaluation.report import compare_runs
from tests.support.shared_data import REC_SAMPLE


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def _check_rec_file(path: str, n: int) -> None:
    loaded = load_benchmark("rec", path, "/nonexistent")
    assert len(loaded.records) == n and not loaded.problems
    r = loaded.records[0]
    assert r.question == REC_PROMPT.format(expression="bowl behind the others can only see part")
    assert r.category == "refcoco/validation" and r.image == "/nonexistent/COCO_train2014_000000580957.jpg"
    assert r.gt_boxes[0] == pytest.approx([468.3 / 640, 0.91 / 428, 1.0, 117.03 / 428])
    assert r.image_missing
    assert len({x.id for x in loaded.records}) == n


def test_rec_real_file(rec_full):
    _check_rec_file(rec_full, 10834)


def test_rec_shipped_records():
    _check_rec_file(REC_SAMPLE, 300)


def test_rec_bad_records_are_named_and_skipped(tmp_path):
    good = {"img_path": "a.jpg", "expression": "dog", "bbox": [0, 0, 10, 10], "width": 20, "height": 20, "sent_id": 1}
    path = _jsonl(
        tmp_path / "rec.jsonl",
        [good, {**good, "sent_id": 2, "bbox": None}, "{not json", {**good, "sent_id": 3, "bbox": [5, 5, 1, 1]}],
    )
    loaded = load_benchmark("rec", path)
    assert [r.id for r in loaded.records] == ["refcoco-val-1"]
    assert len(loaded.problems) == 3
    assert "rec.jsonl:2" in loaded.problems[0] and "'bbox'" in loaded.problems[0]
    assert "rec.jsonl:3" in loaded.problems[1] and "not JSON" in loaded.problems[1]
    assert "x1 < x2" in loaded.problems[2]


def test_ovdeval_coco_json(tmp_path):
    data = {
        "categories": [{"id": 0, "name": "computer without screen on"}, {"id": 1, "name": "computer with screen on"}],
        "annotations": [
            {"id": 0, "bbox": [111, 117, 99, 75], "category_id": 0, "image_id": 0, "iscrowd": 0, "area": 7425}
        ],
        "images": [
            {
                "file_name": "x.jpg",
                "id": 0,
                "height": 254,
                "width": 340,
                "text": ["computer without screen on"],
                "neg_text": ["computer with screen on"],
            },
            {"file_name": "y.jpg", "id": 1, "width": 10, "text": ["a"]},
        ],
    }
    (tmp_path / "negation.json").write_text(json.dumps(data))
    loaded = load_benchmark("ovd", tmp_path / "negation.json")
    (r,) = loaded.records
    assert r.id == "negation-0" and r.category == "negation"
    assert r.labels == ["computer without screen on", "computer with screen on"]
    assert r.objects[0][0] == "computer without screen on"
    assert r.objects[0][1] == pytest.approx([111 / 340, 117 / 254, 210 / 340, 192 / 254])
    assert r.question == OVD_PROMPT.format(labels="computer without screen on; computer with screen on")
    assert "images[1]" in loaded.problems[0] and "'height'" in loaded.problems[0]


def test_vstar_with_annotation_file(tmp_path):
    (tmp_path / "direct_attributes").mkdir()
    (tmp_path / "direct_attributes" / "sa_1.json").write_text(
        json.dumps({"bbox": [[564, 142, 155, 157]], "size": [2000, 1500]})
    )
    text = "What is the material of the glove?\n(A) rubber\n(B) cotton\n(C) leather\n(D) plastic\nAnswer with the option's letter from the given choices directly."
    path = _jsonl(
        tmp_path / "test_questions.jsonl",
        [
            {
                "image": "direct_attributes/sa_1.jpg",
                "text": text,
                "category": "direct_attributes",
                "question_id": 0,
                "label": "C",
            },
            {
                "image": "direct_attributes/sa_2.jpg",
                "text": text,
                "category": "direct_attributes",
                "question_id": 1,
                "label": "F",
            },
        ],
    )
    loaded = load_benchmark("vstar", path)
    (r,) = loaded.records
    assert r.choices == ["rubber", "cotton", "leather", "plastic"] and r.answer == "leather"
    assert r.gt_boxes[0] == pytest.approx([564 / 2000, 142 / 1500, 719 / 2000, 299 / 1500])
    assert "'label'" in loaded.problems[0]


def test_cvbench_sat_spatialbench(tmp_path):
    cv = _jsonl(
        tmp_path / "cv.jsonl",
        [
            {
                "idx": 7,
                "type": "2D",
                "task": "Count",
                "image": "img/2D/count/a.png",
                "question": "How many organs?",
                "choices": ["3", "2", "1", "0"],
                "answer": "(C)",
            }
        ],
    )
    (r,) = load_benchmark("cvbench", cv).records
    assert r.answer == "1" and r.category == "2D Count" and "(C) 1" in r.question

    sat = _jsonl(
        tmp_path / "sat.jsonl",
        [
            {
                "id": 1,
                "image": "s1.png",
                "question": "Did the camera turn?",
                "answers": ["rotated left", "rotated right"],
                "correct_answer": "rotated right",
                "question_type": "ego_movement",
            },
            {"id": 2, "images": ["a.png", "b.png"], "question": "q", "answers": ["x", "y"], "correct_answer": "x"},
        ],
    )
    loaded = load_benchmark("sat", sat)
    # SAT's own format: the options as text, no letters.
    assert loaded.records[0].answer == "rotated right"
    assert loaded.records[0].question == (
        "Did the camera turn? Choose between the following options: rotated left, or rotated right."
    )
    assert "2 images" in loaded.problems[0]

    (tmp_path / "existence.json").write_text(
        json.dumps(
            [
                {"id": "e1", "image": "ex/1.jpg", "question": "Is there a cup?", "answer": "yes"},
                {"id": "g1", "image": "g.jpg", "objects": [{"cup": [0, 0, 1, 1]}]},
            ]
        )
    )
    loaded = load_benchmark("spatialbench", tmp_path / "existence.json")
    # SpatialBot's script matches the answer as written: no options, no capitalization.
    assert loaded.records[0].choices == [] and loaded.records[0].answer == "yes"
    assert loaded.records[0].meta["pair"] == 0
    assert loaded.records[0].category == "existence" and "grounding" in loaded.problems[0]


def test_synth_keeps_held_out_split(tmp_path):
    from sif.synthetic import make_dataset

    path = make_dataset(tmp_path, 30, seed=3, split_ratio=0.3)
    rows = json.loads(path.read_text())
    loaded = load_benchmark("synth", path)
    assert [r.id for r in loaded.records] == [r["id"] for r in rows if r["split"] == "test"]
    r = loaded.records[0]
    assert not r.image_missing and r.depth.endswith("_depth.png") and r.depth_encoding == "gray16_depth"
    assert r.meta["chain"].startswith("<think>")


def test_compare_runs_with_paper_column():
    runs = [
        {"id": 1, "config": {"benchmark": "cvbench", "model": "a"}, "metrics": {"overall": {"n": 4, "accuracy": 0.5}}},
        {"id": 2, "config": {"benchmark": "cvbench", "model": "b"}, "metrics": {"overall": {"n": 4, "accuracy": 0.75}}},
    ]
    table = compare_runs(runs, paper=True)
    row = next(line for line in table.splitlines() if "| accuracy |" in line)
    assert "0.500" in row and "0.750" in row and "0.759 (SIFThinker)" in row
    assert "quoted" in table.splitlines()[0]
    assert "0.759" not in compare_runs(runs)
