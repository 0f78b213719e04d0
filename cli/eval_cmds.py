"""`sif eval BENCH …`, `sif eval merge SHARD…` and `sif eval report RUN …`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.main import app
from cli.options import DbOption, SetOption, fail
from evaluation.records import BENCHMARK_KINDS
from sif.errors import ConfigError

eval_app = typer.Typer(
    help="Evaluate a model on a benchmark; predictions go to the store under an eval run.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

OutOption = Annotated[Path, typer.Option("--out", help="Folder for the run's report.md and report.json.")]


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
        concurrency: Annotated[
            int | None,
            typer.Option("--concurrency", min=1, help="openai: requests in flight (default 16).", show_default=False),
        ] = None,
        batch_size: Annotated[
            int | None,
            typer.Option(
                "--batch-size",
                min=1,
                help="hf: records per batch (default 8); vllm: prompts per LLM.generate call (default 256).",
                show_default=False,
            ),
        ] = None,
        shard: Annotated[
            str | None,
            typer.Option(
                "--shard",
                help="i/n: evaluate the i-th (from 0) of n parts of the benchmark; join them with `sif eval merge`.",
                show_default=False,
            ),
        ] = None,
        limit: Annotated[int | None, typer.Option("--limit", min=1, help="Evaluate only the first N records.")] = None,
        resume: Annotated[
            str | None,
            typer.Option(
                "--resume",
                help="Continue this eval run where it stopped (its settings apply; only --base-url, --concurrency, "
                "--batch-size, --max-failure-rate and --name may change).",
            ),
        ] = None,
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
        depth_model: Annotated[
            str | None,
            typer.Option(
                "--depth-model",
                help="Estimator for records without a NAME_d.png depth picture: HF id, local path, tiny or flat "
                "(default: Depth Anything V2; flat for --model demo).",
                show_default=False,
            ),
        ] = None,
        max_new_tokens: Annotated[
            int | None, typer.Option("--max-new-tokens", min=1, help="Default 2048.", show_default=False)
        ] = None,
        max_pixels: Annotated[
            int | None,
            typer.Option(
                "--max-pixels", min=1, help="Images are scaled down to this (default 589824).", show_default=False
            ),
        ] = None,
        max_failure_rate: Annotated[
            float | None,
            typer.Option(
                "--max-failure-rate",
                min=0.0,
                max=1.0,
                help="Fraction of records left without a prediction before the run fails (exit 1). Default 0.01.",
                show_default=False,
            ),
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
        out: OutOption = Path("eval_reports"),
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
            concurrency=concurrency,
            batch_size=batch_size,
            shard=shard,
            limit=limit,
            suffix=suffix,
            judge=judge,
            depth_model=depth_model,
            max_new_tokens=max_new_tokens,
            max_pixels=max_pixels,
            max_failure_rate=max_failure_rate,
            name=name,
        )
        values.update({k: v for k, v in flags.items() if v is not None}, benchmark=bench)
        if resume is not None:  # the run's settings apply; what is given again is checked against them
            result = evaluate(db, None, resume=resume, changes=values, report_dir=out, on_start=_announce)
        else:
            if not values.get("data"):
                raise ConfigError("data: required (--data FILE, or data: in the --config file)")
            result = evaluate(db, build(EvalConfig, values), report_dir=out, on_start=_announce)
        for key, (was, now) in result.changed.items():
            typer.secho(
                f"resumed run {result.run_id} with {key} {now!r} (was {was!r})", fg=typer.colors.YELLOW, err=True
            )
        typer.echo(
            f"run {result.run_id}: {result.predicted} new predictions, {result.total} records, "
            f"{len(result.missing_images)} images missing, {len(result.failures)} failures, "
            f"{len(result.problems)} bad records"
        )
        _finish(result)

    command.__doc__ = f"Evaluate on {bench}: {BENCHMARK_KINDS[bench][1]}."
    return command


def _finish(result) -> None:
    """Print the report; say loudly when records have no prediction, and exit 1 past the threshold."""
    if result.report_paths:
        typer.echo(result.report_paths[0].read_text())
        typer.echo(f"report: {result.report_paths[0]} and {result.report_paths[1]}")
    s = result.summary
    if s.get("unanswered"):
        typer.secho(
            f"warning: {s['unanswered']} of {s['records']} records have no prediction "
            f"({s['failed_requests']} failed requests, {s['unanswered_missing_images']} images missing); "
            f"they count as wrong. `--resume {result.run_id}` retries them.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    if result.status == "failed":
        fail(
            f"run {result.run_id} failed: {s['failure_rate']:.2%} of its records have no prediction, "
            f"more than --max-failure-rate {s['max_failure_rate']:.2%}"
        )


for _name in BENCHMARK_KINDS:
    eval_app.command(name=_name)(_bench_command(_name))


@eval_app.command("merge")
def merge(
    shards: Annotated[
        list[str],
        typer.Argument(
            help="The shard runs: run ids in --db, or report folders written by `sif eval --shard` elsewhere."
        ),
    ],
    db: DbOption = Path("sif.db"),
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="The benchmark file here (default: the path the shards recorded).", show_default=False
        ),
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Image folder here (default: as recorded).", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the merged run.")] = None,
    out: OutOption = Path("eval_reports"),
):
    """Join the shards of a benchmark (`sif eval BENCH --shard i/n`) into one run and report."""
    from evaluation.merge import merge as merge_shards

    result = merge_shards(db, shards, data=data and str(data), images=images and str(images), name=name, report_dir=out)
    typer.echo(f"run {result.run_id}: merged {len(shards)} shards, {result.total} records")
    _finish(result)


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


def _announce(run_id: str) -> None:
    """Name the run as it starts: a killed run is resumed with `--resume RUN`."""
    typer.echo(f"run {run_id} started (resume it with --resume {run_id})", err=True)
