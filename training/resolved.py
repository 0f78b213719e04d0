"""What the trainers are actually given: TRL's config, PEFT's, and the GRPO batch arithmetic.

TRL's GRPO batch settings count completions, not prompts: an optimizer step sees
`per_device_train_batch_size × num_processes × gradient_accumulation_steps` completions, and
each prompt brings `num_generations` of them. The reference ran 8 GPUs × 1 × 2 = 16 completions
= 2 prompts of 8 generations per step (about 2,000 steps over 200 samples × 20 epochs), so the
accumulation is derived from `prompts_per_step` and the number of processes:

    gradient_accumulation_steps = prompts_per_step × num_generations / (per_device_train_batch_size × num_processes)

which is 2 on 8 GPUs and 16 on one. `sif train sft|grpo --print-config` prints `resolved_config`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sif.errors import ConfigError
from training.config import GRPOSettings, SFTSettings


@dataclass(frozen=True)
class GRPOBatch:
    num_processes: int
    num_generations: int
    per_device_train_batch_size: int  # completions
    gradient_accumulation_steps: int

    @property
    def completions_per_step(self) -> int:
        return self.per_device_train_batch_size * self.num_processes * self.gradient_accumulation_steps

    @property
    def prompts_per_step(self) -> int:
        return self.completions_per_step // self.num_generations

    def explain(self) -> str:
        return (
            f"{self.per_device_train_batch_size} completion(s) × {self.num_processes} process(es) × "
            f"{self.gradient_accumulation_steps} accumulation step(s) = {self.completions_per_step} completions "
            f"= {self.prompts_per_step} prompt(s) × {self.num_generations} generations per optimizer step"
        )


def grpo_batch(s: GRPOSettings, num_processes: int) -> GRPOBatch:
    """TRL's batch settings for `s` on `num_processes` processes (see the module docstring)."""
    per_step = s.per_device_train_batch_size * num_processes
    ga = s.gradient_accumulation_steps
    if ga is None:
        completions = s.prompts_per_step * s.num_generations
        if completions % per_step:
            raise ConfigError(
                f"prompts_per_step {s.prompts_per_step} × num_generations {s.num_generations} = {completions} "
                f"completions per step cannot be split into per_device_train_batch_size "
                f"{s.per_device_train_batch_size} × {num_processes} process(es); change one of them or set "
                "gradient_accumulation_steps"
            )
        ga = completions // per_step
    batch = GRPOBatch(num_processes, s.num_generations, s.per_device_train_batch_size, ga)
    if batch.completions_per_step % s.num_generations:
        raise ConfigError(f"{batch.explain()}: not a whole number of prompts; change the batch settings")
    return batch


def current_processes() -> int:
    """How many processes this run has (accelerate's view: 1 unless started by `accelerate launch`)."""
    from accelerate import PartialState

    return PartialState().num_processes


def resolved_config(settings: SFTSettings | GRPOSettings, num_processes: int | None = None) -> dict:
    """The settings, the TRL config and the PEFT config a run would use, as plain data."""
    from training.modeling import lora_config

    n = current_processes() if num_processes is None else num_processes
    if isinstance(settings, GRPOSettings):
        from training.grpo import grpo_config
        from training.grpo_rewards import REWARD_NAMES

        weights = [float(settings.rewards.weights.get(name, 1.0)) for name in REWARD_NAMES]
        batch = grpo_batch(settings, n)
        trl = grpo_config(settings, weights, n)
        extra = {
            "batch": {
                **dataclasses.asdict(batch),
                "completions_per_step": batch.completions_per_step,
                "prompts_per_step": batch.prompts_per_step,
                "explained": batch.explain(),
            }
        }
    else:
        from training.sft import sft_config

        trl = sft_config(settings, settings.eval_ratio > 0)
        extra = {}
    peft = lora_config(settings)
    return {
        "stage": "grpo" if isinstance(settings, GRPOSettings) else "sft",
        "num_processes": n,
        **extra,
        "settings": dataclasses.asdict(settings),
        "trl": {k: v for k, v in sorted(trl.to_dict().items())},
        "peft": None if peft is None else peft.to_dict(),
    }
