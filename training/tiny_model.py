"""A tiny Qwen2.5-VL-architecture model built offline, for tests and the embedded demo.

Everything a hub checkpoint has, made locally: a byte-level BPE tokenizer trained on synthetic
SIF texts plus the Qwen2-VL special tokens, a Qwen2-VL-style chat template, the Qwen2-VL image
and video processors (small `max_pixels`), and a randomly initialized
`Qwen2_5_VLForConditionalGeneration`. `save_pretrained` writes it so that
`AutoProcessor` / `AutoModelForImageTextToText.from_pretrained(DIR)` load it like any hub model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2-VL's template, except that a content part is dispatched on its "type" first: datasets
# stored in Arrow give every part every key (text parts get "image": None).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or (part['type'] is not defined and 'image' in part) %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['text'] is defined and part['text'] is not none %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyModelConfig:
    """Sizes of the tiny model; the defaults give about 2M parameters."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vision_hidden_size: int = 64
    vision_depth: int = 2
    vision_heads: int = 2
    patch_size: int = 14
    spatial_merge_size: int = 2  # merge×merge patches make one language-model token
    temporal_patch_size: int = 2
    window_patches: int = 4  # window attention side, in patches (Qwen2.5-VL: 8)
    max_pixels: int = 28 * 28 * 24  # at most 24 tokens an image
    min_pixels: int = 28 * 28 * 4
    max_position_embeddings: int = 4096
    rope_theta: float = 10000.0
    # Rotary frequencies (pairs) for temporal, height and width, highest first; they must sum to
    # head_dim / 2. None: none temporal, half each to height and width.
    mrope_section: tuple[int, int, int] | None = None
    corpus_samples: int = 400
    # One token for each 3-decimal number in [0, 1] ("0.000" … "1.000"), its embedding
    # initialized from the value (Fourier features), so nearby coordinates start out alike.
    number_tokens: bool = False
    # BPE merges across spaces and punctuation, so the chain templates become a few tokens.
    phrase_merges: bool = False
    seed: int = 0


def synthetic_corpus(n: int, seed: int = 0) -> list[str]:
    """Prompts and chains of `n` synthetic samples: the text the tokenizer should compress well."""
    import numpy as np

    from sif.chain import render_chain
    from sif.prompts import RL_SUFFIX, sif_user_prompt
    from sif.synthetic import make_sample

    # The chat template's own text too ("system\nYou are a helpful assistant.", the image captions).
    template = ["system\nYou are a helpful assistant.", "user\nOriginal image: ", "\nDepth image: ", "assistant\n"]
    texts = [sif_user_prompt("x"), RL_SUFFIX, "0123456789 .,:;[]{}\"'", *template * 20]
    for i in range(n):
        sample = make_sample(np.random.default_rng([seed, i, 7]))
        texts += [sif_user_prompt(sample.question.text), render_chain(sample.chain)]
    return texts


NUMBER_TOKENS = tuple(f"{i / 1000:.3f}" for i in range(1001))


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, number_tokens: bool = False, phrase_merges: bool = False):
    """A byte-level BPE tokenizer (every byte representable, digits split) with the Qwen2-VL special tokens.

    `number_tokens` adds one token per 3-decimal number in [0, 1]; `phrase_merges` lets BPE merge
    across spaces and punctuation (digits always stay apart).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if phrase_merges:
        # Pieces break only around digits, so a template sentence can become one token.
        pieces = pre_tokenizers.Split(Regex(r" [A-Za-z]+|(?<!_)\d"), behavior="isolated")
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pieces, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
    else:
        # One token a digit, as Qwen2's own tokenizer does: every coordinate has the same shape.
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if number_tokens:
        tok.add_tokens([AddedToken(t, normalized=False) for t in NUMBER_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_max_length=32768,
        chat_template=CHAT_TEMPLATE,
    )


def build_processor(tokenizer, cfg: TinyModelConfig):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    sizes = {
        "min_pixels": cfg.min_pixels,
        "max_pixels": cfg.max_pixels,
        "patch_size": cfg.patch_size,
        "merge_size": cfg.spatial_merge_size,
        "temporal_patch_size": cfg.temporal_patch_size,
    }
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**sizes),
        video_processor=Qwen2VLVideoProcessor(**sizes),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def model_config(tokenizer, cfg: TinyModelConfig):
    from transformers import Qwen2_5_VLConfig

    head_dim = cfg.hidden_size // cfg.num_attention_heads
    quarter = head_dim // 4
    mrope = list(cfg.mrope_section or (head_dim // 2 - 2 * quarter, quarter, quarter))
    if sum(mrope) != head_dim // 2:
        raise ValueError(f"mrope_section {mrope} must sum to head_dim / 2 = {head_dim // 2}")
    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "max_position_embeddings": cfg.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta, "mrope_section": mrope},
            "bos_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("<|endoftext|>"),
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": cfg.vision_depth,
            "hidden_size": cfg.vision_hidden_size,
            "intermediate_size": cfg.vision_hidden_size * 2,
            "num_heads": cfg.vision_heads,
            "patch_size": cfg.patch_size,
            "spatial_merge_size": cfg.spatial_merge_size,
            "temporal_patch_size": cfg.temporal_patch_size,
            "out_hidden_size": cfg.hidden_size,
            "fullatt_block_indexes": [cfg.vision_depth - 1],
            "window_size": cfg.patch_size * cfg.window_patches,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
        tie_word_embeddings=True,
    )


def build_tiny_model(out_dir, cfg: TinyModelConfig = TinyModelConfig(), corpus: list[str] | None = None) -> Path:
    """Write a loadable tiny Qwen2.5-VL model and its processor to `out_dir`; returns the folder."""
    import json

    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(
        corpus or synthetic_corpus(cfg.corpus_samples, cfg.seed),
        cfg.vocab_size,
        number_tokens=cfg.number_tokens,
        phrase_merges=cfg.phrase_merges,
    )
    processor = build_processor(tokenizer, cfg)
    torch.manual_seed(cfg.seed)
    model = Qwen2_5_VLForConditionalGeneration(model_config(tokenizer, cfg))
    if cfg.number_tokens:
        init_number_embeddings(model, tokenizer)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "tiny_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    return out


def init_number_embeddings(model, tokenizer, frequencies: int = 16) -> None:
    """Give each number token a Fourier encoding of its value (plus the usual random part).

    The output layer shares these embeddings, so a hidden state that points at one coordinate
    also scores its neighbours high: the model starts out treating coordinates as quantities.
    """
    import math

    import torch

    emb = model.get_input_embeddings().weight
    ids = tokenizer.convert_tokens_to_ids(list(NUMBER_TOKENS))
    values = torch.tensor([float(t) for t in NUMBER_TOKENS])
    freqs = torch.logspace(math.log10(0.5), math.log10(50.0), frequencies)
    angles = 2 * math.pi * values[:, None] * freqs[None, :]
    features = torch.cat([angles.sin(), angles.cos()], dim=1)  # (1001, 2F)
    scale = emb.data.std() * math.sqrt(emb.shape[1] / features.shape[1])
    with torch.no_grad():
        emb[ids, : features.shape[1]] = features * scale
