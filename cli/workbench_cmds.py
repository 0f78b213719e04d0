"""`sif workbench`: the curation app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.main import app
from cli.options import DEFAULT_DB, DbOption, fail


@app.command()
def workbench(
    db: DbOption = DEFAULT_DB,
    demo: Annotated[
        bool, typer.Option("--demo", help="Open the embedded demo store ($SIF_HOME/demo), building it on first use.")
    ] = False,
    host: Annotated[str, typer.Option(help="Interface to bind; the default serves this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 7860,
    auth_file: Annotated[
        Path | None,
        typer.Option(
            "--auth-file",
            help="Accounts written by `sif users add --auth-file`; without it the store's accounts sign in"
            " (none: nobody signs in, the local user curates). Reviews are signed with the signed-in user.",
        ),
    ] = None,
):
    """Browse, look at, edit and review chains in the browser (Gradio)."""
    from db.team import AuthFile
    from workbench.app import launch
    from workbench.demo_db import ensure_demo

    if auth_file is not None and not AuthFile(auth_file).users():
        fail(f"{auth_file}: no accounts in it; add one with `sif users add NAME --role admin --auth-file {auth_file}`")
    if demo:
        db = ensure_demo(echo=typer.echo)
    elif not Path(db).is_file():
        fail(f"no store at {db}; import data first (sif import sif50k …) or try `sif workbench --demo`")
    typer.echo(f"SIF Workbench on http://{host}:{port} — store {db}")
    launch(db, host=host, port=port, auth_file=auth_file)
