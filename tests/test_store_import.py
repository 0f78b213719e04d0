"""Importers on real SQLite files: SIF-50K (released and synthetic), Visual-CoT raw and LLaVA-style,
TallyQA; idempotence, per-record errors, missing images, box normalization and the padding fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from db.importers import import_file, sif50k_converter, tallyqa_converter, unpad_square, viscot_converter
from db.store import Store
from tests.support.shared_data import VSR_SAMPLE
from tests.support.store import RELEASED_CHAIN, released_record, synth_folder, write_json

runner = CliRunner()


def test_synthetic_import_via_cli_is_idempotent(tmp_path):
    data = synth_folder(tmp_path / "synth", n=8)
    db = tmp_path / "sif.db"
    args = ["import", "sif50k", str(data), "--root", str(data.parent), "--db", str(db)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "8 samples added, 0 already present, 8 chains added" in first.output
    second = runner.invoke(app, args)
    assert "0 samples added, 8 already present, 0 chains added" in second.output
    store = Store.open(db)
    assert store.data_root == data.parent.resolve()
    assert store.count() == 8 and store.count(valid=True) == 8 and store.count(origin="imported") == 8
    records = json.loads(data.read_text())
    sample = store.get_sample(1)
    assert (sample.source_id, sample.width, sample.height) == (
        records[0]["id"],
        records[0]["width"],
        records[0]["height"],
    )
    assert sample.depth == records[0]["depth_image"] and sample.depth_encoding == "spectral_r"
    assert sample.meta["depth_map"] == records[0]["depth_map"]
    rev = store.current_chain(1)
    assert rev.text == records[0]["messages"][1]["content"] and rev.raw_text is None
    assert rev.depth_ok is True  # synthetic chains carry exact depths
    assert all(len(store.history(i)) == 1 for i in range(1, 9))
    store.close()


def test_released_record_sizes_from_image_header_and_raw_chain_kept(tmp_path):
    root = tmp_path / "sif50k"
    path = write_json(tmp_path / "sif50k.json", [released_record(root, "36979", size=(48, 32))])
    store = Store.open(tmp_path / "sif.db", data_root=tmp_path)
    report = import_file(store, path, sif50k_converter(root), progress=False)
    assert (report.added, report.chains_added, report.errors) == (1, 1, [])
    s = store.get_sample(1)
    assert (s.width, s.height, s.answer, s.image) == (48, 32, "pink", "sif50k/images/36979.jpg")
    assert s.source_id.startswith("36979.jpg:") and s.gt_boxes == [[0.266, 0.274, 0.301, 0.31]]
    rev = store.current_chain(1)
    assert rev.valid and rev.raw_text == RELEASED_CHAIN and rev.text.endswith("<answer>pink</answer>")
    assert rev.depth_ok is True  # every region says 0.5 and the map is flat 0.5
    again = import_file(store, path, sif50k_converter(root), progress=False)
    assert (again.added, again.existing, again.chains_added) == (0, 1, 0)


def test_bad_records_are_reported_and_good_ones_kept(tmp_path):
    root = tmp_path / "d"
    good = [released_record(root, f"img{i}", problem=f"Question {i}?") for i in range(3)]
    no_problem = dict(good[0], problem="")
    bad_box = released_record(root, "img9", problem="Bad box?")
    bad_box["normalized_solution_round"] = {"bbox_3d": [[0.5, 0.1, 0.2, 0.3]]}
    missing = dict(released_record(root, "gone", problem="Missing?"), image="images/none.jpg")
    outside = dict(released_record(root, "out", problem="Outside?"), image="/etc/hostname")
    path = write_json(
        tmp_path / "x.json", [good[0], no_problem, bad_box, "not an object", missing, good[1], outside, good[2]]
    )
    store = Store.open(tmp_path / "sif.db", data_root=tmp_path)
    report = import_file(store, path, sif50k_converter(root), progress=False)
    assert report.added == 3 and report.records == 8
    errors = "\n".join(report.errors)
    assert "record 1: problem: is missing or empty" in errors
    assert "record 2: gt_boxes[0]" in errors
    assert "record 3: record: expected a JSON object" in errors
    assert "record 4: image: file not found" in errors and "--allow-missing" in errors
    assert "record 6: image: " in errors and "outside the data root" in errors
    assert len(report.errors) == 5
    relaxed = import_file(store, path, sif50k_converter(root), allow_missing=True, progress=False)
    assert relaxed.added == 1 and relaxed.missing_images == 1
    [row] = store.conn.execute("SELECT id, missing FROM samples WHERE missing = 1").fetchall()
    assert store.get_sample(row[0]).missing


def _import_vsr(tmp_path, vsr: str) -> int:
    """Import a Visual-CoT VSR file through the CLI (placeholder images of each record's size);
    check every box against the file and a hand-computed one; return the record count."""
    records = [json.loads(line) for line in Path(vsr).read_text().splitlines()]
    n = len(records)
    images = tmp_path / "vsr"
    images.mkdir()
    for name, w, h in {(r["image"], r["width"], r["height"]) for r in records}:
        Image.new("L", (w, h)).save(images / name, format="PNG", compress_level=1)
    result = runner.invoke(app, ["import", "viscot", vsr, "--images", str(images), "--db", str(tmp_path / "v.db")])
    assert result.exit_code == 0, result.output
    assert f"{n} records: {n} samples added" in result.output and "0 errors" in result.output
    store = Store.open(tmp_path / "v.db")
    assert store.count(dataset="vsr") == n and store.count(origin="none") == n
    rows = store.conn.execute("SELECT gt_boxes, width, height FROM samples ORDER BY id").fetchall()
    got = np.array([json.loads(r[0])[0] for r in rows])
    want = np.array(
        [
            [b[0] / r["width"], b[1] / r["height"], b[2] / r["width"], b[3] / r["height"]]
            for r in records
            for b in r["bboxs"]
        ]
    )
    np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=1e-12)
    # By hand: 000000528832.jpg is 640x428 with box [0.0, 0.88, 640.0, 422.54].
    s = store.get_sample(2)
    assert s.gt_boxes[0] == pytest.approx([0.0, 0.88 / 428, 1.0, 422.54 / 428])
    assert s.gt_boxes[0][3] == pytest.approx(0.987243, abs=1e-6)
    again = runner.invoke(app, ["import", "viscot", vsr, "--images", str(images), "--db", str(tmp_path / "v.db")])
    assert f"0 samples added, {n} already present" in again.output
    return n


def test_all_vsr_records_import_with_boxes_normalized(tmp_path, vsr_full):
    assert _import_vsr(tmp_path, vsr_full) == 3376


def test_shipped_vsr_records_import_with_boxes_normalized(tmp_path):
    """The same on the 300 records shipped in tests/data (a fresh clone has no ../shared)."""
    assert _import_vsr(tmp_path, VSR_SAMPLE) == 300


def test_square_padding_undone_on_hand_computed_examples():
    # Landscape 640x428: padding (640-428)//2 = 106 px on top. Pixel box [0, 0.88, 640, 422.54]
    # became [0/640, 106.88/640, 640/640, 528.54/640] = [0.000, 0.167, 1.000, 0.826] (3 decimals).
    # Undo: y1 = 0.167*640 - 106 = 0.88 → 0.88/428 = 0.002056; y2 = 0.826*640 - 106 = 422.64 → 0.987477.
    assert unpad_square([0.0, 0.167, 1.0, 0.826], 640, 428) == pytest.approx([0.0, 0.002056, 1.0, 0.987477], abs=1e-6)
    # Portrait 300x500: padding 100 px on the left. Pixel box [50, 100, 250, 400] became
    # [150/500, 100/500, 350/500, 400/500] = [0.3, 0.2, 0.7, 0.8]; undone: [50/300, 0.2, 250/300, 0.8].
    assert unpad_square([0.3, 0.2, 0.7, 0.8], 300, 500) == pytest.approx([1 / 6, 0.2, 5 / 6, 0.8])


def test_viscot_llava_json_import_undoes_padding(tmp_path):
    images = tmp_path / "imgs"
    (images / "cot" / "vsr").mkdir(parents=True)
    Image.new("RGB", (640, 428)).save(images / "cot" / "vsr" / "000000528832.jpg")
    record = {
        "dataset": "vsr",
        "split": "train",
        "question_id": 1,
        "image": ["cot/vsr/000000528832.jpg", "cot/vsr/000000528832.jpg###[0, 0, 640, 422]"],
        "conversations": [
            {
                "from": "human",
                "value": "<image>\nWhat is under the teddy bear? Please provide the bounding box "
                "coordinate of the region that can help you answer the question better.",
            },
            {"from": "gpt", "value": "[0.000, 0.167, 1.000, 0.826]"},
            {"from": "human", "value": "<image>"},
            {"from": "gpt", "value": "couch"},
        ],
    }
    path = write_json(tmp_path / "viscot_363k.json", [record, {"dataset": "vsr", "conversations": []}])
    store = Store.open(tmp_path / "sif.db", data_root=tmp_path)
    report = import_file(store, path, viscot_converter(images), progress=False)
    assert report.added == 1 and report.errors == [
        "record 1: conversations: expected 4 turns (question, box, image, answer), got 0"
    ]
    s = store.get_sample(1)
    assert (s.question, s.answer, s.width, s.height) == ("What is under the teddy bear?", "couch", 640, 428)
    assert s.gt_boxes[0] == pytest.approx([0.0, 0.002056, 1.0, 0.987477], abs=1e-6)
    assert s.meta["box_correction"] == "unpad_square"


def test_tallyqa_counts_with_boxes(tmp_path):
    images = tmp_path / "coco"
    images.mkdir()
    Image.new("RGB", (200, 100)).save(images / "a.jpg")
    records = [
        {
            "image": "a.jpg",
            "question": "How many dogs are there?",
            "answer": 2,
            "question_id": 77,
            "data_source": "amt",
            "boxes": [[10, 10, 50, 60], [100, 0, 200, 100]],
        },
        {"image": "a.jpg", "question": "How many cats?", "answer": True, "boxes": []},
    ]
    path = tmp_path / "tally.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n{broken\n")
    store = Store.open(tmp_path / "sif.db", data_root=tmp_path)
    report = import_file(store, path, tallyqa_converter(images), progress=False)
    assert report.added == 1
    assert report.errors[0].startswith("record 1: answer") and report.errors[1].startswith("record 2: json")
    s = store.get_sample(1)
    assert (s.dataset, s.answer, s.source_id, s.width) == ("tallyqa", "2", "77", 200)
    np.testing.assert_allclose(s.gt_boxes, [[0.05, 0.1, 0.25, 0.6], [0.5, 0.0, 1.0, 1.0]])


def test_worker_pool_analysis_matches_inline(tmp_path, monkeypatch):
    import db.importers

    data = synth_folder(tmp_path / "synth", n=6)
    records = json.loads(data.read_text())
    stores = []
    for name, workers in (("inline", 1), ("pool", 2)):
        monkeypatch.setattr(db.importers, "POOL_MIN", 1)
        store = Store.open(tmp_path / f"{name}.db", data_root=data.parent)
        report = db.importers.import_records(
            store, records, sif50k_converter(data.parent), progress=False, workers=workers
        )
        assert (report.added, report.chains_added, report.errors) == (6, 6, [])
        stores.append(store)
    for sid in range(1, 7):
        a, b = (s.current_chain(sid) for s in stores)
        assert (a.text, a.valid, a.final_hiou, a.depth_ok, a.n_steps) == (
            b.text,
            b.valid,
            b.final_hiou,
            b.depth_ok,
            b.n_steps,
        )
    assert stores[1].count(text=records[0]["response"]) == stores[0].count(text=records[0]["response"]) > 0


def _hostile_record_file(tmp_path, root) -> tuple[Path, int]:
    """A JSON list with a BOM: good records between the ones that used to abort an import."""
    good = [released_record(root, f"ok{i}", problem=f"Good question {i}?") for i in range(3)]
    base = released_record(root, "bad", problem="Bad question?")
    box = json.dumps(base["normalized_solution_round"])
    bad = [
        json.dumps(dict(base, depth_image=5)),  # 1: depth_image
        json.dumps(dict(base, width=2**63, height=32)),  # 2: width
        json.dumps(base).replace(box, '{"bbox_3d": [[' + "1" * 400 + ", 0, 1, 1]]}"),  # 3: a huge int in a box
        json.dumps(base).replace('"Bad question?"', '"Bad \\ud800 question?"'),  # 4: a lone surrogate
        json.dumps(dict(base, normalized_solution_round={"bbox_3d": ["0011"]})),  # 5: a string box
        json.dumps(dict(base, split={"name": "train"})),  # 6: split
        json.dumps(dict(base, split="holdout")),  # 7: split
        json.dumps(dict(base, id=["x"])),  # 8: id
    ]
    records = [json.dumps(good[0]), *bad, json.dumps(good[1]), json.dumps(good[2])]
    path = tmp_path / "hostile.json"
    path.write_bytes(b"\xef\xbb\xbf[" + ",\n".join(records).encode() + b"]")
    return path, len(records)


def test_records_that_aborted_imports_are_record_errors_naming_index_and_field(tmp_path):
    root = tmp_path / "d"
    path, n = _hostile_record_file(tmp_path, root)
    with Store.open(tmp_path / "sif.db", data_root=tmp_path) as store:
        report = import_file(store, path, sif50k_converter(root), progress=False)
        assert (report.records, report.added) == (n, 3), report.errors
        expected = [
            "record 1: depth_image: expected text, got int",
            "record 2: width: must be a whole number of pixels",
            "record 3: normalized_solution_round.bbox_3d[0]: expected 4 numbers",
            "record 4: problem: holds bytes that are not UTF-8 text",
            "record 5: normalized_solution_round.bbox_3d[0]: expected 4 numbers, got '0011'",
            "record 6: split: expected text, got dict",
            "record 7: split: 'holdout' is not one of train, val, validation, dev, test, eval",
            "record 8: id: expected text or a whole number, got list",
        ]
        assert len(report.errors) == len(expected)
        for line, want in zip(report.errors, expected):
            assert line.startswith(want), (line, want)
        assert sorted(s.question for s in map(store.get_sample, range(1, 4))) == [
            f"Good question {i}?" for i in range(3)
        ]


def test_deep_nesting_truncation_and_bytes_that_are_not_utf8_cost_only_their_records(tmp_path):
    root = tmp_path / "d"
    good = [json.dumps(released_record(root, f"ok{i}", problem=f"Question {i}?")) for i in range(3)]
    lines = [
        good[0],
        "[" * 200_000 + "]" * 200_000,  # nesting no parser follows
        good[1].replace("Question 1?", "Question 1 \udcff?").encode("utf-8", "surrogateescape"),  # a stray byte
        good[2].replace("Question 2?", "Question 2\u2028(on two lines)?"),  # a line separator inside a string
        good[0][:-40],  # truncated
    ]
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    with Store.open(tmp_path / "sif.db", data_root=tmp_path) as store:
        report = import_file(store, jsonl, sif50k_converter(root), progress=False)
        assert (report.records, report.added) == (5, 2), report.errors
        assert report.errors[0] == "record 1: json: line 2 cannot be read (nested too deeply)"
        assert report.errors[1].startswith("record 2: problem: holds bytes that are not UTF-8 text")
        assert report.errors[2].startswith("record 4: json: line 5 is not JSON (") and "column" in report.errors[2]
        assert store.get_sample(2).question == "Question 2\u2028(on two lines)?"
    truncated = tmp_path / "truncated.json"
    truncated.write_text("[" + ",".join(good)[:-300])
    with Store.open(tmp_path / "other.db", data_root=tmp_path) as store:
        report = import_file(store, truncated, sif50k_converter(root), progress=False)
        assert report.added == 2 and len(report.errors) == 1
        assert "record 2: json: not JSON (" in report.errors[0] and "line 1 column" in report.errors[0]


def test_a_record_that_breaks_its_batch_is_found_and_reported_alone(tmp_path, monkeypatch):
    """Storing one record can fail in ways no check foresaw: its batch is retried record by record."""
    root = tmp_path / "d"
    records = [released_record(root, f"r{i}", problem=f"Question {i}?") for i in range(5)]
    path = write_json(tmp_path / "x.json", records)
    real = Store.import_samples

    def fragile(store, batch, *, author):
        if any(fields["question"] == "Question 3?" for fields, _chain, _analysis in batch):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(store, batch, author=author)

    monkeypatch.setattr(Store, "import_samples", fragile)
    with Store.open(tmp_path / "sif.db", data_root=tmp_path) as store:
        report = import_file(store, path, sif50k_converter(root), progress=False)
        assert report.added == 4
        assert report.errors == [
            "record 3: cannot be stored (OverflowError: Python int too large to convert to SQLite INTEGER)"
        ]
