"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_DB = Path("sif.db")

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="SIF_DB", help="SQLite store (default: $SIF_DB, else ./sif.db).", show_default=False),
]

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting: key=value (dotted keys for nested ones; repeatable)."),
]


def fail(message: str, code: int = 1):
    """Print a clear error and exit without a traceback."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)
