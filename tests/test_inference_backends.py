"""Backends: every one that runs here returns text that parse_chain reads; one prompt, one sampling API."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from inference.backends import Sampling, load_backend, prepare_images
from sif.chain import parse_chain
from sif.depth import decode_image, encode_spectral_r
from sif.prompts import RL_SUFFIX, SIF_SUFFIX, sif_question
from tests.support.fake_openai import Reply, fake_openai_server
from tests.support.inference import CANNED_TEXT, HEIGHT, WIDTH, scene_depth, scene_image


def _decode_data_url(url: str) -> Image.Image:
    header, data = url.split(",", 1)
    assert header == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


# ---------------------------------------------------------------- sampling and images


def test_sampling_is_greedy_at_temperature_zero_and_rejects_unknown_keys():
    assert Sampling().hf() == {"max_new_tokens": 2048, "do_sample": False}  # the reference inference default
    assert Sampling(temperature=0.7, top_p=0.9, max_new_tokens=8).hf() == {
        "max_new_tokens": 8,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
    }
    assert Sampling(temperature=0.7, do_sample=False).openai()["temperature"] == 0.0
    assert Sampling(do_sample=True).openai()["temperature"] == 1.0
    with pytest.raises(TypeError):
        Sampling(max_tokens=5)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)


def test_prepare_images_reencodes_gray16_depth_as_spectral_r(scene_files):
    image, depth = scene_files
    images = prepare_images(image, depth)
    assert images.source == "given (gray16_depth)"
    assert images.image.mode == "RGB" and images.depth.size == (WIDTH, HEIGHT)
    np.testing.assert_array_equal(np.asarray(images.depth), encode_spectral_r(scene_depth()))
    np.testing.assert_allclose(images.depth_map.array, scene_depth(), atol=1 / 65535)


def test_prepare_images_passes_spectral_depth_through_and_fills_missing_depth():
    rgb = scene_image()
    spectral = Image.fromarray(encode_spectral_r(scene_depth()))
    given = prepare_images(rgb, spectral)
    assert given.depth is not spectral and given.source == "given (spectral_r)"
    np.testing.assert_array_equal(np.asarray(given.depth), np.asarray(spectral))
    flat = prepare_images(rgb, None, depth_model="flat")
    assert flat.source == "flat" and float(flat.depth_map.array.max()) == 0.0
    estimated = prepare_images(rgb, None, depth_model="tiny")
    assert estimated.source == "estimated (tiny)"
    assert estimated.depth_map.array.shape == (HEIGHT, WIDTH)


def test_a_depth_map_of_another_size_is_resized_to_the_image_for_box_means():
    small = Image.fromarray(encode_spectral_r(scene_depth()[::2, ::2]))
    images = prepare_images(scene_image(), small)
    assert images.depth_map.array.shape == (HEIGHT, WIDTH)
    assert images.depth_map.box_mean((0.0, 0.0, 0.1, 1.0)) < 0.1 < 0.9 < images.depth_map.box_mean((0.9, 0.0, 1.0, 1.0))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="depth map not found"):
        prepare_images(scene_image(), tmp_path / "nope.png")
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="image .*bad.png is not a readable image"):
        prepare_images(tmp_path / "bad.png", None)


# ---------------------------------------------------------------- OpenAI-compatible


def test_openai_backend_sends_rgb_then_depth_and_the_sif_prompt(chain_server, scene_files):
    image, depth = scene_files
    backend = load_backend("openai", "served-sif", base_url=chain_server.base_url)
    text = backend.generate(image, depth, "What colour is the left block?", max_new_tokens=64, temperature=0.0)
    assert parse_chain(text).chain.answer == "red"
    request = chain_server.requests[-1]
    assert request["model"] == "served-sif"
    assert (request["max_tokens"], request["temperature"], request["top_p"]) == (64, 0.0, 1.0)
    parts = request["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert parts[0]["text"] == "Original image: " and parts[2]["text"] == "\nDepth image: "
    assert parts[4]["text"] == "\n" + sif_question("What colour is the left block?", SIF_SUFFIX)
    rgb, shown_depth = (_decode_data_url(parts[i]["image_url"]["url"]) for i in (1, 3))
    np.testing.assert_array_equal(np.asarray(rgb), np.asarray(scene_image()))
    decoded, encoding = decode_image(shown_depth)
    assert encoding == "spectral_r"
    np.testing.assert_allclose(decoded, scene_depth(), atol=1 / 255 + 1e-6)


def test_openai_backend_streams_deltas_with_other_suffixes(chain_server):
    backend = load_backend("openai", "m", base_url=chain_server.base_url, depth_model="flat")
    pieces = list(backend.stream(scene_image(), None, "Where is the block?", suffix=RL_SUFFIX, temperature=0.5))
    assert len(pieces) > 5 and "".join(pieces) == CANNED_TEXT
    request = chain_server.requests[-1]
    assert request["stream"] is True and request["temperature"] == 0.5
    assert request["messages"][0]["content"][-1]["text"].endswith(RL_SUFFIX)


def test_openai_backend_server_errors_surface():
    from common.openai_client import ChatError

    with fake_openai_server(lambda request, n: Reply("bad request", status=400)) as server:
        backend = load_backend("openai", "m", base_url=server.base_url, depth_model="flat")
        with pytest.raises(ChatError, match="HTTP 400"):
            backend.generate(scene_image(), None, "q")
        with pytest.raises(ChatError, match="HTTP 400"):
            list(backend.stream(scene_image(), None, "q"))


# ---------------------------------------------------------------- Hugging Face


def test_hf_backend_on_the_tiny_model_generates_and_streams(tiny_model):
    backend = load_backend("hf", str(tiny_model), depth_model="flat")
    text = backend.generate(scene_image(), None, "What colour is the block?", max_new_tokens=24)
    assert isinstance(text, str) and text
    parse_chain(text)  # random weights write garbage; parsing it must still work
    pieces = list(backend.stream(scene_image(), None, "What colour is the block?", max_new_tokens=24))
    assert len(pieces) > 1 and "".join(pieces) == text  # greedy: the stream is the same text


def test_hf_backend_prompt_holds_two_images_then_the_question(tiny_model):
    backend = load_backend("hf", str(tiny_model), depth_model="flat")
    images = prepare_images(scene_image(), None, depth_model="flat")
    inputs = backend._inputs(images, "Which is nearer?", SIF_SUFFIX)
    assert inputs["image_grid_thw"].shape[0] == 2
    prompt = backend.processor.tokenizer.decode(inputs["input_ids"][0])
    assert (
        prompt.index("Original image:") < prompt.index("Depth image:") < prompt.index("Which is nearer? " + SIF_SUFFIX)
    )
    assert prompt.count("<|vision_start|>") == 2


def test_closing_an_hf_stream_early_stops_generation(tiny_model):
    import time

    backend = load_backend("hf", str(tiny_model), depth_model="flat")
    stream = backend.stream(scene_image(), None, "q", max_new_tokens=4000, temperature=1.0)
    next(stream)
    start = time.monotonic()
    stream.close()
    assert time.monotonic() - start < 5  # joined a stopped thread, not a 4000-token generation


def test_hf_backend_loads_a_lora_adapter_directory(tiny_model, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_model)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")  # records tiny_model as base_model_name_or_path
    backend = load_backend("hf", str(tmp_path / "adapter"), depth_model="flat")
    assert isinstance(backend.model, PeftModel) and backend.model_name == str(tiny_model)
    assert isinstance(backend.generate(scene_image(), None, "q", max_new_tokens=4), str)


def test_load_backend_names_bad_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'tgi'"):
        load_backend("tgi", "m")
    with pytest.raises(ValueError, match="vllm backend needs --model"):
        load_backend("vllm", None)
    with pytest.raises(ValueError, match="could not be loaded"):
        load_backend("hf", str(tmp_path / "no-such-model"))


def test_vllm_backend_without_vllm_says_how_to_install():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here; the backend is exercised on GPU machines")
    except ImportError:
        pass
    with pytest.raises(ValueError, match=r"pip install 'sif-workbench\[vllm\]'"):
        load_backend("vllm", "some/model")


def test_the_demo_model_is_named_never_built_as_a_side_effect(tiny_model, tmp_path, monkeypatch):
    """`--model demo`: the demo model under $SIF_HOME (here a tiny one put in its place, not trained)."""
    import shutil

    monkeypatch.setenv("SIF_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="hf backend needs --model.*sif train demo-run"):
        load_backend("hf")
    with pytest.raises(ValueError, match="not built yet.*sif train demo-run"):
        load_backend("hf", "demo")
    assert not (tmp_path / "tiny-demo").exists()
    shutil.copytree(tiny_model, tmp_path / "tiny-demo" / "model")
    backend = load_backend("hf", "demo")
    assert backend.model_name == str(tmp_path / "tiny-demo" / "model") and backend.depth_model == "flat"
    parse_chain(backend.generate(scene_image(), None, "What colour is the block?", max_new_tokens=8))
