"""The tiny Qwen2.5-VL model loads back through the Auto classes like a hub model."""

from __future__ import annotations

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
