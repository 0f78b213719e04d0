"""`sif generate`: SIF chains for samples with ground-truth boxes (datagen.generation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.main import app
from cli.options import DEFAULT_DB, DbOption, SetOption, fail


@app.command()
def generate(
    db: DbOption = DEFAULT_DB,
    teacher: Annotated[
        str | None,
        typer.Option(
            "--teacher",
            help="openai (a VLM over the OpenAI-compatible API) or template (offline; the default).",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="API base URL (default: $SIF_OPENAI_BASE_URL).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Teacher model name (default: $SIF_OPENAI_MODEL).")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Samples in flight at once (default 8).", show_default=False),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="At most this many samples in the run.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only samples of this dataset.")] = None,
    retry_invalid: Annotated[
        bool, typer.Option("--retry-invalid", help="Also redo samples whose current chain is an invalid generated one.")
    ] = False,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Carry on an interrupted run (its recorded settings apply).")
    ] = None,
    depth_model: Annotated[
        str | None,
        typer.Option(
            "--depth-model",
            help="Depth estimator for samples without a depth map: HF id, local path, large, small or tiny (default: Depth Anything V2 Large, as the paper).",
            show_default=False,
        ),
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", min=0.0, help="At most this many requests per second.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", exists=True, dir_okay=False, help="YAML file of settings (GenerateConfig fields)."),
    ] = None,
    set_: SetOption = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the run.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
):
    """Write SIF chains for samples with ground-truth boxes: depth → focus plan → step images → teacher → checked revision."""
    from common.settings import build, read_settings
    from datagen.generation import GenerateConfig
    from datagen.generation import generate as run_generate
    from db.renderings import rendering_hint
    from db.store import Store

    values = read_settings(config, set_)
    flags = dict(
        teacher=teacher,
        base_url=base_url,
        model=model,
        concurrency=concurrency,
        limit=limit,
        dataset=dataset,
        depth_model=depth_model,
        rate_limit_per_s=rate_limit,
        retry_invalid=retry_invalid or None,
    )
    values.update({k: v for k, v in flags.items() if v is not None})
    # A resumed run keeps its recorded settings; what is given here may only change speed ones.
    cfg, values = (None, values) if resume else (build(GenerateConfig, values), {})
    with Store.open(db) as store:
        summary = run_generate(
            store,
            cfg,
            resume=resume,
            name=name,
            progress=progress,
            on_start=lambda run_id: typer.echo(f"run {run_id} started", err=True),
            **values,
        )
        hint = rendering_hint(store)
    m = summary.metrics
    typer.echo(
        f"run {summary.run_id}: {m['generated']} generated ({m['repaired']} repaired), {m['invalid']} invalid, "
        f"{m['request_failed']} failed requests, {m['skipped']} skipped; {m['total_tokens']} tokens, "
        f"${m['cost_usd']:.4f}, {m['samples_per_s']:.1f} samples/s"
    )
    for line in summary.errors[:20]:
        typer.echo(f"  {line}", err=True)
    if len(summary.errors) > 20:
        typer.echo(f"  … and {len(summary.errors) - 20} more", err=True)
    if hint:
        typer.echo(hint)
    if m["skipped"] and not m["generated"] + m["invalid"] + m["request_failed"]:
        fail(f"every sample was skipped ({m['skipped']}): nothing was generated; the reasons are listed above")
