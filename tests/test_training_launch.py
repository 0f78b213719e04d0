"""`sif train --gpus/--nodes/--cpu-processes` starts itself through `accelerate launch` with a shipped config,
and the shipped accelerate/DeepSpeed configs carry what TRL and PEFT need."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import launch_command_parser
from accelerate.utils import DeepSpeedPlugin
from typer.testing import CliRunner

from cli.main import app
from sif.errors import ConfigError
from training.launch import ACCELERATE_CONFIGS, STRATEGIES, LaunchOptions, check_can_run, launch_command, visible_gpus

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TRAIN_ARGS = ["--config", "configs/grpo.yaml", "--set", "num_generations=4"]


def accelerate_args(argv: list[str]):
    """The command line read by accelerate's own parser, as `accelerate launch` reads it."""
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    return launch_command_parser().parse_args(argv[3:])


def test_cpu_processes_launch_the_same_command_in_every_process():
    launch = launch_command("grpo", TRAIN_ARGS, LaunchOptions(cpu_processes=2))
    args = accelerate_args(launch.argv)
    assert Path(args.config_file) == ACCELERATE_CONFIGS / "ddp.yaml"
    assert (args.num_processes, args.num_machines, args.machine_rank) == (2, 1, 0)
    assert args.module and args.training_script == "cli"
    assert args.training_script_args == ["train", "grpo", *TRAIN_ARGS]  # each process trains in-process
    assert launch.env == {"ACCELERATE_USE_CPU": "true"} and args.mixed_precision == "no"  # gloo, no bf16 autocast


def test_several_nodes_name_the_main_node_and_count_every_process():
    options = LaunchOptions(gpus=8, strategy="zero3", nodes=2, node_rank=1, main_address="10.0.0.1", main_port=29501)
    launch = launch_command("sft", [], options)
    args = accelerate_args(launch.argv)
    assert Path(args.config_file) == ACCELERATE_CONFIGS / "zero3.yaml"
    assert (args.num_processes, args.num_machines, args.machine_rank) == (16, 2, 1)
    assert (args.main_process_ip, args.main_process_port) == ("10.0.0.1", 29501)
    assert launch.env == {} and args.mixed_precision is None  # the config's bf16 applies


def test_one_gpu_or_none_trains_in_this_process():
    assert launch_command("sft", [], LaunchOptions(gpus=1)) is None
    assert launch_command("sft", [], LaunchOptions(gpus=0)) is None
    assert launch_command("sft", [], LaunchOptions(cpu_processes=1)) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (LaunchOptions(strategy="zero4"), "expected one of ddp, zero2, zero3"),
        (LaunchOptions(gpus=2, nodes=2, node_rank=2, main_address="h"), "--node-rank 2 with --nodes 2"),
        (LaunchOptions(gpus=2, nodes=2), "needs --main-address"),
        (LaunchOptions(cpu_processes=2, strategy="zero2"), "needs GPUs"),
    ],
)
def test_impossible_launches_are_clear_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        launch_command("sft", [], options)


@pytest.mark.skipif(visible_gpus() > 0, reason="checks a machine without GPUs")
def test_asking_for_gpus_that_are_not_there_says_so_before_starting():
    with pytest.raises(ConfigError, match=r"--gpus 2: 0 GPU\(s\) visible.*--cpu-processes"):
        check_can_run(LaunchOptions(gpus=2))


def test_print_command_shows_what_runs_and_starts_nothing():
    runner = CliRunner()
    config = str(CONFIGS / "sft.yaml")
    result = runner.invoke(
        app, ["train", "sft", "--config", config, "--set", "lora_r=4", "--cpu-processes", "2", "--print-command"]
    )
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.output.strip())
    assert argv[0] == "ACCELERATE_USE_CPU=true"
    assert accelerate_args(argv[1:]).training_script_args == ["train", "sft", "--config", config, "--set", "lora_r=4"]
    result = runner.invoke(app, ["train", "sft", "--config", config, "--gpus", "1", "--print-command"])
    assert result.exit_code == 0 and "trains in this process" in result.output


def test_a_launched_process_trains_itself_and_never_launches_again(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")  # what torchrun sets in every process it starts
    result = CliRunner().invoke(
        app, ["train", "grpo", "--config", str(CONFIGS / "grpo.yaml"), "--cpu-processes", "2", "--print-command"]
    )
    assert result.exit_code == 0 and "trains in this process" in result.output


def test_bad_settings_fail_before_any_process_starts():
    result = CliRunner().invoke(
        app, ["train", "sft", "--config", str(CONFIGS / "sft.yaml"), "--set", "lora_rank=4", "--cpu-processes", "2"]
    )
    assert result.exit_code == 1 and "unknown setting(s) lora_rank" in result.output
    assert "launching" not in result.output


def deepspeed_plugin(strategy: str) -> DeepSpeedPlugin:
    """The plugin `accelerate launch` builds in each process from the config's `deepspeed_config`."""
    config = load_config_from_file(str(ACCELERATE_CONFIGS / f"{strategy}.yaml")).deepspeed_config
    fields = {f.name for f in dataclasses.fields(DeepSpeedPlugin)}
    return DeepSpeedPlugin(**{k: v for k, v in config.items() if k in fields})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_shipped_accelerate_configs_load_and_name_what_trl_and_peft_need(strategy):
    config = load_config_from_file(str(ACCELERATE_CONFIGS / f"{strategy}.yaml"))  # unknown keys would raise
    assert config.mixed_precision == "bf16"  # TRL's bf16 default on GPUs that support it
    assert config.compute_environment.value == "LOCAL_MACHINE" and config.rdzv_backend == "static"
    if strategy == "ddp":
        assert config.distributed_type.value == "MULTI_GPU" and config.gpu_ids == "all"
        return
    ds = config.deepspeed_config
    assert config.distributed_type.value == "DEEPSPEED" and ds["zero_stage"] == int(strategy[-1])
    # `auto`: the batch arithmetic and clipping come from the TRL config; a number here would fight it.
    assert ds["gradient_accumulation_steps"] == ds["gradient_clipping"] == "auto"
    # One torchrun per node (`sif train … --node-rank`), not pdsh over ssh from the main node.
    assert ds["deepspeed_multinode_launcher"] == "standard"
    zero = deepspeed_plugin(strategy).deepspeed_config["zero_optimization"]
    assert zero["stage"] == int(strategy[-1])
    if strategy == "zero3":
        # The model is built sharded, and save_model gathers the full weights (a PEFT adapter included):
        # without it ZeRO-3 saves empty shards.
        assert ds["zero3_init_flag"] is True
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True


@pytest.mark.parametrize("strategy", ["zero2", "zero3"])
def test_deepspeed_takes_the_trl_settings_where_it_installs(strategy, tmp_path):
    deepspeed = pytest.importorskip(
        "deepspeed", reason="DeepSpeed is not installed (pip install 'sif-workbench[deepspeed]'; GPU machines)"
    )
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers.integrations import HfTrainerDeepSpeedConfig
    from trl import GRPOConfig

    assert deepspeed.__version__
    hf = HfTrainerDeepSpeedConfig(deepspeed_plugin(strategy).deepspeed_config)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        num_generations=8,
        max_grad_norm=0.5,
        use_cpu=True,
        report_to=[],
    )
    hf.trainer_config_process(args)  # what the Trainer does with an accelerate-launched DeepSpeed run
    checked = DeepSpeedConfig(hf.config)  # DeepSpeed's own validation
    assert (checked.train_micro_batch_size_per_gpu, checked.gradient_accumulation_steps) == (8, 2)
    assert checked.gradient_clipping == 0.5
    assert checked.zero_optimization_stage == int(strategy[-1])
