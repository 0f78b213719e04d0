"""The depth image a model sees is the `spectral_r` picture for every origin of a sample
(synthetic, released SIF-50K, released gray, imported gray16, estimated), in both SFT formats,
the RL export, the training loaders, inference and the workbench; the exact map stays for the
depth checks. Renderings are written once beside the map; `sif depth render` writes them for a
store that has none yet."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from datagen.depth_source import DepthEstimator
from datagen.generation import GenerateConfig, generate
from db.exporters import export_rl, export_sft
from db.importers import import_file, sif50k_converter, viscot_converter
from db.store import Store
from sif.depth import DepthMap, decode_image, encode_spectral_r, rendering_path
from tests.support.store import depth_ramp, depth_record, measured_chain, synth_folder, write_json

runner = CliRunner()
SIZE = (48, 32)
QUANTUM = 0.5 / 255 + 1e-6  # a spectral_r rendering holds depth to the nearest of 256 levels


def _gray16(depth) -> Image.Image:
    return Image.fromarray(np.rint(depth * 65535).astype(np.uint16))


@pytest.fixture(scope="module")
def origins(tmp_path_factory):
    """A store holding one sample of each origin; returns (store, {origin: sample id})."""
    root = tmp_path_factory.mktemp("origins")
    data = root / "data"
    depth = depth_ramp(SIZE)
    synth = synth_folder(data / "synth", n=2)
    released = data / "released"
    gray = np.rint((1.0 - depth) * 255).astype(np.uint8)  # gray_disparity: v = disparity × 255
    records = [
        depth_record(released, "spectral", Image.fromarray(encode_spectral_r(depth))),
        depth_record(released, "gray", Image.fromarray(gray, "L"), chain=measured_chain(1.0 - gray / 255.0)),
        depth_record(released, "sixteen", _gray16(depth), depth_encoding="gray16_depth"),
    ]
    store = Store.open(root / "sif.db", data_root=data)
    for path, folder in ((synth, synth.parent), (write_json(data / "released.json", records), released)):
        assert import_file(store, path, sif50k_converter(folder), progress=False).errors == []
    viscot = data / "viscot"
    viscot.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(viscot / "photo.png")
    line = {"question": "Where?", "answer": "left", "image": "photo.png", "width": SIZE[0], "height": SIZE[1]}
    line |= {"bboxs": [[4, 4, 20, 20]], "dataset": "gqa"}
    (viscot / "v.jsonl").write_text(json.dumps(line) + "\n")
    assert import_file(store, viscot / "v.jsonl", viscot_converter(viscot), progress=False).errors == []
    estimator = DepthEstimator("fake-depth", estimate=lambda image: depth_ramp(image.size))
    generate(store, GenerateConfig(teacher="template"), estimator=estimator, progress=False)
    samples = [store.get_sample(row.id) for row in store.query(limit=100)]

    def first(dataset: str, name: str = "") -> int:
        return next(s.id for s in samples if s.dataset == dataset and s.source_id.startswith(name))

    yield (
        store,
        {
            "synthetic": first("synthetic"),
            "released spectral_r": first("flickr30k", "spectral."),
            "released gray": first("flickr30k", "gray."),
            "imported gray16": first("flickr30k", "sixteen."),
            "estimated": first("gqa"),
        },
    )
    store.close()


ORIGINS = ("synthetic", "released spectral_r", "released gray", "imported gray16", "estimated")


def _second_images(store, tmp_path) -> dict[int, str]:
    """sample id → the depth image of each export (llamafactory, trl, rl), all required to agree."""
    export_sft(store, tmp_path / "lf", split=None)
    export_sft(store, tmp_path / "trl", split=None, fmt="trl")
    export_rl(store, tmp_path / "rl.jsonl", n=100, split=None)
    lf = {r["sample_id"]: r for r in json.loads((tmp_path / "lf" / "sif_sft.json").read_text())}
    trl = {r["sample_id"]: r for r in map(json.loads, (tmp_path / "trl" / "sif_sft.jsonl").read_text().splitlines())}
    rl = {r["sample_id"]: r for r in map(json.loads, (tmp_path / "rl.jsonl").read_text().splitlines())}
    assert set(lf) == set(trl) == set(rl) == set(range(1, store.count() + 1))
    out = {}
    for sid in lf:
        assert lf[sid]["images"][1] == lf[sid]["depth_image"] == trl[sid]["images"][1] == rl[sid]["depth_image"]
        assert lf[sid]["depth_encoding"] == trl[sid]["depth_encoding"] == rl[sid]["depth_encoding"] == "spectral_r"
        out[sid] = lf[sid]["images"][1]
    return out


@pytest.mark.parametrize("origin", ORIGINS)
def test_every_export_shows_the_model_a_spectral_r_picture_of_the_exact_map(origins, origin, tmp_path):
    store, ids = origins
    sample = store.get_sample(ids[origin])
    shown = _second_images(store, tmp_path)[sample.id]
    with Image.open(shown) as img:
        rgb = img.convert("RGB")  # as LLaMA-Factory, TRL and the Qwen processor load it
    assert rgb.mode == "RGB" and np.asarray(rgb).std() > 10  # colour, not a white or flat picture
    decoded, _ = decode_image(rgb, "spectral_r")
    exact = DepthMap.load(*store.depth_file(sample)).array
    assert decoded.shape == exact.shape == (sample.height, sample.width)
    np.testing.assert_allclose(decoded, exact, atol=QUANTUM)
    assert decoded.std() > 0.05  # never constant


def test_renderings_are_written_once_beside_the_map_and_reused(origins, tmp_path):
    store, ids = origins
    sample = store.get_sample(ids["imported gray16"])
    picture = store.model_depth_image(sample)
    assert (
        picture == rendering_path(store.depth_file(sample)[0]) and picture.parent == store.resolve(sample.depth).parent
    )
    stamp = picture.stat().st_mtime_ns
    _second_images(store, tmp_path)
    assert store.model_depth_image(sample) == picture and picture.stat().st_mtime_ns == stamp
    synthetic = store.get_sample(ids["synthetic"])
    assert store.model_depth_image(synthetic) == store.resolve(synthetic.depth)  # already spectral_r: itself


def test_training_loaders_inference_and_workbench_use_the_same_picture(origins, tmp_path):
    from inference.backends import prepare_images
    from training.data import load_rl_rows
    from workbench.service import Workbench

    store, ids = origins
    sample = store.get_sample(ids["imported gray16"])
    picture = store.model_depth_image(sample)
    export_rl(store, tmp_path / "rl.jsonl", n=100, split=None)
    rows, _ = load_rl_rows(tmp_path / "rl.jsonl")
    row = next(r for r in rows if r["sample_id"] == str(sample.id))
    assert row["images"][1] == str(picture)  # what the model sees
    assert (row["depth_path"], row["depth_encoding"]) == store.depth_file(sample)  # what the reward measures
    given = prepare_images(store.resolve(sample.image), store.resolve(sample.depth))
    np.testing.assert_array_equal(np.asarray(given.depth), np.asarray(Image.open(picture).convert("RGB")))
    assert Workbench(store).depth_picture_path(sample) == picture


def test_an_old_export_holding_a_16_bit_map_is_rendered_by_the_sft_loader(origins, tmp_path, tiny_model):
    from training.data import load_sft_rows
    from training.modeling import load_processor

    store, ids = origins
    sample = store.get_sample(ids["imported gray16"])
    export_sft(store, tmp_path / "trl", split=None, fmt="trl")
    lines = [json.loads(line) for line in (tmp_path / "trl" / "sif_sft.jsonl").read_text().splitlines()]
    old = next(r for r in lines if r["sample_id"] == sample.id)
    old["images"][1] = str(store.resolve(sample.depth))  # what exports wrote before: the 16-bit map
    del old["depth_encoding"]
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    rows, report = load_sft_rows(tmp_path / "old.jsonl", load_processor(str(tiny_model), None), max_length=None)
    assert report.kept == 1 and rows[0]["images"][1] == str(store.model_depth_image(sample))


def test_sif_depth_render_writes_what_an_older_store_lacks_and_imports_point_to_it(tmp_path):
    data = tmp_path / "data"
    depth = depth_ramp(SIZE)
    records = [depth_record(data, f"s{i}", _gray16(depth), depth_encoding="gray16_depth") for i in range(3)]
    path = write_json(data / "released.json", records)
    db = tmp_path / "sif.db"
    result = runner.invoke(app, ["import", "sif50k", str(path), "--root", str(data), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "3 samples' depth maps have no spectral_r rendering yet" in result.output
    assert f"sif depth render --db {db}" in result.output
    rendered = runner.invoke(app, ["depth", "render", "--db", str(db), "--no-progress"])
    assert rendered.exit_code == 0, rendered.output
    assert "3 depth renderings written, 0 already there" in rendered.output
    with Store.open(db) as store:
        for sid in (1, 2, 3):
            sample = store.get_sample(sid)
            assert rendering_path(store.resolve(sample.depth)).is_file()
    again = runner.invoke(app, ["depth", "render", "--db", str(db), "--no-progress"])
    assert "0 depth renderings written, 3 already there" in again.output
    quiet = runner.invoke(app, ["import", "sif50k", str(path), "--root", str(data), "--db", str(db)])
    assert "no spectral_r rendering yet" not in quiet.output
