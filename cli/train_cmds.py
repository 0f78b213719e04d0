"""Training commands: `sif model tiny`, `sif train sft|grpo|demo-run`, `sif merge`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from cli.main import app
from cli.options import SetOption, fail
from training.launch import DEFAULT_PORT, LaunchOptions

train_app = typer.Typer(help="Train with TRL: SFT, GRPO-SIF, and the embedded CPU demo run.", no_args_is_help=True)
model_app = typer.Typer(help="Build models locally.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(model_app, name="model")

ConfigArg = Annotated[Path | None, typer.Option("--config", exists=True, dir_okay=False, help="YAML settings file.")]
PrintConfigOption = Annotated[
    bool,
    typer.Option(
        "--print-config", help="Print the resolved TRL and PEFT configuration (JSON) and exit; trains nothing."
    ),
]


def _logging() -> None:
    # In a launched run, the other processes would repeat the main one's messages: they log warnings only.
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@model_app.command("tiny")
def model_tiny(
    out: Annotated[Path, typer.Option("--out", help="Folder for the model and processor.")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
):
    """Build a tiny randomly initialized Qwen2.5-VL model with a tokenizer trained on synthetic SIF text."""
    from training.tiny_model import TinyModelConfig, build_tiny_model

    path = build_tiny_model(out, TinyModelConfig(seed=seed))
    typer.echo(f"wrote a tiny Qwen2.5-VL model to {path}")


GpusOption = Annotated[
    int | None,
    typer.Option("--gpus", min=0, help="GPUs per node (default: every visible GPU); 1 or none trains in this process."),
]
StrategyOption = Annotated[
    str,
    typer.Option("--strategy", help="ddp, zero2 or zero3 (DeepSpeed): which configs/accelerate/ file to launch with."),
]
NodesOption = Annotated[int, typer.Option("--nodes", min=1, help="Nodes taking part (run the same command on each).")]
NodeRankOption = Annotated[int, typer.Option("--node-rank", min=0, help="This node's rank (0: the main node).")]
MainAddressOption = Annotated[
    str | None, typer.Option("--main-address", help="Address of the main node (needed with --nodes > 1).")
]
MainPortOption = Annotated[int, typer.Option("--main-port", help="Port of the main process.")]
CpuProcessesOption = Annotated[
    int,
    typer.Option(
        "--cpu-processes",
        min=0,
        help="Launch N processes on the CPU (gloo) instead of GPUs: the multi-process path without a GPU.",
    ),
]
PrintCommandOption = Annotated[bool, typer.Option("--print-command", help="Print what would run, and stop.")]


def _train(
    stage: str,
    label: str,
    config: Path | None,
    set_: list[str] | None,
    launch: LaunchOptions,
    print_command: bool,
    print_config: bool,
) -> None:
    """Train in this process, or start every process through `accelerate launch` (training/launch.py)."""
    from common.settings import build, load_settings, read_settings
    from training.launch import check_can_run, launch_command, launched

    settings_cls, run = _STAGES[stage]()
    if print_config:  # model and data may stay unset: nothing is loaded
        import json

        from training.resolved import resolved_config

        settings = build(settings_cls, read_settings(config, set_))
        typer.echo(json.dumps(resolved_config(settings), indent=2, default=str, ensure_ascii=False))
        return
    settings = load_settings(settings_cls, config, set_)  # bad settings fail here, before any process starts
    train_args = (["--config", str(config)] if config else []) + [a for s in set_ or [] for a in ("--set", s)]
    command = None if launched() else launch_command(stage, train_args, launch)
    if print_command:
        typer.echo(command.shell() if command else f"one process: sif train {stage} trains in this process")
        return
    _logging()
    if command is None:
        path = run(settings)
        if not launched():  # the launching command says it once
            typer.echo(f"{label} model saved to {path}")
        return
    check_can_run(launch)
    typer.echo(f"launching: {command.shell()}", err=True)
    code = command.run()
    if code:
        fail(f"the training processes failed (accelerate launch exited with {code})", code)
    typer.echo(f"{label} model saved to {settings.output_dir}")


def _sft():
    from training.config import SFTSettings
    from training.sft import run_sft

    return SFTSettings, run_sft


def _grpo():
    from training.config import GRPOSettings
    from training.grpo import run_grpo

    return GRPOSettings, run_grpo


_STAGES = {"sft": _sft, "grpo": _grpo}


def _train_command(stage: str, label: str, doc: str) -> None:
    """Register `sif train STAGE`: one signature for both stages, so their options can't drift apart."""

    def command(
        config: ConfigArg = None,
        set_: SetOption = None,
        gpus: GpusOption = None,
        strategy: StrategyOption = "ddp",
        nodes: NodesOption = 1,
        node_rank: NodeRankOption = 0,
        main_address: MainAddressOption = None,
        main_port: MainPortOption = DEFAULT_PORT,
        cpu_processes: CpuProcessesOption = 0,
        print_command: PrintCommandOption = False,
        print_config: PrintConfigOption = False,
    ):
        launch = LaunchOptions(gpus, strategy, nodes, node_rank, main_address, main_port, cpu_processes)
        _train(stage, label, config, set_, launch, print_command, print_config)

    train_app.command(stage, help=doc)(command)


_train_command("sft", "SFT", "Supervised fine-tuning (TRL SFTTrainer) on `sif export sft --format trl` data.")
_train_command(
    "grpo", "GRPO", "GRPO-SIF (TRL GRPOTrainer) with the format, progressive answer, grounding and depth rewards."
)


@train_app.command("demo-run")
def train_demo_run(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Run folder (default: $SIF_HOME/tiny-demo, SIF_HOME defaults to ~/.cache/sif)."),
    ] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=20, help="Synthetic samples to make.")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds to run; the report gives mean ± s.e.")] = 1,
    set_: SetOption = None,
):
    """Tiny model → synthetic data → SFT → GRPO-SIF and its ablations → held-out evaluation against
    chance, over one or more seeds, on CPU."""
    from pipelines.demo_run import demo_run, demo_settings

    report = demo_run(out, demo_settings(set_, samples=samples, seeds=seeds))
    typer.echo(f"report: {Path(report['model']).parent / 'report.md'}")


@app.command()
def merge(
    base: Annotated[Path, typer.Option("--base", help="Base model folder (or hub id available offline).")],
    adapter: Annotated[
        Path, typer.Option("--adapter", exists=True, file_okay=False, help="LoRA adapter folder from sif train.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the merged model.")],
):
    """Merge a LoRA adapter into its base model and save a standalone model with its processor."""
    from training.merge import merge_adapter

    path = merge_adapter(base, adapter, out)
    typer.echo(f"merged model saved to {path}")
