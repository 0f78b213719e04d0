"""`sif demo`: steps are drawn as they stream in, invalid output stays visible, and the real app
in real chromium shows the step images (screenshots under artifacts/screenshots/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.backends import load_backend, prepare_images
from inference.demo_app import DemoConfig, completed_steps, demo_scenes, launch_demo, think
from sif.chain import parse_chain
from sif.draw import step_colour
from tests.support.fake_openai import Reply, fake_openai_server
from tests.support.inference import CANNED, CANNED_TEXT, scene_depth, scene_image
from tests.support.workbench import free_port, shot


def _scene():
    from PIL import Image

    from sif.depth import encode_spectral_r

    return prepare_images(scene_image(), Image.fromarray(encode_spectral_r(scene_depth())))


def test_completed_steps_waits_for_the_closing_text_tag():
    first_text_end = CANNED_TEXT.index("</text>") + len("</text>")
    assert completed_steps(CANNED_TEXT[: first_text_end - 1]) == ()
    assert completed_steps(CANNED_TEXT[:first_text_end]) == CANNED.steps[:1]
    assert completed_steps(CANNED_TEXT) == CANNED.steps


def test_streaming_draws_the_first_step_before_generation_ends(chain_server):
    backend = load_backend("openai", "m", base_url=chain_server.base_url)
    views = list(think(backend, _scene(), "What colour is the left block?"))
    first = next(i for i, v in enumerate(views) if v.n_steps >= 1)
    assert not views[first].done and "</answer>" not in views[first].text
    assert views[first].overlay is not None and views[first].strip is not None
    second = next(v for v in views if v.n_steps >= 2)
    assert not second.done
    arr = np.asarray(second.overlay)
    assert tuple(arr[60, 12]) == step_colour(1)  # step 2's left edge: x = 0.05 · 240
    assert views[first].overlay.size == (240, 120) and views[first].depth_overlay.size == (240, 120)
    # Views between step changes carry no new images (the page keeps what it shows).
    assert any(v.overlay is None for v in views[first + 1 :])
    last = views[-1]
    assert last.done and last.n_steps == 3
    assert "Valid chain" in last.status and ">red<" in last.answer and last.steps.count("<li") == 3


def test_partial_output_is_shown_as_invalid_not_hidden():
    truncated = CANNED_TEXT[: CANNED_TEXT.index("</think>")]
    with fake_openai_server(lambda request, n: Reply(truncated)) as server:
        views = list(think(load_backend("openai", "m", base_url=server.base_url), _scene(), "q"))
    last = views[-1]
    assert last.done and last.n_steps == 3 and last.steps.count("<li") == 3
    assert "Invalid or partial" in last.status and "no &lt;answer&gt;" in last.status
    assert "no answer" in last.answer


def test_demo_scenes_are_synthesized_once(tmp_path):
    config = DemoConfig(scenes=3, scenes_dir=tmp_path)
    scenes = demo_scenes(config)
    assert len(scenes) == 3 and all(Path(p).exists() for row in scenes for p in row[:2])
    assert scenes[0][1].endswith("_d.png") and scenes[0][2].endswith("?")
    (tmp_path / "images" / Path(scenes[0][0]).name).unlink()
    assert demo_scenes(config) == scenes  # read from the index, not redrawn
    assert demo_scenes(DemoConfig(scenes=0, scenes_dir=tmp_path)) == []


# ---------------------------------------------------------------- the app in chromium


def _serve(config: DemoConfig):
    port = free_port()
    app = launch_demo(config, port=port, prevent_thread_lock=True, quiet=True)
    return app, f"http://127.0.0.1:{port}/"


def _scene_teacher(scenes: Path):
    """Replies to a question about a demo scene with that scene's own (valid) chain, streamed slowly."""

    def respond(request, n):
        asked = request["messages"][0]["content"][-1]["text"]
        for record in json.loads((scenes / "sif50k.json").read_text()):
            if record["problem"] in asked:
                return Reply(record["messages"][1]["content"], chunk_delay_s=0.08)
        return Reply("not a demo scene", status=400)

    return respond


@pytest.mark.browser
def test_demo_in_chromium_shows_steps_as_they_stream(chromium, tmp_path):
    scenes = tmp_path / "scenes"
    with fake_openai_server(_scene_teacher(scenes)) as server:
        app, url = _serve(
            DemoConfig(backend="openai", model="m", base_url=server.base_url, scenes=3, scenes_dir=scenes)
        )
        record = json.loads((scenes / "sif50k.json").read_text())[0]
        n_steps = len(parse_chain(record["messages"][1]["content"]).chain.steps)
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url)
            page.locator("#sif-examples tbody tr").first.click()  # the first demo scene
            page.wait_for_function("document.querySelector('#sif-question textarea').value.length > 0")
            assert page.locator("#sif-question textarea").input_value() == record["problem"]
            page.locator("#sif-image img").first.wait_for()
            page.locator("#sif-ask").click()
            page.locator("#sif-steps li").first.wait_for(timeout=20000)
            assert page.locator("#sif-answer .missing").count() == 1  # a step is drawn, the answer not yet there
            assert page.locator("#sif-overlay img").first.is_visible()
            shot(page, "demo_streaming")
            page.locator(".sif-status.valid").wait_for(timeout=30000)
            assert page.locator("#sif-steps li").count() == n_steps
            assert page.locator("#sif-answer .sif-answer").inner_text().strip() == record["response"]
            for elem in ("#sif-overlay", "#sif-depth-overlay", "#sif-strip"):
                assert page.locator(f"{elem} img").first.is_visible(), elem
            assert page.locator("#sif-raw textarea").input_value().endswith("</answer>")
            shot(page, "demo", docs=True)
        finally:
            app.close()
    request = server.requests[-1]
    assert request["stream"] is True and len(request["messages"][0]["content"]) == 5


@pytest.mark.slow
@pytest.mark.browser
def test_demo_in_chromium_with_the_tiny_hf_model(chromium, tiny_model, tmp_path):
    upload = tmp_path / "upload.png"
    scene_image().save(upload)
    app, url = _serve(DemoConfig(backend="hf", model=str(tiny_model), depth_model="tiny", scenes=0, max_new_tokens=16))
    try:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator("#sif-image input[type=file]").set_input_files(str(upload))
        page.locator("#sif-image img").first.wait_for()
        page.locator("#sif-question textarea").fill("What colour is the block?")
        page.locator("#sif-ask").click()
        page.locator(".sif-status.invalid").wait_for(timeout=60000)  # random weights: shown as invalid
        assert page.locator("#sif-raw textarea").input_value() != ""
        assert page.locator("#sif-depth-overlay img").first.is_visible()
        shot(page, "demo_tiny_hf")
    finally:
        app.close()
