"""The training defaults are the paper's, then the reference's: each row of docs/defaults.md's
table equals what `sif train … --print-config` resolves (GRPO on 8 processes), for the settings'
own defaults and for the shipped configs; the GRPO batch arithmetic; LoRA on `lm_head`."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from common.settings import DEFAULT_DEPTH_MODEL, build, depth_model_id, load_settings, read_settings
from datagen.generation import GenerateConfig
from sif.errors import ConfigError
from training.config import GRPOSettings, SFTSettings
from training.resolved import grpo_batch, resolved_config

ROOT = Path(__file__).resolve().parent.parent
STAGES = {"sft": SFTSettings, "grpo": GRPOSettings}


def _table() -> list[list[str]]:
    text = (ROOT / "docs" / "defaults.md").read_text()
    body = text[text.index("<!-- defaults:begin -->") : text.index("<!-- defaults:end -->")]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in body.splitlines()]
    return [r for r in rows if len(r) == 5 and r[0].startswith("`")]


ROWS = _table()
LITERAL = re.compile(r"^`([^`]*)`$")


@pytest.fixture(scope="module")
def resolved():
    """Stage → (from the settings' defaults, from the shipped configs/STAGE.yaml)."""
    return {
        stage: tuple(
            resolved_config(build(cls, read_settings(path)), num_processes=8)
            for path in (None, ROOT / "configs" / f"{stage}.yaml")
        )
        for stage, cls in STAGES.items()
    }


def _lookup(config: dict, path: str):
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def test_the_table_covers_every_stage():
    stages = {row[0].strip("`").split(":")[0] for row in ROWS}
    assert stages == {"sft", "grpo", "generate", "import viscot"} and len(ROWS) >= 40


@pytest.mark.parametrize("row", ROWS, ids=[r[0].strip("`") for r in ROWS])
def test_each_documented_default_is_the_resolved_one(row, resolved):
    stage, path = (part.strip() for part in row[0].strip("`").split(":", 1))
    ours = LITERAL.match(row[3])
    if stage in STAGES and ours:
        expected = yaml.safe_load(ours.group(1))
        for config in resolved[stage]:  # the settings' defaults, then the shipped YAML
            assert _lookup(config, path) == expected, (row[0], config is resolved[stage][1])
    elif stage == "generate":
        assert dataclasses.asdict(GenerateConfig())[path] == yaml.safe_load(ours.group(1))
    elif path == "judge prompt":
        from training.judge import JUDGE_INSTRUCTION

        assert "how close the model's answer is to the reference answer, from 0 to 1" in JUDGE_INSTRUCTION
        assert "the closer it comes, the higher the score" in JUDGE_INSTRUCTION
    elif stage == "import viscot":
        from db.recipes import RECIPES

        assert RECIPES == ("paper",)
    else:
        pytest.fail(f"row {row[0]} has no literal default to check")


@pytest.mark.parametrize("processes, accumulation", [(1, 16), (2, 8), (4, 4), (8, 2), (16, 1)])
def test_two_prompts_of_eight_per_optimizer_step_on_any_number_of_processes(processes, accumulation):
    batch = grpo_batch(GRPOSettings(), processes)
    assert (batch.per_device_train_batch_size, batch.gradient_accumulation_steps) == (1, accumulation)
    assert (batch.completions_per_step, batch.prompts_per_step) == (16, 2)
    assert "= 16 completions = 2 prompt(s) × 8 generations" in batch.explain()


def test_batch_settings_that_do_not_divide_are_refused_and_explicit_accumulation_wins():
    with pytest.raises(ConfigError, match="cannot be split into per_device_train_batch_size 1 × 3 process"):
        grpo_batch(GRPOSettings(), 3)
    explicit = grpo_batch(GRPOSettings(gradient_accumulation_steps=4), 8)
    assert (explicit.completions_per_step, explicit.prompts_per_step) == (32, 4)
    with pytest.raises(ConfigError, match="not a whole number of prompts"):
        grpo_batch(GRPOSettings(gradient_accumulation_steps=3), 1)


def test_trl_gets_the_step_as_one_generation_batch():
    config = resolved_config(GRPOSettings(), num_processes=1)["trl"]
    assert (config["generation_batch_size"], config["gradient_accumulation_steps"]) == (16, 16)
    own = resolved_config(GRPOSettings(trl={"steps_per_generation": 8}), num_processes=1)["trl"]
    assert (own["steps_per_generation"], own["generation_batch_size"]) == (8, 8)  # a TRL setting under trl: wins


def test_depth_model_default_is_large_with_small_by_name():
    assert DEFAULT_DEPTH_MODEL == depth_model_id("large") == "depth-anything/Depth-Anything-V2-Large-hf"
    assert depth_model_id("small") == "depth-anything/Depth-Anything-V2-Small-hf"
    assert depth_model_id("tiny") == "tiny" and depth_model_id("/models/da") == "/models/da"


def test_print_config_prints_what_trl_and_peft_get():
    runner = CliRunner()
    result = runner.invoke(app, ["train", "grpo", "--print-config", "--set", "lora_r=16"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output[result.output.index("{") :])
    assert printed["stage"] == "grpo" and printed["batch"]["prompts_per_step"] == 2
    assert printed["trl"]["loss_type"] == "grpo" and printed["peft"]["r"] == 16
    assert "lm_head" not in printed["peft"]["target_modules"]
    sft = runner.invoke(app, ["train", "sft", "--print-config", "--config", str(ROOT / "configs" / "sft.yaml")])
    assert sft.exit_code == 0, sft.output
    printed = json.loads(sft.output[sft.output.index("{") :])
    assert printed["trl"]["max_length"] == 2048 and printed["peft"]["lora_dropout"] == 0.0
    bad = runner.invoke(app, ["train", "grpo", "--print-config", "--set", "lora_rank=4"])
    assert bad.exit_code == 1 and "unknown setting(s) lora_rank" in bad.output


def test_grpo_lora_adapts_the_language_model_never_lm_head_or_the_vision_tower(tiny_model):
    """The reference also adapted lm_head; TRL's GRPOTrainer refuses that (it computes log-probs
    from lm_head.weight), so asking for it is a clear settings error, before any model loads."""
    from peft import get_peft_model

    from training.modeling import load_model, lora_config

    adapted = {
        name.removesuffix(".lora_A.default")
        for name, _ in get_peft_model(load_model(str(tiny_model)), lora_config(GRPOSettings())).named_modules()
        if name.endswith(".lora_A.default")
    }
    assert not any(name.endswith("lm_head") for name in adapted)
    with pytest.raises(ConfigError, match="refuses a LoRA adapter on lm_head"):
        GRPOSettings(lora_target_modules="all-linear+lm_head")
    assert GRPOSettings(lora_target_modules="all-linear+lm_head", full_finetune=True).full_finetune
    assert any(name.endswith("mlp.down_proj") for name in adapted) and any("q_proj" in n for n in adapted)
    assert not any("visual" in name for name in adapted)
    sft = {
        name
        for name, _ in get_peft_model(load_model(str(tiny_model)), lora_config(SFTSettings())).named_modules()
        if name.endswith(".lora_A.default")
    }
    assert sft and not any("lm_head" in name for name in sft)


def test_shipped_configs_load():
    for stage, cls in STAGES.items():
        assert load_settings(cls, ROOT / "configs" / f"{stage}.yaml").model
