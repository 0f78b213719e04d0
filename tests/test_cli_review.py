"""`sif review accept|reject|needs-fix|undo|priority` on a real store through Typer's runner:
ids or filters, dry runs that change nothing, batches undone exactly, bad filters refused with
the option named and the store unchanged."""

from __future__ import annotations

import re

import pytest

from db.store import Store
from tests.support.team import copy_store, dump, sif, synth_store


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return synth_store(tmp_path_factory.mktemp("review"))


@pytest.fixture
def db(template, tmp_path):
    return copy_store(template, tmp_path)


def statuses(db) -> dict[int, str]:
    with Store.open(db) as store:
        return {r.id: r.status for r in store.query(limit=100)}


def test_dry_run_prints_the_count_and_some_ids_and_changes_nothing(db):
    before = dump(db)
    result = sif("review", "accept", "--status", "pending", "--reviewer", "ann", "--dry-run", db=db)
    assert result.exit_code == 0, result.output
    assert "would mark 12 sample(s) accepted" in result.output and "[1, 2, 3" in result.output
    assert dump(db) == before


def test_ids_then_filter_batches_and_undo_restore_every_earlier_status(db):
    result = sif("review", "reject", "--ids", "1,5,9", "--reviewer", "bob", "--note", "blurry", db=db)
    assert result.exit_code == 0, result.output
    assert "batch 1: 3 sample(s) marked rejected by bob" in result.output
    before = statuses(db)
    result = sif("review", "accept", "--dataset", "synthetic", "--status", "pending", "--reviewer", "ann", db=db)
    assert result.exit_code == 0, result.output
    batch = int(re.search(r"batch (\d+):", result.output).group(1))
    after = statuses(db)
    assert [k for k, v in after.items() if v == "rejected"] == [1, 5, 9]
    assert all(v == "accepted" for k, v in after.items() if k not in (1, 5, 9))
    with Store.open(db) as store:  # pinned to the current revision, as single decisions are
        assert all(store.get_review(k).rev == store.current_chain(k).rev for k in after)
    result = sif("review", "undo", str(batch), "--reviewer", "ann", db=db)
    assert result.exit_code == 0, result.output
    assert statuses(db) == before
    again = sif("review", "undo", str(batch), db=db)
    assert again.exit_code == 1 and "undone already" in again.output
    listed = sif("review", "batches", db=db).output.splitlines()
    assert listed[0].split()[:5] == [str(batch), listed[0].split()[1], "ann", "accepted", "×"]
    assert "undone" in listed[0] and "undone" not in listed[1] and '"ids": [1, 5, 9]' in listed[1]


def test_undo_refuses_when_a_sample_was_decided_after_the_batch(db):
    assert sif("review", "needs-fix", "--ids", "2,3", "--reviewer", "ann", db=db).exit_code == 0
    assert sif("review", "accept", "--ids", "3", "--reviewer", "bob", db=db).exit_code == 0
    before = dump(db)
    result = sif("review", "undo", "1", db=db)
    assert result.exit_code == 1
    assert "sample 3 is now accepted by bob" in result.output and "nothing was undone" in result.output
    assert dump(db) == before


def test_search_matches_a_source_id(db):
    result = sif("review", "accept", "--text", "synth-000007", "--reviewer", "ann", db=db)
    assert result.exit_code == 0, result.output
    assert "1 sample(s) marked accepted" in result.output
    with Store.open(db) as store:
        [row] = store.query(status="accepted")
        assert store.get_sample(row.id).source_id == "synth-000007"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--status", "done"], "status: 'done' is not one of"),
        (["--hiou-min", "0.9", "--hiou-max", "0.1"], "hiou_min: 0.9 is above hiou_max 0.1"),
        (["--hiou-min", "lots"], "--hiou-min"),
        (["--hiou-max", "1.5"], "--hiou-max"),
        (["--validity", "maybe"], "validity: 'maybe'"),
        (["--depth", "deep"], "depth: 'deep'"),
        (["--split", "holdout"], "split: 'holdout'"),
        (["--run", "eval-nope"], "run: no run 'eval-nope'"),
        (["--origin", "teacher"], "origin: 'teacher'"),
        (["--ids", "1,x"], "--ids: '1,x' is not a comma-separated list"),
        (["--ids", "1,999"], "ids: no sample with id 999"),
        (["--ids", "1", "--status", "pending"], "--ids: give sample ids or filters"),
        ([], "give --ids or at least one filter"),
        (["--text", "no-such-words-anywhere"], "match no sample"),
    ],
)
def test_bad_filters_are_refused_naming_the_option_and_change_nothing(db, args, message):
    before = dump(db)
    result = sif("review", "accept", *args, "--reviewer", "ann", db=db)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert dump(db) == before


def test_priority_ranks_the_samples_the_model_gets_wrong(db):
    from sif.chain import Chain, Region, Step

    with Store.open(db) as store:
        run = store.create_run("evaluation", {})
        wrong = Chain((Step((Region((0.9, 0.9, 0.95, 0.95), 0.5),), "there"),), "no")
        store.add_revision(4, wrong, origin="prediction", author="m", run_id=run)
        store.add_revision(7, store.current_chain(7).chain, origin="prediction", author="m", run_id=run)
    result = sif("review", "priority", "--top", "5", db=db)
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()[1:]]
    assert [int(line[0]) for line in lines] == [4, 7]
    assert float(lines[0][1]) > float(lines[1][1])
