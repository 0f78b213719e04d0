"""`sif eval BENCH …` and `sif eval report RUN …`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.main import app
from cli.options import DbOption, SetOption
from evaluation.records import BENCHMARK_KINDS
from sif.errors import ConfigError

eval_app = typer.Typer(
    help="Evaluate a model on a benchmark; predictions go to the store under an eval run.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")


def _bench_command(bench: str):
    def command(
        data: Annotated[
            Path | None,
            typer.Option("--data", help="The benchmark file (its public release format).", show_default=False),
        ] = None,
        db: DbOption = Path("sif.db"),
        images: Annotated[
            Path | None,
            typer.Option("--images", help="Image folder (default: the data file's folder).", show_default=False),
        ] = None,
        model: Annotated[str | None, typer.Option("--model", help="Model path or name for the backend.")] = None,
        backend: Annotated[
            str | None,
            typer.Option(
                "--backend",
                help="hf (default), vllm, openai, or scripted (ground truth with a known error; tests/backfill).",
                show_default=False,
            ),
        ] = None,
        adapter: Annotated[str | None, typer.Option("--adapter", help="LoRA adapter for hf/vllm.")] = None,
        base_url: Annotated[str | None, typer.Option("--base-url", help="Server URL for the openai backend.")] = None,
        limit: Annotated[int | None, typer.Option("--limit", min=1, help="Evaluate only the first N records.")] = None,
        resume: Annotated[str | None, typer.Option("--resume", help="Continue this eval run where it stopped.")] = None,
        suffix: Annotated[
            str | None,
            typer.Option(
                "--suffix",
                help="sif (default: SIF-50K's protocol sentence) or rl (the reference eval sentence, without 'with depth').",
                show_default=False,
            ),
        ] = None,
        judge: Annotated[
            str | None,
            typer.Option(
                "--judge",
                help="Open-VQA scorer: rule (default, offline) or openai (OpenAI-compatible judge).",
                show_default=False,
            ),
        ] = None,
        max_new_tokens: Annotated[
            int | None, typer.Option("--max-new-tokens", min=1, help="Default 1024.", show_default=False)
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="A name for the run.")] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                exists=True,
                dir_okay=False,
                help="YAML file of settings (EvalConfig fields; configs/eval.yaml); the options above override it.",
            ),
        ] = None,
        set_: SetOption = None,
        out: Annotated[Path, typer.Option("--out", help="Folder for the run's report.md and report.json.")] = Path(
            "eval_reports"
        ),
    ):
        from common.settings import build, read_settings
        from evaluation.runner import EvalConfig, evaluate

        values = read_settings(config, set_)
        flags = dict(
            data=data and str(data),
            images=images and str(images),
            model=model,
            backend=backend,
            adapter=adapter,
            base_url=base_url,
            limit=limit,
            suffix=suffix,
            judge=judge,
            max_new_tokens=max_new_tokens,
            name=name,
        )
        values.update({k: v for k, v in flags.items() if v is not None}, benchmark=bench)
        if not values.get("data"):
            raise ConfigError("data: required (--data FILE, or data: in the --config file)")
        settings = build(EvalConfig, values)
        result = evaluate(db, settings, resume=resume, report_dir=out)
        typer.echo(
            f"run {result.run_id}: {result.predicted} new predictions, {result.total} records, "
            f"{len(result.missing_images)} images missing, {len(result.failures)} failures, "
            f"{len(result.problems)} bad records"
        )
        if result.report_paths:
            typer.echo(result.report_paths[0].read_text())
            typer.echo(f"report: {result.report_paths[0]} and {result.report_paths[1]}")

    command.__doc__ = f"Evaluate on {bench}: {BENCHMARK_KINDS[bench][1]}."
    return command


for _name in BENCHMARK_KINDS:
    eval_app.command(name=_name)(_bench_command(_name))


@eval_app.command("report")
def report(
    runs: Annotated[list[str], typer.Argument(help="Eval run ids to put side by side.")],
    db: DbOption = Path("sif.db"),
    paper: Annotated[
        bool, typer.Option("--paper", help="Add the SIFThinker paper's published numbers (quoted).")
    ] = False,
):
    """Print a table comparing eval runs side by side."""
    from evaluation.report import compare_stored_runs

    typer.echo(compare_stored_runs(db, runs, paper=paper))
