"""Relative `--root`, `--images` and `--data-root` work from any working directory: each importer
run with relative folders, then `generate` and both exports from another directory find every
image. A command that skips every sample exits non-zero and says why."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from db.store import Store
from tests.support.store import synth_folder

runner = CliRunner()


def _picture(path, size=(40, 30), seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _viscot(project, n=3):
    (project / "imgs").mkdir(parents=True)
    lines = []
    for i in range(n):
        _picture(project / "imgs" / f"a{i}.png", seed=i)
        lines.append(
            {"question": f"Where is thing {i}?", "answer": "left", "image": f"a{i}.png", "width": 40, "height": 30}
            | {"bboxs": [[2, 2, 20, 20]], "dataset": "gqa"}
        )
    (project / "v.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return ["viscot", "v.jsonl", "--images", "imgs"], n


def _tallyqa(project, n=3):
    (project / "coco").mkdir(parents=True)
    lines = []
    for i in range(n):
        _picture(project / "coco" / f"c{i}.png", seed=10 + i)
        lines.append({"image": f"c{i}.png", "question": f"How many dogs {i}?", "answer": 1, "boxes": [[1, 1, 9, 9]]})
    (project / "t.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return ["tallyqa", "t.jsonl", "--images", "coco"], n


def _sif50k(project, n=3):
    synth_folder(project / "synth", n=n)
    return ["sif50k", "synth/sif50k.json", "--root", "synth"], n


@pytest.mark.parametrize(
    "make, root",
    [(_sif50k, None), (_viscot, None), (_tallyqa, None), (_viscot, ".")],
    ids=["sif50k", "viscot", "tallyqa", "viscot-data-root"],
)
def test_relative_folders_from_another_directory_then_generate_and_export(make, root, tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    args, n = make(project)
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["import", *args, *(["--data-root", root] if root else []), "--db", "sif.db"])
    assert result.exit_code == 0, result.output
    assert f"{n} samples added" in result.output and "0 with missing images, 0 errors" in result.output
    with Store.open("sif.db") as store:
        assert store.data_root == (project / (root or args[3])).resolve()
        for sid in range(1, n + 1):
            sample = store.get_sample(sid)
            assert not sample.missing and store.resolve(sample.image).is_file(), sample.image

    monkeypatch.chdir(elsewhere)
    db = ["--db", "../project/sif.db"]
    generated = runner.invoke(app, ["generate", *db, "--depth-model", "tiny", "--no-progress"])
    assert generated.exit_code == 0, generated.output
    assert ", 0 skipped;" in generated.output
    for fmt in ("llamafactory", "trl"):
        out = runner.invoke(app, ["export", "sft", "--out", f"sft-{fmt}", "--format", fmt, "--split", "all", *db])
        assert out.exit_code == 0, out.output
        assert f"exported {n} samples" in out.output and "skipped: none" in out.output
    rl = runner.invoke(app, ["export", "rl", "--out", "rl.jsonl", "--split", "all", *db])
    assert rl.exit_code == 0 and f"exported {n} samples" in rl.output, rl.output
    files = json.loads((elsewhere / "sft-llamafactory" / "sif_sft.json").read_text())
    rows = [json.loads(line) for line in (elsewhere / "rl.jsonl").read_text().splitlines()]
    for path in [p for r in files for p in r["images"]] + [r[k] for r in rows for k in ("image", "depth_image")]:
        assert (elsewhere / path).is_file() and path.startswith("/"), path


def test_commands_that_skip_every_sample_exit_non_zero_and_say_why(tmp_path, monkeypatch):
    project = tmp_path / "project"
    args, n = _viscot(project)
    monkeypatch.chdir(project)
    assert runner.invoke(app, ["import", *args, "--db", "sif.db"]).exit_code == 0
    export = runner.invoke(app, ["export", "sft", "--out", "sft", "--split", "all", "--db", "sif.db"])
    assert export.exit_code == 1 and f"every sample was skipped ({n} no chain)" in export.output
    rl = runner.invoke(app, ["export", "rl", "--out", "rl.jsonl", "--split", "all", "--db", "sif.db"])
    assert rl.exit_code == 1 and f"every sample was skipped ({n} no depth image)" in rl.output
    empty = runner.invoke(app, ["export", "rl", "--out", "rl.jsonl", "--split", "test", "--db", "sif.db"])
    assert empty.exit_code == 1 and "no sample matches the filters" in empty.output
    for picture in (project / "imgs").iterdir():
        picture.unlink()
    generated = runner.invoke(app, ["generate", "--db", "sif.db", "--depth-model", "tiny", "--no-progress"])
    assert generated.exit_code == 1, generated.output
    assert f"every sample was skipped ({n})" in generated.output and "image not found" in generated.output
    bad = json.dumps({"question": "?", "answer": "x", "image": "nope.png", "width": 4, "height": 4})
    (project / "bad.jsonl").write_text(bad + "\n")
    failed = runner.invoke(app, ["import", "viscot", "bad.jsonl", "--images", "imgs", "--db", "sif.db"])
    assert failed.exit_code == 1 and "no record could be imported" in failed.output
