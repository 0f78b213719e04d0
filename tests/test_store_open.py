"""Opening a store that cannot be used as usual: a read-only file or folder serves every read
command (stats, export, the workbench) and write commands say why they cannot; a store from a
newer version, a file that is not a store, and an SQLite file of something else are refused with
an error naming the file, never a traceback."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from cli.main import app
from db.store import Store, StoreError
from tests.support.store import read_only, synth_folder
from workbench.service import Filters, Workbench

runner = CliRunner()


@pytest.fixture
def store_file(tmp_path):
    """A store of 8 imported synthetic samples (closed: no -wal or -shm file beside it)."""
    data = synth_folder(tmp_path / "synth", n=8)
    db = tmp_path / "store" / "sif.db"
    db.parent.mkdir()
    result = runner.invoke(
        app, ["import", "sif50k", str(data), "--root", str(data.parent), "--db", str(db), "--data-root", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    return db, data


def _reads_work_and_writes_say_why(db, data, tmp_path, why: str):
    stats = runner.invoke(app, ["stats", "--db", str(db), "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)["samples"] == 8
    sft = runner.invoke(app, ["export", "sft", "--db", str(db), "--out", str(tmp_path / "sft"), "--split", "all"])
    assert sft.exit_code == 0 and "exported 8 samples" in sft.output, sft.output
    rl = runner.invoke(app, ["export", "rl", "--db", str(db), "--out", str(tmp_path / "rl.jsonl"), "--split", "all"])
    assert rl.exit_code == 0, rl.output

    with Store.open(db) as store:  # what the workbench does
        assert store.read_only == why
        bench = Workbench(store)
        page = bench.browse(Filters())
        assert len(page.rows) == 8
        opened = bench.open(page.rows[0][0])
        assert opened.sample.id == page.rows[0][0]
        with pytest.raises(StoreError, match=f"is read-only \\({why}\\): nothing can be saved"):
            bench.review(opened.sample.id, "accepted", "ann", "", expected_version=0)

    again = runner.invoke(app, ["import", "sif50k", str(data), "--root", str(data.parent), "--db", str(db)])
    gen = runner.invoke(app, ["generate", "--db", str(db), "--no-progress"])
    for result in (again, gen):
        assert result.exit_code == 1, result.output
        assert "error:" in result.output and "read-only" in result.output and why in result.output
        assert not isinstance(result.exception, (StoreError, sqlite3.Error))


def test_a_read_only_store_file_serves_reads_and_refuses_writes(store_file, tmp_path):
    db, data = store_file
    with read_only(db):
        _reads_work_and_writes_say_why(db, data, tmp_path, "the file is read-only")
    with Store.open(db) as store:  # writable again: nothing was changed meanwhile
        assert store.read_only is None and store.count() == 8 and not store.list_runs()


def test_a_store_in_a_read_only_folder_serves_reads_and_refuses_writes(store_file, tmp_path):
    db, data = store_file
    with read_only(db.parent):
        _reads_work_and_writes_say_why(db, data, tmp_path, f"its folder {db.parent} is read-only")
        with pytest.raises(StoreError, match="folder .* is read-only"):
            Store.open(db.parent / "new.db")


def test_a_store_from_a_newer_version_is_refused(store_file):
    db, _ = store_file
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('sif', 'm900_future', 'later')"
        )
    result = runner.invoke(app, ["stats", "--db", str(db)])
    assert result.exit_code == 1
    assert f"{db} was written by a newer version of SIF Workbench (schema m900_future)" in result.output
    with pytest.raises(StoreError, match="newer version"):
        Store.open(db)


@pytest.mark.parametrize(
    "content",
    [b"\x00\x01garbage" * 1000, b"SQLite format 3\x00" + b"\xff" * 4000, b"id,question\n1,hello\n"],
    ids=["garbage", "damaged-header", "csv"],
)
def test_a_file_that_is_not_a_store_gets_an_error_naming_it(tmp_path, content):
    db = tmp_path / "sif.db"
    db.write_bytes(content)
    for args in (["stats"], ["export", "rl", "--out", str(tmp_path / "rl.jsonl")], ["generate", "--no-progress"]):
        result = runner.invoke(app, [*args, "--db", str(db)])
        assert result.exit_code == 1, result.output
        assert f"error: {db} cannot be opened as a SIF store" in result.output, result.output
    assert db.read_bytes() == content  # left as it was


def test_an_sqlite_file_of_something_else_is_not_changed(tmp_path):
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = db.read_bytes()
    result = runner.invoke(app, ["stats", "--db", str(db)])
    assert result.exit_code == 1 and "is an SQLite database but not a SIF store" in result.output
    assert db.read_bytes() == before
