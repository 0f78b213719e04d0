"""Training on TRL: the tiny model, SFT, GRPO-SIF, the judge and adapter merging.

torch, transformers and TRL load inside the functions, so importing this package stays light.
"""

from training.config import GRPOSettings, JudgeSettings, SFTSettings
from training.grpo import run_grpo
from training.merge import merge_adapter
from training.sft import run_sft
from training.tiny_model import TinyModelConfig, build_tiny_model

__all__ = [
    "GRPOSettings",
    "JudgeSettings",
    "SFTSettings",
    "TinyModelConfig",
    "build_tiny_model",
    "merge_adapter",
    "run_grpo",
    "run_sft",
]
