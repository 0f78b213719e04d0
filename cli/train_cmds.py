"""Training commands: `sif model tiny`, `sif train sft|grpo|demo-run`, `sif merge`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli.main import app
from cli.options import SetOption

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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@model_app.command("tiny")
def model_tiny(
    out: Annotated[Path, typer.Option("--out", help="Folder for the model and processor.")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
):
    """Build a tiny randomly initialized Qwen2.5-VL model with a tokenizer trained on synthetic SIF text."""
    from training.tiny_model import TinyModelConfig, build_tiny_model

    path = build_tiny_model(out, TinyModelConfig(seed=seed))
    typer.echo(f"wrote a tiny Qwen2.5-VL model to {path}")


def _train(settings_cls, run, config: Path | None, set_: list[str] | None, label: str, print_config=False) -> None:
    from common.settings import build, load_settings, read_settings

    if print_config:  # model and data may stay unset: nothing is loaded
        import json

        from training.resolved import resolved_config

        settings = build(settings_cls, read_settings(config, set_))
        typer.echo(json.dumps(resolved_config(settings), indent=2, default=str, ensure_ascii=False))
        return
    settings = load_settings(settings_cls, config, set_)
    _logging()
    path = run(settings)
    typer.echo(f"{label} model saved to {path}")


@train_app.command("sft")
def train_sft(config: ConfigArg = None, set_: SetOption = None, print_config: PrintConfigOption = False):
    """Supervised fine-tuning (TRL SFTTrainer) on `sif export sft --format trl` data."""
    from training.config import SFTSettings
    from training.sft import run_sft

    _train(SFTSettings, run_sft, config, set_, "SFT", print_config)


@train_app.command("grpo")
def train_grpo(config: ConfigArg = None, set_: SetOption = None, print_config: PrintConfigOption = False):
    """GRPO-SIF (TRL GRPOTrainer) with the format, progressive answer, grounding and depth rewards."""
    from training.config import GRPOSettings
    from training.grpo import run_grpo

    _train(GRPOSettings, run_grpo, config, set_, "GRPO", print_config)


@train_app.command("demo-run")
def train_demo_run(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Run folder (default: $SIF_HOME/tiny-demo, SIF_HOME defaults to ~/.cache/sif)."),
    ] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=20, help="Synthetic samples to make.")] = None,
):
    """Tiny model → synthetic data → SFT → GRPO-SIF → before/after evaluation and a report, on CPU."""
    from pipelines.demo_run import DemoSettings, demo_run

    settings = DemoSettings() if samples is None else DemoSettings(samples=samples)
    report = demo_run(out, settings)
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
