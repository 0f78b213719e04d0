"""Training settings: dataclasses read from YAML (`common.settings`) with `--set` overrides.

Defaults are the paper's (PAPER.md), then the public reference's where the paper says nothing
(docs/defaults.md lists each with its source; `sif train … --print-config` shows what
TRL and PEFT receive). `trl:` passes any further keyword straight to TRL's `SFTConfig` /
`GRPOConfig`, so nothing TRL offers is hidden behind these files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sif.errors import ConfigError
from sif.geometry import PairDenominator


@dataclass
class LoraSettings:
    """PEFT LoRA (`full_finetune` trains all weights instead). Targets: `all-linear`, the language
    model's linear layers (LLaMA-Factory's `all`, the reference SFT); `all-linear+lm_head`, those
    and the output head (every linear layer outside the vision tower: the reference GRPO); or
    module names / a regex for PEFT."""

    full_finetune: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: str | list[str] = "all-linear"


@dataclass
class SFTSettings(LoraSettings):
    model: str = ""
    data: str = ""  # `sif export sft --format trl` output: DIR or DIR/sif_sft.jsonl
    output_dir: str = "runs/sft"
    db: str | None = None  # record the run in this store
    run_name: str | None = None
    learning_rate: float = 1e-4
    num_train_epochs: float = 3.0
    max_steps: int = -1
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.1
    max_length: int = 2048
    overlong: str = "drop"  # samples longer than max_length: drop, or truncate (the completion only)
    image_max_pixels: int | None = 262144  # None keeps the processor's own setting
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 8
    eval_ratio: float = 0.1
    freeze_vision_tower: bool = True
    gradient_checkpointing: bool = True  # memory for compute; off for tiny models
    logging_steps: int = 10
    save_steps: int = 500
    seed: int = 42
    bf16: bool | None = None  # None: on when the GPU supports it
    resume: bool = False
    trl: dict[str, Any] = field(default_factory=dict)


@dataclass
class JudgeSettings:
    """Who scores a predicted answer against the ground truth: `rule` (offline) or `openai`."""

    kind: str = "rule"
    base_url: str | None = None  # default: $SIF_OPENAI_BASE_URL
    model: str | None = None  # default: $SIF_OPENAI_MODEL
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 1.0
    concurrency: int = 16
    send_image: bool = True  # the image too (as the reference), unless the endpoint refuses images
    on_failure: str = "rule"  # rule: score with the rule-based scorer; skip: leave the answer reward out


@dataclass
class RewardSettings:
    weights: dict[str, float] = field(default_factory=lambda: {"format": 1.0, "answer": 1.0, "bbox": 1.0, "depth": 1.0})
    answer_positive_only: bool = False  # the reference's variants (FORMATS §5)
    bbox_positive_only: bool = False
    depth_fractional: bool = False
    depth_tolerance: float = 0.1
    depth_floor: float = 0.0  # an allowance the depth tolerance never drops below (0.02 forgives d_gt ≈ 0)
    pair_denominator: PairDenominator = "min"


@dataclass
class GRPOSettings(LoraSettings):
    model: str = ""
    data: str = ""  # `sif export rl` JSONL
    output_dir: str = "runs/grpo"
    db: str | None = None  # record the run, its progress state and rollouts in this store
    run_name: str | None = None
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    # The reference also adapted lm_head; TRL's GRPOTrainer computes log-probabilities from
    # lm_head.weight directly and refuses an adapter there, so GRPO adapts the other linear layers.
    lora_target_modules: str | list[str] = "all-linear"
    suffix: str = "sif"  # sif: the SFT prompt; rl: the reference RL prompt (no "with depth")
    depth_input: bool = True  # False: the model sees a flat grey picture for the depth image (ablation)
    num_generations: int = 8
    beta: float = 0.04
    loss_type: str = "grpo"  # per-sequence mean, as GRPO; TRL's others (dapo, dr_grpo, bnpo, …) are options
    learning_rate: float = 1e-5
    num_train_epochs: float = 20.0
    max_steps: int = -1
    max_completion_length: int = 2048
    temperature: float = 1.0
    # Prompts per optimizer step over all processes, each with num_generations completions: the
    # reference's 8 GPUs × 1 completion × 2 accumulation steps = 16 completions = 2 prompts of 8.
    prompts_per_step: int = 2
    per_device_train_batch_size: int = 1  # completions per device per forward pass (TRL counts completions)
    gradient_accumulation_steps: int | None = None  # None: prompts_per_step × num_generations / (batch × processes)
    image_max_pixels: int | None = None  # None: the processor's own (Qwen2.5-VL: 12,845,056), as the reference
    freeze_vision_tower: bool = True
    gradient_checkpointing: bool = True
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # or server (`trl vllm-serve`)
    vllm_server_base_url: str | None = None
    logging_steps: int = 1
    save_steps: int = 50
    rollouts_per_step: int = 2  # completions written to the store as `rollout` revisions each logging step
    seed: int = 42
    bf16: bool | None = None
    resume: bool = False
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    rewards: RewardSettings = field(default_factory=RewardSettings)
    trl: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        targets = [self.lora_target_modules] if isinstance(self.lora_target_modules, str) else self.lora_target_modules
        if not self.full_finetune and any("lm_head" in str(t) for t in targets):
            raise ConfigError(
                "lora_target_modules: TRL's GRPOTrainer computes log-probabilities from lm_head.weight directly "
                "and refuses a LoRA adapter on lm_head; use all-linear (or full_finetune: true)"
            )
