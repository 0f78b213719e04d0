"""Shared fixtures of the training tests: one tiny model and one small synthetic store per session."""

from __future__ import annotations

from common.settings import build
from training.config import GRPOSettings, SFTSettings


def sft_settings(model, data, out, **extra) -> SFTSettings:
    base = dict(
        model=str(model),
        data=str(data.sft_dir),
        output_dir=str(out),
        full_finetune=True,
        freeze_vision_tower=False,
        image_max_pixels=None,
        max_steps=2,
        logging_steps=1,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        eval_ratio=0.0,
        gradient_checkpointing=False,
        trl={"save_strategy": "no", "disable_tqdm": True},
    )
    return build(SFTSettings, {**base, **extra})


def grpo_settings(model, data, out, **extra) -> GRPOSettings:
    base = dict(
        model=str(model),
        data=str(data.rl_file),
        output_dir=str(out),
        db=str(data.db),
        full_finetune=True,
        freeze_vision_tower=False,
        image_max_pixels=None,
        max_steps=1,
        logging_steps=1,
        num_generations=2,
        per_device_train_batch_size=4,
        max_completion_length=24,
        save_steps=1,
        rollouts_per_step=2,
        gradient_checkpointing=False,
        trl={"log_completions": False, "disable_tqdm": True},
    )
    return build(GRPOSettings, {**base, **extra})
