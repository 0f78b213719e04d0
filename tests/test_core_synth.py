"""`sif synth`: records in the SIF-50K format, valid chains, boxes on objects, exact depths, speed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from sif.chain import parse_chain, validate_chain
from sif.depth import DepthMap
from sif.geometry import boxes_overlap
from sif.prompts import sif_user_prompt
from sif.synthetic import PLURALS, QUESTION_KINDS, SynthConfig, make_dataset, make_sample, render_scene

SIF50K_KEYS = {
    "dataset",
    "image",
    "depth_image",
    "problem",
    "normalized_solution_round",
    "response",
    "messages",
    "images",
}
EXTRA_KEYS = {"id", "split", "width", "height", "depth_map", "question_kind"}
runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """200 samples through the CLI, timed: the brief asks for a few seconds."""
    out = tmp_path_factory.mktemp("synth")
    start = time.perf_counter()
    result = runner.invoke(app, ["synth", str(out), "--n", "200", "--seed", "7"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert "wrote 200 samples" in result.output
    return out, json.loads((out / "sif50k.json").read_text()), elapsed


def test_two_hundred_samples_take_seconds(dataset):
    assert dataset[2] < 20  # about 3 s on one free core; generous for a shared CI machine


def test_records_have_exactly_the_sif50k_shape(dataset):
    out, records, _ = dataset
    assert len(records) == 200
    assert [r["id"] for r in records] == [f"synth-{i:06d}" for i in range(200)]
    for r in records:
        assert set(r) == SIF50K_KEYS | EXTRA_KEYS
        assert r["dataset"] == "synthetic"
        assert r["images"] == [r["image"], r["depth_image"]]
        assert r["normalized_solution_round"]["illegal_content"] is False
        user, assistant = r["messages"]
        assert user == {"role": "user", "content": sif_user_prompt(r["problem"])}
        assert assistant["role"] == "assistant"
        assert r["split"] in ("train", "test") and r["question_kind"] in QUESTION_KINDS
        assert r["image"].startswith("images/") and r["depth_image"].startswith("depth/")
    splits = {r["split"] for r in records}
    assert splits == {"train", "test"}
    assert {r["question_kind"] for r in records} == set(QUESTION_KINDS)
    assert len({(r["width"], r["height"]) for r in records}) == 4


def test_every_chain_is_valid_and_ends_on_the_ground_truth(dataset):
    _, records, _ = dataset
    for r in records:
        text = r["messages"][1]["content"]
        assert validate_chain(text) == [], r["id"]
        chain = parse_chain(text).chain
        assert chain.answer == r["response"]
        assert chain.final_boxes == r["normalized_solution_round"]["bbox_3d"]
        assert chain.steps[0].boxes == [[0.0, 0.0, 1.0, 1.0]]


def test_files_exist_with_the_recorded_sizes_and_encodings(dataset):
    out, records, _ = dataset
    for r in records[:40]:
        with Image.open(out / r["image"]) as im:
            assert im.size == (r["width"], r["height"]) and im.mode == "RGB"
        exact = DepthMap.load(out / r["depth_map"])
        shown = DepthMap.load(out / r["depth_image"])
        assert (exact.encoding, shown.encoding) == ("gray16_depth", "spectral_r")
        assert exact.array.shape == (r["height"], r["width"])
        assert np.abs(exact.array - shown.array).max() <= 0.5 / 255 + 1e-4
        assert exact.array.min() == 0.0 and exact.array.max() == 1.0
        assert exact.array[0].min() == 1.0  # the top row is sky: farthest


def test_depths_match_the_depth_map(dataset):
    out, records, _ = dataset
    for r in records:
        dmap = DepthMap.load(out / r["depth_map"])
        for step in parse_chain(r["messages"][1]["content"]).chain.steps:
            for region in step.regions:
                assert region.depth == round(dmap.box_mean(region.bbox), 3)


def test_distractor_steps_never_touch_the_ground_truth(dataset):
    _, records, _ = dataset
    seen = 0
    for r in records:
        steps = parse_chain(r["messages"][1]["content"]).chain.steps
        for i, step in enumerate(steps):
            if "look elsewhere" in step.text:
                seen += 1
                assert i == 1 and len(step.regions) == 1
                later = [b for s in steps[i + 1 :] for b in s.boxes]
                assert not any(boxes_overlap(step.boxes[0], b) for b in later)
    assert 40 < seen < 160  # distractor_prob 0.5, sometimes impossible


def test_boxes_match_visible_object_masks():
    rng = np.random.default_rng(11)
    checked = 0
    while checked < 20:
        scene = render_scene(rng, 320, 240, int(rng.integers(2, 7)))
        if scene is None:
            continue
        checked += 1
        assert scene.depth.shape == scene.labels.shape == (240, 320)
        names = [o.name for o in scene.objects]
        assert len(set(names)) == len(names)  # colour + shape unique per scene
        bases = [o.base_y for o in scene.objects]
        assert bases == sorted(bases)  # drawn far to near
        for i, obj in enumerate(scene.objects):
            ys, xs = np.nonzero(scene.visible_mask(i))
            expected = (xs.min() / 320, ys.min() / 240, (xs.max() + 1) / 320, (ys.max() + 1) / 240)
            assert obj.box == pytest.approx(expected)
            assert obj.depth == pytest.approx(float(scene.depth[scene.visible_mask(i)].mean()))
        # nearer (lower-standing) objects have smaller depth
        depths = [o.depth for o in scene.objects]
        assert depths[0] >= depths[-1]


def test_answers_follow_the_scene():
    for seed in range(60):
        s = make_sample(np.random.default_rng(seed))
        q, objs = s.question, s.scene.objects
        targets = [objs[i] for i in q.targets]
        if q.kind == "nearest":
            assert targets[0].depth == min(o.depth for o in objs)
        elif q.kind == "farthest":
            assert targets[0].depth == max(o.depth for o in objs)
        elif q.kind == "closer":
            assert q.answer == min(targets, key=lambda o: o.depth).name
        elif q.kind == "count":
            shape = next(shape for shape, plural in PLURALS.items() if plural in q.text)
            assert int(q.answer) == sum(o.shape == shape for o in objs) == len(targets)
        else:
            assert q.answer in (targets[0].colour, targets[0].shape)
        if q.kind not in ("count", "closer"):  # the target is not named before the last step
            assert all(targets[0].name not in step.text for step in s.chain.steps[:-1])
        assert targets[0].name in s.chain.steps[-1].text


def test_same_seed_same_data_and_prefix_stability(tmp_path):
    a = json.loads(make_dataset(tmp_path / "a", 5, seed=3).read_text())
    b = json.loads(make_dataset(tmp_path / "b", 8, seed=3).read_text())
    assert a == b[:5]
    assert (tmp_path / "a/images/synth-000004.png").read_bytes() == (
        tmp_path / "b/images/synth-000004.png"
    ).read_bytes()
    c = json.loads(make_dataset(tmp_path / "c", 5, seed=4).read_text())
    assert c != a


def test_knobs(tmp_path):
    result = runner.invoke(
        app,
        [
            "synth",
            str(tmp_path),
            "--n",
            "12",
            "--sizes",
            "200x120",
            "--kinds",
            "count,nearest",
            "--min-objects",
            "3",
            "--max-objects",
            "3",
            "--distractor-prob",
            "0",
            "--split-ratio",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "sif50k.json").read_text())
    assert {(r["width"], r["height"]) for r in records} == {(200, 120)}
    assert {r["question_kind"] for r in records} <= {"count", "nearest"}
    assert {r["split"] for r in records} == {"test"}
    for r in records:
        assert "look elsewhere" not in r["messages"][1]["content"]
        assert "shows 3 objects" in r["messages"][1]["content"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sizes", "320by240"], "WIDTHxHEIGHT"),
        (["--sizes", "32x24"], "at least 64"),
        (["--kinds", "nearest,colourful"], "unknown question kinds ['colourful']"),
        (["--min-objects", "5", "--max-objects", "3"], "min_objects ≤ max_objects"),
        (["--max-objects", "1", "--min-objects", "1"], "max_objects must be at least 2"),
    ],
)
def test_bad_knobs_are_clear_errors(tmp_path, args, message):
    result = runner.invoke(app, ["synth", str(tmp_path), "--n", "2", *args])
    assert result.exit_code == 1
    assert message in result.output


def test_validate_command(dataset, tmp_path):
    out, records, _ = dataset
    ok = runner.invoke(app, ["validate", str(out / "sif50k.json")])
    assert ok.exit_code == 0 and "200 valid, 0 invalid" in ok.output
    broken = records[:3]
    broken[1] = {
        **broken[1],
        "messages": [broken[1]["messages"][0], {"role": "assistant", "content": "<answer>x</answer>"}],
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    bad = runner.invoke(app, ["validate", str(path)])
    assert bad.exit_code == 1
    assert "synth-000001: rule 1" in bad.output and "2 valid, 1 invalid of 3" in bad.output
    chain_file = tmp_path / "chain.txt"
    chain_file.write_text(records[0]["messages"][1]["content"])
    assert runner.invoke(app, ["validate", str(chain_file)]).exit_code == 0


def test_count_config_allows_single_objects():
    s = make_sample(np.random.default_rng(0), SynthConfig(min_objects=1, max_objects=1, kinds=("count",)))
    assert s.question.answer == "1"


def test_importing_sif_stays_light():
    code = (
        "import sys, sif, sif.chain, sif.geometry, sif.depth, sif.rewards, sif.prompts, sif.plan, "
        "sif.synthetic, sif.draw, sif.validate, cli.main\n"
        "print(sorted(m for m in ('torch', 'transformers', 'gradio', 'trl', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"
