"""`sif train grpo`: GRPO-SIF on TRL's GRPOTrainer with the four SIF rewards.

Defaults are the paper's (8 generations, β 0.04, LoRA 64/128/0.05, lr 1e-5, vision tower
frozen), then the reference's (per-sequence GRPO loss, 2 prompts per optimizer step, LoRA on
the output head too; see training/resolved.py for the batch arithmetic). The progressive answer reward keeps its state in OUTPUT_DIR/answer_progress.sqlite
(shared by all processes, trimmed on resume) and mirrors it into the run's record in the store
at every save; a sample of rollouts goes to the store as `rollout` revisions under the run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import as_dict
from training.config import GRPOSettings
from training.data import DataReport, load_rl_rows, to_dataset
from training.grpo_rewards import REWARD_NAMES, sif_reward_functions
from training.judge import make_judge
from training.launch import process_state, train_and_save
from training.modeling import (
    RunRecord,
    load_processor,
    lora_config,
    resume_checkpoint,
    trainable_model,
    training_arguments,
)
from training.progress import PROGRESS_FILE, SqliteProgressStore
from training.rollouts import RolloutRecorder

log = logging.getLogger(__name__)


def grpo_config(s: GRPOSettings, weights: list[float], num_processes: int | None = None):
    """TRL's GRPOConfig for `s`, its batch derived for `num_processes` (default: this run's)."""
    from trl import GRPOConfig

    from training.resolved import current_processes, grpo_batch

    batch = grpo_batch(s, current_processes() if num_processes is None else num_processes)
    kwargs = training_arguments(
        s,
        num_generations=s.num_generations,
        beta=s.beta,
        loss_type=s.loss_type,
        max_completion_length=s.max_completion_length,
        temperature=s.temperature,
        per_device_train_batch_size=batch.per_device_train_batch_size,
        gradient_accumulation_steps=batch.gradient_accumulation_steps,
        reward_weights=weights,
        use_vllm=s.use_vllm,
        vllm_mode=s.vllm_mode,
        log_completions=True,
        num_completions_to_print=2,
    )
    if s.vllm_server_base_url:
        kwargs["vllm_server_base_url"] = s.vllm_server_base_url
    if not {"generation_batch_size", "steps_per_generation"} & set(s.trl):
        kwargs["generation_batch_size"] = batch.completions_per_step  # one step's groups, generated at once
    kwargs.update(s.trl)
    return GRPOConfig(**kwargs)


def checkpoint_step(checkpoint: str | None) -> int:
    if checkpoint is None:
        return 0
    return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"])


def _progress_callback(progress: SqliteProgressStore, record: RunRecord):
    from transformers import TrainerCallback

    class ProgressToStore(TrainerCallback):
        """Mirror the progressive-answer state into the run record at every save and at the end."""

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                record.update(answer_progress=progress.snapshot(), step=state.global_step)

        on_train_end = on_save

    return ProgressToStore()


@dataclass
class GRPOSetup:
    trainer: Any  # trl.GRPOTrainer (TRL is imported only when training)
    progress: SqliteProgressStore
    judge: Any
    report: DataReport
    checkpoint: str | None  # where training resumes from
    rollouts: RolloutRecorder


def build_grpo_trainer(s: GRPOSettings, record: RunRecord, callbacks=()) -> GRPOSetup:
    """The configured trainer with its progress store, judge, data report and rollout recorder;
    resume is prepared. In a launched process, `record` is the main process's alone."""
    from trl import GRPOTrainer

    state = process_state()
    processor = load_processor(s.model, s.image_max_pixels)
    flat = None if s.depth_input else Path(s.output_dir) / "flat_depth"
    rows, report = load_rl_rows(s.data, s.suffix, flat_depth_dir=flat)
    report.log("RL", s.data)
    progress = SqliteProgressStore(Path(s.output_dir) / PROGRESS_FILE, state.process_index)
    checkpoint = resume_checkpoint(s)
    if state.is_main_process:
        dropped = progress.drop_from(checkpoint_step(checkpoint))
        if dropped:
            log.info("answer progress: dropped %d rows recorded after the checkpoint", dropped)
    state.wait_for_everyone()
    model = trainable_model(s)
    judge = make_judge(s.judge)
    funcs, weights = sif_reward_functions(s, judge, progress)
    rollouts = RolloutRecorder(
        REWARD_NAMES,
        weights,
        per_step=s.rollouts_per_step if s.db else 0,
        every=s.logging_steps,
        db=s.db,
        run_id=record.run_id,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[rollouts.feeding(name, func) for name, func in zip(REWARD_NAMES, funcs)],
        args=grpo_config(s, weights),
        train_dataset=to_dataset(rows),
        processing_class=processor,
        peft_config=lora_config(s),
        callbacks=[_progress_callback(progress, record), *callbacks],
    )
    return GRPOSetup(trainer, progress, judge, report, checkpoint, rollouts)


def run_grpo(s: GRPOSettings, callbacks=()) -> Path:
    """Train with GRPO-SIF and save the model (or adapter) and processor to `output_dir`.

    Launched on several processes, each runs this; the main process alone keeps the run record,
    writes rollouts and saves the processor."""
    state = process_state()
    record = RunRecord(s.db if state.is_main_process else None, "grpo", as_dict(s), s.run_name)
    try:
        setup = build_grpo_trainer(s, record, [*callbacks, record.log_recorder()])
        record.update(data=setup.report.summary(), processes=setup.trainer.accelerator.num_processes)
        trained = train_and_save(setup.trainer, s.output_dir, setup.checkpoint)
        failures = _judge_failures(setup.judge)
    except BaseException as exc:
        record.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    record.finish(
        "done",
        **trained,
        rollouts_written=setup.rollouts.written,
        judge_failures=failures,
        answer_progress=setup.progress.snapshot(),
    )
    setup.rollouts.close()
    setup.progress.close()
    return Path(s.output_dir)


def _judge_failures(judge) -> dict[str, int]:
    """The judge's failures by kind, summed over every process (each judged its own share)."""
    from accelerate.utils import gather_object

    total: Counter = Counter()
    for failures in gather_object([dict(judge.failures)]):
        total.update(failures)
    return dict(total)
