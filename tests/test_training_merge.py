"""LoRA SFT on the tiny model, then `sif merge`: the merged model loads and generates."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from cli.main import app
from tests.support.training import sft_settings


def test_merge_yields_a_model_that_loads_and_generates(tiny_model, synth_data, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from evaluation.model_eval import generate_chains
    from training.sft import run_sft

    adapter = run_sft(
        sft_settings(
            tiny_model,
            synth_data,
            tmp_path / "lora",
            full_finetune=False,
            lora_r=4,
            lora_alpha=8,
            learning_rate=1e-2,
            max_steps=2,
        )
    )
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "model.safetensors").exists()
    out = tmp_path / "merged"
    result = CliRunner().invoke(app, ["merge", "--base", str(tiny_model), "--adapter", str(adapter), "--out", str(out)])
    assert result.exit_code == 0, result.output
    merged = AutoModelForImageTextToText.from_pretrained(out)
    base = AutoModelForImageTextToText.from_pretrained(tiny_model)
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[name], base.state_dict()[name])  # the adapter was folded in
    assert not any("lora" in k for k in merged.state_dict())
    row = json.loads(synth_data.test_file.read_text().splitlines()[0])
    [text] = generate_chains(
        merged,
        AutoProcessor.from_pretrained(out),
        [(row["image"], row["depth_image"], row["question"])],
        max_new_tokens=8,
    )
    assert isinstance(text, str)


def test_merge_refuses_a_folder_without_an_adapter(tiny_model, tmp_path):
    result = CliRunner().invoke(
        app, ["merge", "--base", str(tiny_model), "--adapter", str(tiny_model), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 1 and "adapter_config.json" in result.output
