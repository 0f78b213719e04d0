"""`sif train demo-run`: the whole training path on a laptop CPU, end to end.

Tiny model → synthetic data through the store → SFT (full fine-tune) → evaluation → GRPO-SIF
(rule-based judge, rollouts written to the store) → evaluation → report (markdown + JSON).
The final model stays at OUT/model; OUT defaults to $SIF_HOME/tiny-demo (SIF_HOME defaults to
~/.cache/sif), where `--model demo` finds it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.settings import build
from sif.paths import demo_model_dir
from training.config import GRPOSettings, SFTSettings
from training.tiny_model import TinyModelConfig


def default_demo_dir() -> Path:
    return demo_model_dir().parent


@dataclass
class DemoSettings:
    """Sizes chosen so the run fits in about 20 minutes on 2 CPU cores."""

    samples: int = 2000
    seed: int = 0
    # Question kinds whose chains share one final-step template; no distractor steps.
    synth: dict = field(
        default_factory=lambda: {
            "min_objects": 2,
            "max_objects": 4,
            "distractor_prob": 0.0,
            "split_ratio": 0.04,
            "kinds": ("left_colour", "right_colour", "nearest", "farthest"),
        }
    )
    eval_samples: int = 96  # at most: all held-out samples
    max_new_tokens: int = 320
    rl_samples: int = 200
    tiny: dict = field(default_factory=dict)  # TinyModelConfig fields
    sft: dict = field(
        default_factory=lambda: {
            "full_finetune": True,
            "freeze_vision_tower": False,
            "image_max_pixels": None,
            "learning_rate": 2e-3,
            "num_train_epochs": 2,
            "warmup_ratio": 0.05,
            "max_length": 1024,
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1,
            "eval_ratio": 0.0,
            "logging_steps": 25,
            "gradient_checkpointing": False,
            "trl": {"save_strategy": "no", "disable_tqdm": False},
        }
    )
    grpo: dict = field(
        default_factory=lambda: {
            "full_finetune": True,
            "freeze_vision_tower": False,
            "image_max_pixels": None,
            "learning_rate": 2e-5,
            "max_steps": 120,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": 320,
            "temperature": 0.8,
            "logging_steps": 10,
            "save_steps": 60,
            "rollouts_per_step": 2,
            "gradient_checkpointing": False,
            "trl": {"log_completions": False, "save_total_limit": 1},
        }
    )


def _say(console, message: str) -> None:
    if console is not None:
        console.print(message)


def demo_run(
    out: str | Path | None = None,
    settings: DemoSettings = DemoSettings(),
    *,
    evaluate: bool = True,
    progress: bool = True,
) -> dict:
    """Run the whole path and write OUT/report.md and OUT/report.json; returns the report."""
    from rich.console import Console

    from evaluation.model_eval import evaluate_model, read_eval_rows
    from training.grpo import run_grpo
    from training.sft import run_sft
    from training.synthetic_data import prepare_synthetic
    from training.tiny_model import build_tiny_model

    console = Console() if progress else None
    out = Path(out) if out is not None else default_demo_dir()
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    timings: dict[str, float] = {}
    report: dict = {"settings": asdict(settings)}
    start = time.monotonic()

    def stage(name: str, title: str, func):
        _say(console, f"[bold]▶ {title}[/bold]")
        t = time.monotonic()
        value = func()
        timings[name] = round(time.monotonic() - t, 1)
        _say(console, f"  done in {timings[name]:.0f} s")
        return value

    base = stage(
        "tiny_model",
        "building the tiny Qwen2.5-VL model",
        lambda: build_tiny_model(work / "base", TinyModelConfig(**settings.tiny)),
    )
    data = stage(
        "data",
        f"synthesizing {settings.samples} samples and routing them through the store",
        lambda: prepare_synthetic(
            work, settings.samples, settings.seed, rl_n=settings.rl_samples, progress=progress, **settings.synth
        ),
    )
    report["data"] = data.summary
    _say(console, f"  {data.summary}")
    sft = build(
        SFTSettings,
        {
            **settings.sft,
            "model": str(base),
            "data": str(data.sft_dir),
            "output_dir": str(work / "sft"),
            "db": str(data.db),
            "run_name": "demo-sft",
        },
    )
    stage("sft", "SFT (full fine-tune)", lambda: run_sft(sft))
    rows = read_eval_rows(data.test_file, settings.eval_samples)

    def evaluation(model_dir: Path, label: str) -> dict:
        metrics, details = evaluate_model(model_dir, rows, max_new_tokens=settings.max_new_tokens)
        (work / f"eval_{label}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in details))
        _say(console, f"  {label}: {metrics.to_json()}")
        return metrics.to_json()

    if evaluate:
        report["sft"] = stage(
            "eval_sft",
            f"evaluating the SFT model on {len(rows)} held-out samples",
            lambda: evaluation(work / "sft", "sft"),
        )
    grpo = build(
        GRPOSettings,
        {
            **settings.grpo,
            "model": str(work / "sft"),
            "data": str(data.rl_file),
            "output_dir": str(work / "grpo"),
            "db": str(data.db),
            "run_name": "demo-grpo",
        },
    )
    stage("grpo", "GRPO-SIF (rule-based judge; rollouts go to the store)", lambda: run_grpo(grpo))
    if evaluate:
        report["grpo"] = stage("eval_grpo", "evaluating the GRPO model", lambda: evaluation(work / "grpo", "grpo"))
    model = out / "model"
    if model.exists():
        shutil.rmtree(model)
    shutil.copytree(work / "grpo", model, ignore=shutil.ignore_patterns("checkpoint-*", "*.sqlite*"))
    report.update(
        model=str(model),
        db=str(data.db),
        timings_s=timings,
        wall_s=round(time.monotonic() - start, 1),
        cpu_threads=_threads(),
    )
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(report_markdown(report))
    _say(console, f"[bold green]✔ report: {out / 'report.md'}; model: {model}[/bold green]")
    return report


def _threads() -> int:
    import torch

    return torch.get_num_threads()


METRIC_LABELS = (
    ("format_valid", "format-valid rate"),
    ("accuracy", "answer accuracy"),
    ("final_hiou", "mean final-step HIoU"),
    ("depth_consistent", "depth-consistency rate"),
    ("total_reward", "mean total reward"),
)


def report_markdown(report: dict) -> str:
    lines = ["# sif train demo-run", "", f"Data: {report['data']}", ""]
    if "sft" in report:
        lines += ["| metric | SFT | GRPO-SIF |", "| --- | --- | --- |"]
        lines += [f"| {label} | {report['sft'][k]:.3f} | {report['grpo'][k]:.3f} |" for k, label in METRIC_LABELS]
        lines += ["", f"Held-out samples: {report['sft']['n']}.", ""]
    lines += [
        "Stage timings (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()),
        f"Wall time: {report['wall_s']:.0f} s on {report['cpu_threads']} torch thread(s).",
        f"Final model: `{report['model']}`; store with the runs and rollouts: `{report['db']}`.",
        "",
    ]
    return "\n".join(lines)
