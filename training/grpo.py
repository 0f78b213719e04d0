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
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from common.settings import as_dict
from sif.rewards import completion_text
from training.config import GRPOSettings
from training.data import load_rl_rows, to_dataset
from training.grpo_rewards import REWARD_NAMES, sif_reward_functions
from training.judge import make_judge
from training.modeling import RunRecord, freeze_vision_tower, load_model, load_processor, lora_config, torch_dtype
from training.progress import PROGRESS_FILE, SqliteProgressStore

log = logging.getLogger(__name__)


class RolloutSink:
    """Writes a few completions per logging step to the store as `rollout` revisions of the run."""

    def __init__(self, db: str, run_id: str, per_step: int, every: int):
        from db.store import Store

        self.store = Store.open(db)
        self.run_id, self.per_step, self.every = run_id, per_step, max(1, every)
        self.written = 0
        self.failed = 0
        self._last_step = -1

    def record(self, inputs, completions, rewards, step: int, weights) -> None:
        from db.store import StoreError

        if self.per_step <= 0 or step % self.every or step == self._last_step:
            return
        self._last_step = step
        for example, completion, row in list(zip(inputs, completions, rewards.tolist()))[: self.per_step]:
            parts = ", ".join(f"{n}={v:.3f}" for n, v in zip(REWARD_NAMES, row))
            total = sum(w * v for w, v in zip(weights, row) if v == v)  # NaN (skipped) rewards count 0
            try:
                self.store.add_revision(
                    int(example["sample_id"]),
                    completion_text(completion),
                    origin="rollout",
                    author="grpo",
                    run_id=self.run_id,
                    note=f"GRPO step {step}: total={total:.3f} ({parts})",
                )
                self.written += 1
            except (StoreError, ValueError, sqlite3.Error) as exc:  # a rollout log must not stop training
                self.failed += 1
                log.warning("rollout of sample %s not written to the store: %s", example.get("sample_id"), exc)


def _trainer_class():
    from trl import GRPOTrainer

    class SifGRPOTrainer(GRPOTrainer):
        """GRPOTrainer that hands each process's scored rollouts to a `RolloutSink`."""

        rollout_sink: RolloutSink | None = None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            if self.rollout_sink is not None:
                start = self.accelerator.process_index * len(prompts)
                local = rewards[start : start + len(prompts)].cpu()
                self.rollout_sink.record(
                    inputs, completions, local, self.state.global_step, self.reward_weights.tolist()
                )
            return rewards

    return SifGRPOTrainer


def grpo_config(s: GRPOSettings, weights: list[float], num_processes: int | None = None):
    """TRL's GRPOConfig for `s`, its batch derived for `num_processes` (default: this run's)."""
    import torch
    from trl import GRPOConfig

    from training.resolved import current_processes, grpo_batch

    batch = grpo_batch(s, current_processes() if num_processes is None else num_processes)
    kwargs = dict(
        output_dir=s.output_dir,
        learning_rate=s.learning_rate,
        num_train_epochs=s.num_train_epochs,
        max_steps=s.max_steps,
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
        logging_steps=s.logging_steps,
        save_steps=s.save_steps,
        seed=s.seed,
        bf16=torch_dtype(s.bf16) == torch.bfloat16,
        report_to=[],
        log_completions=True,
        num_completions_to_print=2,
        remove_unused_columns=False,
        run_name=s.run_name,
        gradient_checkpointing=s.gradient_checkpointing,
    )
    if s.vllm_server_base_url:
        kwargs["vllm_server_base_url"] = s.vllm_server_base_url
    if not {"generation_batch_size", "steps_per_generation"} & set(s.trl):
        kwargs["generation_batch_size"] = batch.completions_per_step  # one step's groups, generated at once
    kwargs.update(s.trl)
    return GRPOConfig(**kwargs)


def resume_checkpoint(s: GRPOSettings) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(s.output_dir) if s.resume and Path(s.output_dir).is_dir() else None


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
    trainer: object
    progress: SqliteProgressStore
    judge: object
    report: object
    checkpoint: str | None  # where training resumes from


def build_grpo_trainer(s: GRPOSettings, record: RunRecord, callbacks=()) -> GRPOSetup:
    """The configured trainer with its progress store, judge and data report; resume is prepared."""
    from accelerate import PartialState

    state = PartialState()
    processor = load_processor(s.model, s.image_max_pixels)
    rows, report = load_rl_rows(s.data, s.suffix)
    log.info("RL data %s: %s", s.data, report.summary())
    for problem in report.problems:
        log.warning("skipped %s", problem)
    progress = SqliteProgressStore(Path(s.output_dir) / PROGRESS_FILE, state.process_index)
    checkpoint = resume_checkpoint(s)
    if state.is_main_process:
        dropped = progress.drop_from(checkpoint_step(checkpoint))
        if dropped:
            log.info("answer progress: dropped %d rows recorded after the checkpoint", dropped)
    state.wait_for_everyone()
    model = load_model(s.model, s.bf16)
    if s.freeze_vision_tower:
        freeze_vision_tower(model)
    judge = make_judge(s.judge)
    funcs, weights = sif_reward_functions(s, judge, progress)
    trainer = _trainer_class()(
        model=model,
        reward_funcs=funcs,
        args=grpo_config(s, weights),
        train_dataset=to_dataset(rows),
        processing_class=processor,
        peft_config=lora_config(s),
        callbacks=[_progress_callback(progress, record), *callbacks],
    )
    if record.run_id is not None:
        trainer.rollout_sink = RolloutSink(s.db, record.run_id, s.rollouts_per_step, s.logging_steps)
    return GRPOSetup(trainer, progress, judge, report, checkpoint)


def run_grpo(s: GRPOSettings, callbacks=()) -> Path:
    """Train with GRPO-SIF and save the model (or adapter) and processor to `output_dir`."""
    record = RunRecord(s.db, "grpo", as_dict(s), s.run_name)
    try:
        setup = build_grpo_trainer(s, record, callbacks)
        record.update(data=setup.report.summary())
        result = setup.trainer.train(resume_from_checkpoint=setup.checkpoint)
        setup.trainer.save_model(s.output_dir)
        setup.trainer.processing_class.save_pretrained(s.output_dir)
    except BaseException as exc:
        record.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    sink = setup.trainer.rollout_sink
    record.finish(
        "done",
        train_loss=result.training_loss,
        steps=result.global_step,
        output_dir=s.output_dir,
        rollouts_written=sink.written if sink else 0,
        judge_failures=dict(setup.judge.failures),
        answer_progress=setup.progress.snapshot(),
    )
    setup.progress.close()
    return Path(s.output_dir)
