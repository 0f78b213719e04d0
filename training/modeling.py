"""Loading a VLM and its processor for training, the LoRA setup, what both stages give TRL, and
the run record in the store."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from training.config import GRPOSettings, LoraSettings, SFTSettings

if TYPE_CHECKING:
    from db.store import Store

# Linear layers of the language model (Qwen2/2.5-VL, LLaVA-style and most HF VLM layouts).
LANGUAGE_LINEAR = r".*(language_model|text_model).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# PEFT matches a string target as a regex over the whole module name.
NAMED_TARGETS = {"all-linear": LANGUAGE_LINEAR, "all-linear+lm_head": f"({LANGUAGE_LINEAR}|(.*\\.)?lm_head)"}
VISION_PREFIXES = ("visual", "vision_tower", "vision_model")
LOG_EVERY_S = 30.0  # how often the run record gets the training log (a long log rewritten at every step is I/O)


def load_processor(model_path: str, image_max_pixels: int | None, *, only_lower: bool = False):
    """The model's processor with images capped at `image_max_pixels` (`only_lower`: a smaller
    limit of the processor's own is kept, as inference does)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_path)
    if image_max_pixels is not None:
        ip = processor.image_processor
        limit = int(image_max_pixels)
        if only_lower and ip.size.get("longest_edge"):
            limit = min(limit, int(ip.size["longest_edge"]))
        ip.size = {**dict(ip.size), "longest_edge": limit}
        ip.size["shortest_edge"] = min(ip.size.get("shortest_edge", 0), limit)
    return processor


def torch_dtype(bf16: bool | None):
    import torch

    if bf16 is None:
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16 else torch.float32


def load_model(model_path: str, bf16: bool | None = None):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch_dtype(bf16))


def trainable_model(s: SFTSettings | GRPOSettings):
    """The model to train, its vision tower frozen unless the settings train it."""
    model = load_model(s.model, s.bf16)
    if s.freeze_vision_tower:
        freeze_vision_tower(model)
    return model


def training_arguments(s: SFTSettings | GRPOSettings, **stage) -> dict:
    """The keywords of TRL's SFTConfig/GRPOConfig that both stages set alike, and the stage's own."""
    import torch

    return dict(
        output_dir=s.output_dir,
        learning_rate=s.learning_rate,
        num_train_epochs=s.num_train_epochs,
        max_steps=s.max_steps,
        logging_steps=s.logging_steps,
        save_steps=s.save_steps,
        seed=s.seed,
        bf16=torch_dtype(s.bf16) == torch.bfloat16,
        report_to=[],
        remove_unused_columns=False,
        gradient_checkpointing=s.gradient_checkpointing,
        run_name=s.run_name,
        **stage,
    )


def resume_checkpoint(s: SFTSettings | GRPOSettings) -> str | None:
    """The last checkpoint in `output_dir` when the settings ask to resume, else None."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(s.output_dir) if s.resume and Path(s.output_dir).is_dir() else None


def vision_parameters(model):
    for name, param in model.named_parameters():
        if any(part in VISION_PREFIXES for part in name.split(".")):
            yield name, param


def freeze_vision_tower(model) -> int:
    """Stop gradients into the vision encoder (and its merger); returns how many tensors were frozen."""
    frozen = 0
    for _, param in vision_parameters(model):
        param.requires_grad_(False)
        frozen += 1
    return frozen


def lora_config(settings: LoraSettings, task_type: str = "CAUSAL_LM"):
    """LoRA on a named target (`NAMED_TARGETS`, see `LoraSettings`), or on the modules given.
    The vision tower is trained (or frozen) as a whole, never adapted."""
    from peft import LoraConfig

    if settings.full_finetune:
        return None
    target = settings.lora_target_modules
    target = NAMED_TARGETS.get(target, target) if isinstance(target, str) else target
    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=target,
        task_type=task_type,
    )


class RunRecord:
    """The run's row in the store (when a DB is configured): created, updated, finished."""

    def __init__(self, db: str | None, kind_name: str, config: dict, name: str | None):
        self.store: Store | None = None
        self.run_id: str | None = None
        if db:
            from db.store import Store

            self.store = store = Store.open(db)
            self.run_id = run_id = store.create_run("training", {"stage": kind_name, **config}, name=name)
            store.update_run(run_id, status="running")
            # named at the start, so a killed run can be found (`sif runs`); written by the main process only
            print(f"run {run_id} started ({kind_name}, recorded in {db})", file=sys.stderr, flush=True)

    def update(self, **metrics) -> None:
        if self.store is not None and self.run_id is not None:
            self.store.update_run(self.run_id, metrics=metrics)

    def log_recorder(self, every_s: float = LOG_EVERY_S):
        """A TrainerCallback (`RunLogRecorder`) that mirrors the trainer's log history (loss, KL,
        each reward's mean: the numbers) into this record, for the workbench's training curves:
        at the first log, then at most every `every_s` seconds, and at the end of training."""
        from transformers import TrainerCallback

        record = self

        class RunLogRecorder(TrainerCallback):
            last = -math.inf

            def write(self, state):
                self.last = time.monotonic()
                history = [{k: v for k, v in e.items() if isinstance(v, (int, float))} for e in state.log_history]
                record.update(log_history=history)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if state.is_world_process_zero and time.monotonic() - self.last >= every_s:
                    self.write(state)

            def on_train_end(self, args, state, control, **kwargs):
                if state.is_world_process_zero:
                    self.write(state)

        return RunLogRecorder()

    def finish(self, status: str, **metrics) -> None:
        if self.store is not None and self.run_id is not None:
            self.store.update_run(self.run_id, status=status, metrics=metrics)
            self.store.close()
