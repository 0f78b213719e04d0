"""Gray depth pictures in SIF-50K-style records: the importer decides per dataset whether the
chains' depths were measured as FORMATS' `gray_disparity` (d = 1 − v/255) or as the reference
code's v/255 (`gray_depth`), records it, says so, and depth checks and the depth reward agree."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from db.exporters import export_rl
from db.store import Store
from sif.rewards import depth_reward
from tests.support.store import depth_ramp, depth_record, measured_chain, write_json

runner = CliRunner()
# A gray picture: bright (near, as Depth Anything's grayscale disparity) on the left.
GRAY = np.rint((1.0 - depth_ramp((48, 32))) * 255).astype(np.uint8)
READINGS = {"gray_disparity": 1.0 - GRAY / 255.0, "gray_depth": GRAY / 255.0}


def _records(root, dataset: str, reading: str, n: int, start: int = 0) -> list[dict]:
    """`n` records whose chains measured the gray picture with `reading`."""
    chain = measured_chain(READINGS[reading])
    as_rgb = Image.fromarray(np.repeat(GRAY[..., None], 3, axis=2))  # gray stored as RGB is still gray
    return [
        depth_record(
            root, f"{dataset}{i}", as_rgb if i % 2 else Image.fromarray(GRAY, "L"), chain=chain, dataset=dataset
        )
        for i in range(start, start + n)
    ]


def test_each_dataset_gets_the_reading_its_chains_were_made_with(tmp_path):
    root = tmp_path / "data"
    records = _records(root, "flickr30k", "gray_disparity", 3) + _records(root, "gqa", "gray_depth", 3)
    path = write_json(tmp_path / "sif50k.json", records)
    db = tmp_path / "sif.db"
    result = runner.invoke(app, ["import", "sif50k", str(path), "--root", str(root), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "flickr30k: gray depth pictures read as gray_disparity (d = 1 − v/255, FORMATS)" in result.output
    assert "gqa: gray depth pictures read as gray_depth (d = v/255, the reference code's reading)" in result.output
    assert "the chains' depths agree with this reading" in result.output
    with Store.open(db) as store:
        assert store.depth_convention("flickr30k")["encoding"] == "gray_disparity"
        gqa = store.depth_convention("gqa")
        assert gqa["encoding"] == "gray_depth" and gqa["evidence"]["regions"] == 9
        assert (
            gqa["evidence"]["mean_error"]["gray_depth"] < 0.001 < 0.2 < gqa["evidence"]["mean_error"]["gray_disparity"]
        )
        for row in store.query(limit=10):
            sample = store.get_sample(row.id)
            assert sample.depth_encoding == {"flickr30k": "gray_disparity", "gqa": "gray_depth"}[sample.dataset]
            assert row.depth_ok is True  # the store's depth check reads the map as the data was made
        export_rl(store, tmp_path / "rl.jsonl", n=10, split=None)
        for line in (tmp_path / "rl.jsonl").read_text().splitlines():
            r = json.loads(line)
            chain = store.current_chain(r["sample_id"]).text
            assert depth_reward([chain], depth_path=[r["depth_map"]], depth_encoding=[r["depth_map_encoding"]]) == [1.0]
            wrong = "gray_disparity" if r["depth_map_encoding"] == "gray_depth" else "gray_depth"
            assert depth_reward([chain], depth_path=[r["depth_map"]], depth_encoding=[wrong]) == [0.0]

    more = write_json(tmp_path / "more.json", _records(root, "gqa", "gray_depth", 2, start=10))
    again = runner.invoke(app, ["import", "sif50k", str(more), "--root", str(root), "--db", str(db)])
    assert "gqa: gray depth pictures read as gray_depth" in again.output and "recorded for this dataset" in again.output


def test_chains_that_cannot_tell_and_colour_pictures(tmp_path):
    from db.depth_convention import settle_depth_encodings

    root = tmp_path / "data"
    flat = Image.fromarray(np.full((32, 48), 128, np.uint8), "L")  # both readings give about 0.5
    records = [depth_record(root, "flat", flat, dataset="vsr")]
    spectral = [depth_record(root, "colour", Image.new("RGB", (48, 32), (158, 1, 66)), dataset="cub")]
    with Store.open(tmp_path / "sif.db", data_root=root) as store:
        samples = [
            ({"dataset": r["dataset"], "depth": str(root / r["depth_image"])}, r["messages"][1]["content"])
            for r in records + spectral
        ]
        notes = settle_depth_encodings(store, samples)
        assert notes == [
            "vsr: gray depth pictures read as gray_disparity (d = 1 − v/255, FORMATS); the chains cannot tell the "
            "readings apart: FORMATS' reading (recorded depths of 2 regions in 1 records differ by 0.002 as "
            "gray_disparity, 0.002 as gray_depth)"
        ]
        assert [fields["depth_encoding"] for fields, _ in samples] == ["gray_disparity", "spectral_r"]
