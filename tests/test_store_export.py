"""Exporters and `sif stats` on real SQLite files: SFT (LLaMA-Factory, TRL), the RL subset, the
round trip export → re-import with byte-identical chains, and what is skipped and why."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from cli.main import app
from db.exporters import export_rl, export_sft, stratified_quotas
from db.importers import import_file, sif50k_converter
from db.store import Store
from sif.prompts import sif_user_message, sif_user_prompt
from tests.support.store import released_record, synth_folder, write_json

runner = CliRunner()


@pytest.fixture
def store(tmp_path):
    """8 synthetic samples and 2 released-style ones, imported."""
    data = synth_folder(tmp_path / "data" / "synth", n=8)
    released = write_json(
        tmp_path / "data" / "rel.json",
        [released_record(tmp_path / "data" / "rel", f"r{i}", problem=f"Dress {i}?") for i in range(2)],
    )
    s = Store.open(tmp_path / "sif.db", data_root=tmp_path / "data")
    for path, root in ((data, data.parent), (released, tmp_path / "data" / "rel")):
        assert import_file(s, path, sif50k_converter(root), progress=False).errors == []
    yield s
    s.close()


def test_llamafactory_export_round_trips_chains_byte_identical(store, tmp_path):
    out = tmp_path / "sft"
    report = export_sft(store, out, split=None)
    assert report.exported == 10 and report.skipped == {}
    records = json.loads((out / "sif_sft.json").read_text())
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["sif_sft"]["formatting"] == "sharegpt" and info["sif_sft"]["file_name"] == "sif_sft.json"
    first = records[0]
    assert first["messages"][0] == {"role": "user", "content": sif_user_prompt(first["problem"])}
    assert first["images"] == [first["image"], first["depth_image"]] and first["image"].startswith("/")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["per_dataset"] == {"flickr30k": 2, "synthetic": 8} and manifest["content_hash"].startswith(
        "sha256:"
    )
    assert manifest["db"] == str(store.path)

    # Into a fresh store: every chain comes back byte for byte.
    fresh = Store.open(tmp_path / "fresh.db", data_root=tmp_path / "data")
    back = import_file(fresh, out / "sif_sft.json", sif50k_converter(out), progress=False)
    assert (back.added, back.chains_added, back.errors) == (10, 10, [])
    for sid in range(1, 11):
        a, b = store.get_sample(sid), fresh.get_sample(sid)
        assert (a.source_id, a.gt_boxes, a.image, a.depth) == (b.source_id, b.gt_boxes, b.image, b.depth)
        assert store.current_chain(sid).text == fresh.current_chain(sid).text
        assert store.current_chain(sid).text.encode() == records[sid - 1]["messages"][1]["content"].encode()
    # Into the same store: nothing new.
    again = import_file(store, out / "sif_sft.json", sif50k_converter(out), progress=False)
    assert (again.added, again.existing, again.chains_added) == (0, 10, 0)
    fresh.close()


def test_trl_export_prompt_completion_and_skips(store, tmp_path):
    store.add_revision(1, "<think><area>[]</area></think><answer>x</answer>", origin="edited", author="ann")
    store.set_review(2, "rejected", reviewer="ann", expected_version=0)
    store.set_review(3, "accepted", reviewer="ann", expected_version=0)
    (store.data_root / store.get_sample(4).image).unlink()
    out = tmp_path / "trl"
    result = runner.invoke(
        app, ["export", "sft", "--out", str(out), "--format", "trl", "--split", "all", "--db", str(store.path)]
    )
    assert result.exit_code == 0, result.output
    assert "skipped: 1 image file missing, 1 invalid chain" in result.output
    lines = [json.loads(line) for line in (out / "sif_sft.jsonl").read_text().splitlines()]
    assert [r["sample_id"] for r in lines] == [3, 5, 6, 7, 8, 9, 10]  # 2 is rejected
    r = lines[0]
    assert r["prompt"] == [sif_user_message(store.get_sample(3).question)]
    assert r["completion"] == [{"role": "assistant", "content": store.current_chain(3).text}]
    assert r["images"] == [str(store.resolve(store.get_sample(3).image)), str(store.resolve(store.get_sample(3).depth))]
    only = runner.invoke(
        app,
        [
            "export",
            "sft",
            "--out",
            str(out),
            "--format",
            "trl",
            "--split",
            "all",
            "--status",
            "accepted",
            "--db",
            str(store.path),
        ],
    )
    assert "exported 1 samples" in only.output
    assert json.loads((out / "manifest.json").read_text())["filters"]["status"] == ["accepted"]


def test_rl_export_is_stratified_seeded_and_complete(store, tmp_path):
    out = tmp_path / "rl.jsonl"
    report = export_rl(store, out, n=5, seed=42, split=None)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5 and report.per_dataset == {"flickr30k": 1, "synthetic": 4}
    assert set(lines[0]) == {
        "sample_id",
        "question",
        "answer",
        "gt_boxes",
        "image",
        "depth_image",  # the spectral_r picture the model sees
        "depth_encoding",
        "depth_map",  # the exact map the depth reward measures against
        "depth_map_encoding",
    }
    s = store.get_sample(lines[0]["sample_id"])
    assert lines[0]["gt_boxes"] == s.gt_boxes and lines[0]["image"] == str(store.resolve(s.image))
    export_rl(store, tmp_path / "again.jsonl", n=5, seed=42, split=None)
    assert (tmp_path / "again.jsonl").read_text() == out.read_text()
    export_rl(store, tmp_path / "other.jsonl", n=5, seed=7, split=None)
    assert (tmp_path / "other.jsonl").read_text() != out.read_text()
    assert json.loads((tmp_path / "rl.manifest.json").read_text())["exported"] == 5


def test_stratified_quotas_are_proportional_and_capped():
    assert stratified_quotas({"a": 30, "b": 10}, 8) == {"a": 6, "b": 2}
    assert stratified_quotas({"a": 100, "b": 1}, 10) == {"a": 9, "b": 1}
    assert stratified_quotas({"a": 3, "b": 2}, 50) == {"a": 3, "b": 2}
    assert sum(stratified_quotas({"a": 7, "b": 5, "c": 3}, 10).values()) == 10


def test_stats_json(store):
    result = runner.invoke(app, ["stats", "--json", "--db", str(store.path)])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["samples"] == 10 and stats["by_dataset"] == {"flickr30k": 2, "synthetic": 8}
    assert stats["by_validity"] == {"valid": 10} and stats["by_current_origin"] == {"imported": 10}
    assert sum(stats["chain_steps"].values()) == 10
    steps = sum(int(k) * v for k, v in stats["chain_steps"].items())
    assert sum(stats["regions_per_step"].values()) == steps
    table = runner.invoke(app, ["stats", "--db", str(store.path)])
    assert "by dataset" in table.output and "synthetic" in table.output
    assert Counter(stats["by_status"]) == Counter({"pending": 10})


def test_export_writes_the_curated_chain_never_a_later_rollout_or_prediction(store, tmp_path):
    sid = store.query()[0].id
    curated = store.current_chain(sid).text
    model_chain = (
        '<think>\n<area>[{"bbox_2d":[0.000,0.000,0.500,0.500],"depth":0.500}]</area>\n'
        "<text>a model wrote this</text>\n</think>\n<answer>model</answer>"
    )
    for kind, origin in (("training", "rollout"), ("evaluation", "prediction")):
        run = store.create_run(kind, {})
        assert store.add_revision(sid, model_chain, origin=origin, author="model", run_id=run).valid
    export_sft(store, tmp_path / "lf", split=None)
    export_sft(store, tmp_path / "trl", split=None, fmt="trl")
    lf = {r["sample_id"]: r for r in json.loads((tmp_path / "lf" / "sif_sft.json").read_text())}
    trl = {r["sample_id"]: r for r in map(json.loads, (tmp_path / "trl" / "sif_sft.jsonl").read_text().splitlines())}
    assert lf[sid]["messages"][1]["content"] == curated
    assert trl[sid]["completion"][0]["content"] == curated
    assert all("a model wrote this" not in json.dumps(r) for r in [*lf.values(), *trl.values()])
