"""Training settings: shipped YAML configs carry the paper's defaults; --set overrides; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from common.settings import load_settings, parse_overrides
from training.config import GRPOSettings, SFTSettings

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_shipped_configs_hold_the_paper_settings():
    sft = load_settings(SFTSettings, CONFIGS / "sft.yaml")
    assert (sft.lora_r, sft.learning_rate, sft.num_train_epochs, sft.lr_scheduler_type) == (8, 1e-4, 3, "cosine")
    assert (sft.warmup_ratio, sft.max_length, sft.image_max_pixels, sft.full_finetune) == (0.1, 2048, 262144, False)
    grpo = load_settings(GRPOSettings, CONFIGS / "grpo.yaml")
    assert (grpo.num_generations, grpo.beta, grpo.lora_r, grpo.lora_alpha, grpo.lora_dropout) == (
        8,
        0.04,
        64,
        128,
        0.05,
    )
    assert (grpo.learning_rate, grpo.max_completion_length, grpo.freeze_vision_tower) == (1e-5, 2048, True)
    assert grpo.rewards.weights == {"format": 1.0, "answer": 1.0, "bbox": 1.0, "depth": 1.0}
    assert grpo.judge.kind == "rule"
    for name in ("ddp", "zero2", "zero3"):
        cfg = yaml.safe_load((CONFIGS / "accelerate" / f"{name}.yaml").read_text())
        assert cfg["distributed_type"] == ("MULTI_GPU" if name == "ddp" else "DEEPSPEED")
        if name != "ddp":
            assert cfg["deepspeed_config"]["zero_stage"] == int(name[-1])


def test_set_overrides_nested_settings_and_types():
    assert parse_overrides(["a.b=1", "c=x", "d=[1, 2]", "e=null"]) == {"a": {"b": 1}, "c": "x", "d": [1, 2], "e": None}
    s = load_settings(
        GRPOSettings,
        CONFIGS / "grpo.yaml",
        ["judge.kind=openai", "rewards.weights.depth=0.5", "num_generations=4", "trl.top_p=0.9"],
    )
    assert s.judge.kind == "openai" and s.judge.timeout_s == 60  # the rest of the nested section stays
    assert s.rewards.weights == {"format": 1.0, "answer": 1.0, "bbox": 1.0, "depth": 0.5}
    assert s.num_generations == 4 and s.trl["top_p"] == 0.9


def test_unknown_or_missing_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"GRPOSettings.judge: unknown setting\(s\) colour"):
        load_settings(GRPOSettings, CONFIGS / "grpo.yaml", ["judge.colour=red"])
    with pytest.raises(ValueError, match="expected key=value"):
        parse_overrides(["novalue"])
    with pytest.raises(ValueError, match="model: required"):
        load_settings(SFTSettings, None, ["data=x"])
    result = CliRunner().invoke(app, ["train", "sft", "--config", str(CONFIGS / "sft.yaml"), "--set", "lora_rank=4"])
    assert result.exit_code == 1 and "unknown setting(s) lora_rank" in result.output


def test_help_lists_the_training_commands():
    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for command in ("sft", "grpo", "demo-run"):
        assert command in result.output
    assert CliRunner().invoke(app, ["model", "tiny", "--help"]).exit_code == 0
