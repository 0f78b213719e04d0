"""Helpers for the team-curation CLI tests: a store made the way the docs make one, and a dump
of everything in it (to show that a refused command changed nothing)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.support.store import synth_folder

runner = CliRunner()


def sif(*args: str, db: Path | None = None, input: str | None = None):
    """Run `sif ARGS` (with `--db`) through Typer's runner."""
    return runner.invoke(app, [*args, *(["--db", str(db)] if db else [])], input=input)


def synth_store(tmp_path: Path, n: int = 12) -> Path:
    """`sif synth` + `sif import sif50k` into tmp_path/sif.db."""
    data = synth_folder(tmp_path / "data", n=n)
    db = tmp_path / "sif.db"
    result = sif("import", "sif50k", str(data), "--root", str(data.parent), db=db)
    assert result.exit_code == 0, result.output
    return db


def copy_store(template: Path, tmp_path: Path) -> Path:
    """A copy of the store file `template` (its data files stay where they are, shared)."""
    db = tmp_path / "sif.db"
    source = sqlite3.connect(template)
    target = sqlite3.connect(db)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return db


def dump(db: Path) -> str:
    """Every row of every table, as SQL text."""
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()
