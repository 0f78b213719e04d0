"""`sif runs`: the runs recorded in a store, newest first, to find the id a killed run needs for `--resume`."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.main import app
from cli.options import DEFAULT_DB, DbOption

# What each kind of run is continued with, when it did not finish.
_RESUME = {
    "generation": "sif generate --resume {id}",
    "evaluation": "sif eval {benchmark} --resume {id}",
    "training": "sif train {stage} --config … --set resume=true (continues from output_dir's last checkpoint)",
}


@app.command()
def runs(
    db: DbOption = DEFAULT_DB,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="Only runs of this kind: generation, training, evaluation, inference."),
    ] = None,
    unfinished: Annotated[
        bool, typer.Option("--unfinished", help="Only runs that did not finish (killed, crashed or still running).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many (newest first).")] = 20,
    ids: Annotated[bool, typer.Option("--ids", help="Print only the run ids, one a line, newest first.")] = False,
):
    """List the runs recorded in the store (id, kind, name, status, last update), newest first."""
    from rich.console import Console
    from rich.table import Table

    from cli.store_cmds import _open
    from db.store import TERMINAL_RUN_STATUSES

    with _open(db) as store:
        rows = store.list_runs(kind)
    if unfinished:
        rows = [r for r in rows if r["status"] not in TERMINAL_RUN_STATUSES]
    if ids:
        for r in rows[:limit]:
            typer.echo(r["id"])
        return
    if not rows:
        typer.echo(f"no {'unfinished ' if unfinished else ''}{kind + ' ' if kind else ''}runs in {db}")
        return
    table = Table(title=f"runs in {db}", title_justify="left")
    for column in ("id", "kind", "name", "status", "updated", "continue with"):
        table.add_column(column, overflow="fold")
    for r in rows[:limit]:
        hint = ""
        if r["status"] not in TERMINAL_RUN_STATUSES and r["kind"] in _RESUME:
            hint = _RESUME[r["kind"]].format(
                id=r["id"], benchmark=r["config"].get("benchmark", "BENCH"), stage=r["config"].get("stage", "STAGE")
            )
        table.add_row(r["id"], r["kind"], r["name"] or "", r["status"], r["updated_at"], hint)
    Console(width=200).print(table)
    if len(rows) > limit:
        typer.echo(f"({len(rows) - limit} older runs not shown; --limit N shows more)")
