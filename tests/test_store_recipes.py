"""`sif import viscot --recipe paper`: the paper's Visual-CoT selection (text-heavy subsets left
out, at most 10,000 samples per source dataset, seeded), on real Visual-CoT files and by CLI."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from db.recipes import LEFT_OUT, apply_recipe, paper_selection
from db.store import Store
from sif.records import read_records
from tests.support.shared_data import SHARED_DATA, full_file

runner = CliRunner()


def test_real_visual_cot_files_are_capped_per_dataset_and_seeded():
    records = [
        r
        for name in ("cub_cot_train.jsonl", "vsr_cot_train.jsonl")
        for _, r in read_records(full_file(str(SHARED_DATA / "viscot" / name)))
    ]
    assert len(records) == 10056 + 3376
    kept, notes = apply_recipe("paper", records, seed=0)
    chosen = [r for r in kept if r is not LEFT_OUT]
    assert sum(r["dataset"] == "cub" for r in chosen) == 10000 and sum(r["dataset"] == "vsr" for r in chosen) == 3376
    assert notes == ["recipe paper (seed 0): kept 13376 of 13432 records; at most 10000 per dataset: cub 10056 → 10000"]
    again, _ = apply_recipe("paper", records, seed=0)
    other, _ = apply_recipe("paper", records, seed=1)
    assert [r is LEFT_OUT for r in again] == [r is LEFT_OUT for r in kept]
    assert [r is LEFT_OUT for r in other] != [r is LEFT_OUT for r in kept]
    assert apply_recipe(None, records) == (records, [])


def test_text_heavy_subsets_are_left_out_and_bad_records_stay_for_the_report():
    records = [{"dataset": "docvqa"}, {"dataset": "TextVQA"}, "not an object", {"dataset": "flickr30k"}]
    kept, note = paper_selection(records, per_dataset=5)
    assert kept == [LEFT_OUT, LEFT_OUT, "not an object", {"dataset": "flickr30k"}]
    assert note == "recipe paper (seed 0): kept 2 of 4 records; text-heavy subsets left out: TextVQA 1, docvqa 1"


def test_cli_recipe_imports_only_the_selection(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    lines = []
    for i, dataset in enumerate(["vsr", "textvqa", "vsr", "sroie"]):
        Image.new("RGB", (20, 10)).save(images / f"{i}.jpg")
        lines.append({"question": f"Q{i}?", "answer": "a", "image": f"{i}.jpg", "width": 20, "height": 10})
        lines[-1] |= {"bboxs": [[1, 1, 5, 5]], "dataset": dataset}
    path = tmp_path / "cot.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    db = str(tmp_path / "sif.db")
    result = runner.invoke(
        app, ["import", "viscot", str(path), "--images", str(images), "--recipe", "paper", "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert "kept 2 of 4 records; text-heavy subsets left out: sroie 1, textvqa 1" in result.output
    assert "2 records: 2 samples added" in result.output
    with Store.open(db) as store:
        assert store.datasets() == ["vsr"]
    bad = runner.invoke(app, ["import", "viscot", str(path), "--images", str(images), "--recipe", "mine", "--db", db])
    assert bad.exit_code == 1 and "--recipe: 'mine' is not one of paper" in bad.output
    tally = runner.invoke(app, ["import", "tallyqa", str(path), "--images", str(images), "--recipe", "paper"])
    assert tally.exit_code == 1 and "tallyqa imports have no recipe" in tally.output
