"""Shared test settings and fixtures. Helpers that are not fixtures live in `tests/support/`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two cores are shared by everything; keep each torch/BLAS job to one thread in tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from sif.depth import save_gray16
from tests.support.fake_openai import Reply, fake_openai_server
from tests.support.inference import CANNED_TEXT, scene_depth, scene_image
from tests.support.shared_data import REC_FILE, VSR_FILE, full_file
from tests.support.workbench import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny Qwen2.5-VL model, built offline once per session (random weights)."""
    from training.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """16 synthetic samples routed through a store, exported for SFT and RL."""
    from training.synthetic_data import prepare_synthetic

    return prepare_synthetic(
        tmp_path_factory.mktemp("synth"), 16, seed=3, rl_n=8, max_objects=3, distractor_prob=0.0, split_ratio=0.2
    )


@pytest.fixture
def vsr_full() -> str:
    """All 3,376 Visual-CoT VSR records (the shared data; skipped when absent, see tests/data/README.md)."""
    return full_file(VSR_FILE)


@pytest.fixture
def rec_full() -> str:
    """All 10,834 RefCOCO val records (the shared data; skipped when absent)."""
    return full_file(REC_FILE)


@pytest.fixture
def scene_files(tmp_path):
    """The non-square test scene and its exact depth map, as files."""
    image, depth = tmp_path / "scene.png", tmp_path / "scene_depth.png"
    scene_image().save(image)
    save_gray16(scene_depth(), depth)
    return image, depth


@pytest.fixture
def chain_server():
    """A local OpenAI-compatible server that streams (or returns) the canned chain."""
    with fake_openai_server(lambda request, n: Reply(CANNED_TEXT)) as server:
        yield server


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """A 40-sample demo store (flawed teacher chains and a prediction run included)."""
    from workbench.demo_db import build_demo

    return build_demo(tmp_path_factory.mktemp("demo"), n=40, progress=False)


@pytest.fixture(scope="module")
def chromium():
    """A headless chromium; skipped when it is not installed unless SIF_REQUIRE_BROWSER=1."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("SIF_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and SIF_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
