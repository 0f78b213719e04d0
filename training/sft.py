"""`sif train sft`: TRL's SFTTrainer on the store's prompt/completion export (RGB + depth images).

LoRA rank 8 on the language model's linear layers by default (PAPER.md), or a full fine-tune.
Multi-GPU / multi-node runs go through `accelerate launch` with a config from configs/accelerate/
(`sif train sft --gpus N` starts it: training/launch.py).
"""

from __future__ import annotations

import random
from pathlib import Path

from common.settings import as_dict
from training.config import SFTSettings
from training.data import load_sft_rows, to_dataset
from training.launch import process_state, train_and_save
from training.modeling import (
    RunRecord,
    load_processor,
    lora_config,
    resume_checkpoint,
    trainable_model,
    training_arguments,
)


def sft_config(s: SFTSettings, has_eval: bool):
    from trl import SFTConfig

    kwargs = training_arguments(
        s,
        lr_scheduler_type=s.lr_scheduler_type,
        warmup_steps=s.warmup_ratio,  # a float < 1 is a ratio
        max_length=s.max_length,
        per_device_train_batch_size=s.per_device_train_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        eval_strategy="epoch" if has_eval else "no",
    )
    kwargs.update(s.trl)
    return SFTConfig(**kwargs)


def split_rows(rows: list[dict], eval_ratio: float, seed: int) -> tuple[list[dict], list[dict]]:
    if eval_ratio <= 0 or len(rows) < 10:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(len(rows) * eval_ratio))
    return [rows[i] for i in order[n_eval:]], [rows[i] for i in order[:n_eval]]


def build_sft_trainer(s: SFTSettings, callbacks=()):
    """The configured SFTTrainer (and the data report), ready for `.train()`."""
    from trl import SFTTrainer

    processor = load_processor(s.model, s.image_max_pixels)
    rows, report = load_sft_rows(s.data, processor, s.max_length, s.overlong)
    report.log("SFT", s.data)
    train_rows, eval_rows = split_rows(rows, s.eval_ratio, s.seed)
    trainer = SFTTrainer(
        model=trainable_model(s),
        args=sft_config(s, bool(eval_rows)),
        train_dataset=to_dataset(train_rows),
        eval_dataset=to_dataset(eval_rows) if eval_rows else None,
        processing_class=processor,
        peft_config=lora_config(s),
        callbacks=list(callbacks),
    )
    return trainer, report


def run_sft(s: SFTSettings, callbacks=()) -> Path:
    """Train, save the model (or adapter) and processor to `output_dir`; returns that folder.

    Launched on several processes, each runs this; the main process alone keeps the run record
    and saves the processor."""
    state = process_state()
    record = RunRecord(s.db if state.is_main_process else None, "sft", as_dict(s), s.run_name)
    try:
        trainer, report = build_sft_trainer(s, [*callbacks, record.log_recorder()])
        record.update(data=report.summary(), processes=trainer.accelerator.num_processes)
        trained = train_and_save(trainer, s.output_dir, resume_checkpoint(s))
    except BaseException as exc:
        record.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    record.finish("done", **trained)
    return Path(s.output_dir)
