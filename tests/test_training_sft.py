"""SFT on TRL's SFTTrainer with the tiny model: the loss falls; image tokens are never truncated."""

from __future__ import annotations

import json

import torch

from tests.support.training import sft_settings
from training.data import load_sft_rows, prompt_tokens, sft_path
from training.modeling import load_processor


def _fixed_batch_loss(trainer) -> float:
    batch = trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(4)])
    model = trainer.model
    model.eval()
    with torch.no_grad():
        return float(model(**batch.to(model.device)).loss)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_model, synth_data, tmp_path):
    from training.sft import build_sft_trainer

    settings = sft_settings(
        tiny_model,
        synth_data,
        tmp_path / "sft",
        max_steps=6,
        learning_rate=3e-3,
        per_device_train_batch_size=4,
        warmup_ratio=0.0,
        lr_scheduler_type="constant",
    )
    trainer, report = build_sft_trainer(settings)
    assert report.kept == len(trainer.train_dataset) > 4
    batch = trainer.data_collator([dict(trainer.train_dataset[i]) for i in range(2)])
    assert batch["image_grid_thw"].shape[0] == 4  # two images (RGB, depth) per sample
    labels = batch["labels"][0]
    assert (labels[batch["input_ids"][0] == trainer.model.config.image_token_id] == -100).all()  # prompt not trained
    before = _fixed_batch_loss(trainer)
    trainer.train()
    after = _fixed_batch_loss(trainer)
    assert after < before - 0.3, (before, after)


def test_overlong_samples_are_dropped_never_cut_inside_the_prompt(tiny_model, synth_data):
    processor = load_processor(str(tiny_model), None)
    first = json.loads(sft_path(synth_data.sft_dir).read_text().splitlines()[0])
    n_prompt = prompt_tokens(processor, first["prompt"], first["images"])
    text = processor.apply_chat_template(first["prompt"], tokenize=False, add_generation_prompt=True)
    from PIL import Image

    enc = processor(text=[text], images=[Image.open(p) for p in first["images"]], return_tensors="pt")
    assert n_prompt == enc["input_ids"].shape[1]  # the count used for filtering is exact

    rows, report = load_sft_rows(synth_data.sft_dir, processor, max_length=n_prompt, overlong="truncate")
    assert not any(r["sample_id"] == str(first["sample_id"]) for r in rows)
    assert report.skipped["prompt (with image tokens) longer than max_length"] >= 1
    rows, report = load_sft_rows(synth_data.sft_dir, processor, max_length=n_prompt + 20, overlong="drop")
    assert report.skipped["longer than max_length"] >= 1


def test_bad_records_are_skipped_with_their_line_and_field(tiny_model, synth_data, tmp_path):
    good = sft_path(synth_data.sft_dir).read_text().splitlines()[0]
    bad = json.loads(good)
    bad["images"] = [bad["images"][0], str(tmp_path / "missing.png")]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join([good, "{not json", json.dumps(bad), json.dumps({"prompt": []})]) + "\n")
    rows, report = load_sft_rows(path, load_processor(str(tiny_model), None), max_length=None)
    assert len(rows) == 1 and sum(report.skipped.values()) == 3
    assert any(f"{path}:3" in p and "images" in p for p in report.problems)
    assert any(f"{path}:4" in p and "'prompt'" in p for p in report.problems)
