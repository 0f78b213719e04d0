"""The tiny Qwen2.5-VL model loads back through the Auto classes like a hub model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from sif.prompts import sif_user_message


def test_round_trip_through_from_pretrained(tiny_model):
    from transformers import AutoModelForImageTextToText, AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    tok = processor.tokenizer
    for special in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1, special
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = processor.apply_chat_template(
        [sif_user_message("Which is nearest?")], tokenize=False, add_generation_prompt=True
    )
    assert text.count("<|image_pad|>") == 2 and text.endswith("<|im_start|>assistant\n")
    images = [Image.new("RGB", (320, 240), "red"), Image.new("RGB", (320, 240), "blue")]
    enc = processor(text=[text], images=images, return_tensors="pt")
    assert enc["image_grid_thw"].shape == (2, 3)
    n_image_tokens = int((enc["input_ids"] == model.config.image_token_id).sum())
    assert n_image_tokens == int(enc["image_grid_thw"].prod(dim=1).sum()) // 4
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_tokenizer_round_trips_chain_text(tiny_model):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(tiny_model).tokenizer
    chain = '<think>\n<area>[{"bbox_2d":[0.125,0.372,0.576,0.862],"depth":0.497}]</area>\n<text>é ünïcode ok</text>\n</think>\n<answer>red</answer>'
    ids = tok(chain, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == chain
    assert tok.convert_ids_to_tokens(tok("0.179", add_special_tokens=False)["input_ids"]) == ["0", ".", "1", "7", "9"]
    from sif.prompts import SIF_SUFFIX

    assert len(tok(SIF_SUFFIX, add_special_tokens=False)["input_ids"]) < 0.3 * len(SIF_SUFFIX)  # BPE learned SIF text


def test_demo_tokenizer_gives_each_coordinate_one_token_and_templates_few():
    from sif.prompts import SIF_SUFFIX
    from training.tiny_model import NUMBER_TOKENS, synthetic_corpus, train_tokenizer

    tok = train_tokenizer(synthetic_corpus(20), 512, number_tokens=True, phrase_merges=True)
    chain = (
        '<think>\n<area>[{"bbox_2d":[0.000,0.372,1.000,0.862],"depth":0.497}]</area>\n'
        "<text>This is the red ball at depth 0.497; é ünïcode 10.0005</text>\n</think>\n<answer>red ball</answer>"
    )
    ids = tok(chain, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == chain
    pieces = tok.convert_ids_to_tokens(ids)
    for number in ("0.000", "0.372", "1.000", "0.862", "0.497"):
        assert number in pieces
    assert len(NUMBER_TOKENS) == 1001 and len(tok(SIF_SUFFIX, add_special_tokens=False)["input_ids"]) < 70
    # words stay words: a colour in a question is the same token as in an answer
    words = tok.tokenize(" blue ball")
    assert tok.tokenize("What is left of the blue ball")[-len(words) :] == words


def test_number_embeddings_start_out_ordered(tmp_path):
    import torch

    from training.tiny_model import TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(
        corpus_samples=10, number_tokens=True, phrase_merges=True, rope_theta=10.0, mrope_section=(4, 6, 6)
    )
    out = build_tiny_model(tmp_path / "m", cfg)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(out)
    tok = AutoProcessor.from_pretrained(out).tokenizer
    emb = model.get_input_embeddings().weight.detach()
    vec = lambda v: emb[tok.convert_tokens_to_ids(f"{v / 1000:.3f}")]
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(vec(a), vec(b), dim=0))
    starts = range(100, 500, 20)
    near = sum(cos(v, v + 1) for v in starts) / len(starts)  # 0.100 and 0.101, …
    far = sum(cos(v, v + 400) for v in starts) / len(starts)  # 0.100 and 0.500, …
    assert near > far + 0.2
    assert model.config.text_config.rope_parameters["mrope_section"] == [4, 6, 6]


def test_mrope_sections_must_fill_half_a_head(tmp_path):
    from training.tiny_model import TinyModelConfig, build_tiny_model

    with pytest.raises(ValueError, match="mrope_section"):
        build_tiny_model(tmp_path / "m", TinyModelConfig(corpus_samples=2, mrope_section=(4, 4, 4)))
