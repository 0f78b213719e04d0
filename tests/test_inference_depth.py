"""Depth for new images: Depth Anything through transformers (the tiny offline config), in the
project's convention, written as gray16_depth + spectral_r; `sif depth` carries on past bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from datagen.depth_model import estimate_depth, estimate_depth_files, load_depth_model, write_depth
from sif.depth import DepthMap, decode_image, from_disparity


def _image(width=100, height=60, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_tiny_estimate_is_normalized_depth_at_the_image_size():
    depth = estimate_depth(_image(), "tiny")
    assert depth.shape == (60, 100) and depth.dtype == np.float32
    assert float(depth.min()) == 0.0 and float(depth.max()) == 1.0
    np.testing.assert_array_equal(depth, estimate_depth(_image(), "tiny"))  # seeded weights


def test_estimate_turns_disparity_into_depth_near_is_zero():
    """The model's own output is disparity (large = near): the nearest pixel must come out 0."""
    import torch

    loaded = load_depth_model("tiny")
    img = _image(70, 42, seed=3)
    inputs = loaded.processor(images=img, return_tensors="pt")
    with torch.no_grad():
        raw = loaded.model(**inputs)
    disparity = loaded.processor.post_process_depth_estimation(raw, target_sizes=[(42, 70)])[0][
        "predicted_depth"
    ].numpy()
    depth = estimate_depth(img, "tiny")
    np.testing.assert_allclose(depth, from_disparity(disparity), atol=1e-6)
    assert depth.flat[disparity.argmax()] == 0.0 and depth.flat[disparity.argmin()] == 1.0


def test_written_maps_decode_back(tmp_path):
    depth = estimate_depth(_image(), "tiny")
    gray16, spectral = write_depth(depth, tmp_path, "scene")
    assert (gray16.name, spectral.name) == ("scene_depth.png", "scene_d.png")
    np.testing.assert_allclose(DepthMap.load(gray16).array, depth, atol=1 / 65535)
    decoded, encoding = decode_image(Image.open(spectral))
    assert encoding == "spectral_r"
    np.testing.assert_allclose(decoded, depth, atol=1 / 255 + 1e-6)


def test_unknown_depth_model_fails_once_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="depth model .*could not be loaded"):
        estimate_depth_files([tmp_path / "a.png"], tmp_path, str(tmp_path / "missing-model"), progress=False)


def test_sif_depth_writes_maps_and_reports_bad_files(tmp_path):
    good = tmp_path / "good.jpg"
    _image().save(good)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = CliRunner().invoke(
        app, ["depth", str(good), str(bad), "--depth-model", "tiny", "--out", str(tmp_path / "out"), "--no-progress"]
    )
    assert result.exit_code == 1, result.output
    assert "wrote 1 depth map(s)" in result.output and "1 failed" in result.output
    assert "bad.png" in result.output
    assert DepthMap.load(tmp_path / "out" / "good_depth.png").array.shape == (60, 100)
    assert (tmp_path / "out" / "good_d.png").exists()
