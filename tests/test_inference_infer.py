"""`sif infer`: the chain, its validity and each step's regions; overlays on the right pixels."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from inference.backends import load_backend
from inference.infer import run_inference, write_outputs
from sif.depth import DepthMap
from sif.draw import step_colour
from sif.geometry import to_pixels
from tests.support.fake_openai import Reply, fake_openai_server
from tests.support.inference import CANNED, CANNED_TEXT, HEIGHT, WIDTH, scene_depth


def _assert_box_drawn(img: Image.Image, box, colour):
    """The box outline sits on the box's pixels, with nothing of that colour well inside it."""
    arr = np.asarray(img.convert("RGB"))
    x1, y1, x2, y2 = (round(v) for v in to_pixels(box, img.width, img.height))
    x2, y2 = x2 - 1, y2 - 1
    mid_x, mid_y = (x1 + x2) // 2, (y1 + y2) // 2
    for x, y in ((x1, mid_y), (x2, mid_y), (mid_x, y2)):  # left, right and bottom edges (the top has the label)
        assert tuple(arr[y, x]) == colour, (x, y, tuple(arr[y, x]), colour)
    assert tuple(arr[mid_y, mid_x]) != colour


def test_overlays_land_on_the_right_pixels_of_a_non_square_image(chain_server, scene_files, tmp_path):
    image, depth = scene_files
    backend = load_backend("openai", "m", base_url=chain_server.base_url)
    result = run_inference(backend, image, depth, "What colour is the left block?")
    assert result.valid and result.parsed.chain == CANNED
    paths = write_outputs(result, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "step_01.png",
            "step_01_depth.png",
            "step_02.png",
            "step_02_depth.png",
            "step_03.png",
            "step_03_depth.png",
            "chain.png",
            "strip.png",
            "depth_d.png",
            "summary.json",
        ]
    )
    for i, step in enumerate(CANNED.steps):
        for suffix in ("", "_depth"):
            img = Image.open(tmp_path / "out" / f"step_{i + 1:02d}{suffix}.png")
            assert img.size == (WIDTH, HEIGHT)
            for region in step.regions:
                if not region.is_whole_image:
                    _assert_box_drawn(img, region.bbox, step_colour(i))
    # Step 3's first box, (0.1, 0.25, 0.4, 0.75) of 240×120, outlines the red block: columns 24–95, rows 30–89.
    arr = np.asarray(Image.open(tmp_path / "out" / "step_03.png"))
    assert tuple(arr[60, 24]) == tuple(arr[60, 95]) == tuple(arr[89, 60]) == step_colour(2)
    assert tuple(arr[60, 23]) == (128, 128, 128) and tuple(arr[60, 26]) == (220, 30, 30)


def test_summary_records_each_steps_regions_and_measured_depth(chain_server, scene_files, tmp_path):
    image, depth = scene_files
    backend = load_backend("openai", "m", base_url=chain_server.base_url)
    write_outputs(run_inference(backend, image, depth, "q"), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["valid"] is True and summary["problems"] == [] and summary["answer"] == "red"
    assert summary["image_size"] == [WIDTH, HEIGHT] and summary["depth_source"] == "given (gray16_depth)"
    region = summary["steps"][2]["regions"][1]
    assert region["bbox_2d"] == [0.6, 0.1, 0.9, 0.4] and region["pixels"] == [144, 12, 216, 48]
    exact = DepthMap(scene_depth()).box_mean((0.6, 0.1, 0.9, 0.4))
    assert abs(region["measured_depth"] - exact) < 0.005  # measured on the re-encoded spectral map


def test_invalid_output_keeps_its_readable_steps(scene_files, tmp_path):
    truncated = CANNED_TEXT[: CANNED_TEXT.index("</text>", CANNED_TEXT.index("</text>") + 1) + len("</text>")]
    image, depth = scene_files
    with fake_openai_server(lambda request, n: Reply(truncated)) as server:
        backend = load_backend("openai", "m", base_url=server.base_url)
        result = run_inference(backend, image, depth, "q")
    assert not result.valid and len(result.parsed.chain.steps) == 2
    paths = write_outputs(result, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["valid"] is False and summary["answer"] is None and "no <answer>" in summary["skipped"]
    assert any("think" in p for p in summary["problems"])
    assert (tmp_path / "step_02.png") in paths and not (tmp_path / "step_03.png").exists()


def test_sif_infer_prints_chain_validity_and_steps(chain_server, scene_files, tmp_path):
    image, depth = scene_files
    result = CliRunner().invoke(
        app,
        [
            "infer",
            "--backend",
            "openai",
            "--base-url",
            chain_server.base_url,
            "--model",
            "m",
            "--image",
            str(image),
            "--depth",
            str(depth),
            "--question",
            "What colour is the left block?",
            "--out",
            str(tmp_path / "out"),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "<answer>red</answer>" in out and "valid: strictly follows the SIF format" in out
    assert "0.600, 0.100, 0.900, 0.400" in out and "144, 12, 216, 48" in out
    assert "The red block, and a far blue one." in out
    assert "wrote 10 files" in out and (tmp_path / "out" / "step_03.png").exists()


def test_sif_infer_with_the_tiny_hf_model_estimates_depth(tiny_model, scene_files, tmp_path):
    image, _ = scene_files
    result = CliRunner().invoke(
        app,
        [
            "infer",
            "--model",
            str(tiny_model),
            "--image",
            str(image),
            "--question",
            "q",
            "--depth-model",
            "tiny",
            "--max-new-tokens",
            "16",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "invalid" in result.output  # random weights: garbage, reported as such
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["depth_source"] == "estimated (tiny)" and summary["valid"] is False


def test_sif_infer_reports_a_bad_depth_map(tmp_path, scene_files):
    image, _ = scene_files
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    result = CliRunner().invoke(
        app, ["infer", "--backend", "openai", "--image", str(image), "--depth", str(bad), "--question", "q"]
    )
    assert result.exit_code == 1 and "depth map" in result.output and "bad.png" in result.output
