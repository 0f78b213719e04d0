"""Reviews bound to the revision they were made on, on real SQLite files: a later curated revision
reopens the sample (the decision stays in the log), a review of a stale revision is refused,
`sif export --status accepted` (through the CLI) writes exactly the accepted revisions, the
migration binds and reopens existing reviews; curators' drafts; the keyset neighbour and position
queries the workbench's j/k walk on."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from db.importers import import_file, sif50k_converter
from db.store import SORT_KEYS, StaleRevisionError, Store
from sif.chain import Chain, Region, Step
from tests.support.store import old_schema_db, synth_folder

runner = CliRunner()


def chain(answer: str) -> Chain:
    return Chain(
        (
            Step((Region((0.0, 0.0, 1.0, 1.0), 0.5),), "look everywhere"),
            Step((Region((0.2, 0.2, 0.6, 0.6), 0.4),), f"this is {answer}"),
        ),
        answer,
    )


@pytest.fixture
def store(tmp_path):
    data = synth_folder(tmp_path / "data", n=6)
    s = Store.open(tmp_path / "sif.db", data_root=tmp_path / "data")
    assert import_file(s, data, sif50k_converter(data.parent), progress=False).errors == []
    yield s
    s.close()


def export_accepted(store: Store, out) -> list[dict]:
    result = runner.invoke(
        app,
        ["export", "sft", "--out", str(out), "--status", "accepted", "--split", "all", "--db", str(store.path)],
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "sif_sft.json").read_text())


def test_a_review_records_its_revision_and_a_stale_one_is_refused(store):
    r = store.set_review(1, "accepted", reviewer="ann", expected_version=0, rev=1)
    assert (r.status, r.rev) == ("accepted", 1) and store.get_review(1).rev == 1
    store.add_revision(2, chain("blue"), origin="edited", author="bob")  # rev 2 is current
    with pytest.raises(StaleRevisionError, match="you reviewed revision 1, but the current revision is 2"):
        store.set_review(2, "accepted", reviewer="ann", expected_version=0, rev=1)
    assert store.get_review(2).version == 0  # nothing saved
    assert store.set_review(2, "needs_fix", reviewer="ann", expected_version=0).rev == 2  # None: the current one


def test_a_new_curated_revision_reopens_the_sample_and_the_log_keeps_the_decision(store):
    store.set_review(1, "accepted", reviewer="ann", note="fine", expected_version=0, rev=1)
    run = store.create_run("evaluation", {})
    store.add_revision(1, chain("model"), origin="prediction", author="model", run_id=run)
    assert store.get_review(1).status == "accepted"  # a model output does not change the curated chain
    store.add_revision(1, chain("blue"), origin="edited", author="bob")
    review = store.get_review(1)
    assert (review.status, review.reviewer, review.version, review.rev) == ("pending", "bob", 2, 3)
    assert "revision 3 (edited) came after the accepted decision on revision 1" in review.note
    assert store.count(status="pending") == 6 and store.count(status="accepted") == 0
    log = [(r.status, r.reviewer, r.rev, r.version) for r in store.review_log(1)]
    assert log == [("accepted", "ann", 1, 1), ("pending", "bob", 3, 2)]
    store.set_review(1, "accepted", reviewer="ann", expected_version=2, rev=3)
    store.revert(1, 1, author="ann")  # a revert is a new revision too
    assert store.get_review(1).status == "pending"


def test_export_accepted_writes_exactly_the_accepted_revisions(store, tmp_path):
    """Accept, then a new revision: the sample is no longer exported as accepted until the new
    revision is accepted; then the new revision's text is what is exported."""
    first = store.current_chain(1)
    store.set_review(1, "accepted", reviewer="ann", expected_version=0, rev=first.rev)
    store.set_review(2, "accepted", reviewer="ann", expected_version=0, rev=1)
    records = export_accepted(store, tmp_path / "a")
    assert [(r["sample_id"], r["messages"][1]["content"]) for r in records] == [
        (1, first.text),
        (2, store.current_chain(2).text),
    ]
    edited = store.add_revision(1, chain("blue"), origin="edited", author="bob")
    assert [r["sample_id"] for r in export_accepted(store, tmp_path / "b")] == [2]
    store.set_review(1, "accepted", reviewer="ann", expected_version=store.get_review(1).version, rev=edited.rev)
    records = export_accepted(store, tmp_path / "c")
    assert [(r["sample_id"], r["messages"][1]["content"]) for r in records] == [
        (1, edited.text),
        (2, store.current_chain(2).text),
    ]


def test_migration_binds_existing_reviews_and_reopens_overtaken_ones(tmp_path):
    path = tmp_path / "old.db"
    db = old_schema_db(
        path, "m005_reviews_pinned_to_revisions", [("o1", "a.png", "Q?", "a", "[]"), ("o2", "b.png", "Q?", "a", "[]")]
    )
    for sample, rev, at in [(1, 1, "2025-01-02"), (1, 2, "2025-01-05"), (2, 1, "2025-01-02")]:
        db.execute(
            "INSERT INTO chain_revisions (sample_id, rev, origin, author, created_at, chain, text, valid, n_steps)"
            " VALUES (?, ?, 'edited', 'a', ?, '{\"steps\": [], \"answer\": null}', 't', 0, 0)",
            [sample, rev, at],
        )
    # Sample 1 was accepted on revision 1, then revision 2 came: the old code kept it "accepted".
    db.execute("INSERT INTO reviews VALUES (1, 'accepted', 'ann', '', '2025-01-03', 1)")
    db.execute("INSERT INTO reviews VALUES (2, 'rejected', 'ann', 'blurry', '2025-01-03', 1)")
    db.conn.commit()
    db.close()

    store = Store.open(path)
    one, two = store.get_review(1), store.get_review(2)
    assert (one.status, one.version, one.rev, one.reviewer) == ("pending", 2, 2, "migration")
    assert (two.status, two.version, two.rev, two.note) == ("rejected", 1, 1, "blurry")
    assert [(r.status, r.rev) for r in store.review_log(1)] == [("accepted", 1), ("pending", 2)]
    assert store.count(status="accepted") == 0
    store.close()


def test_drafts_are_kept_per_curator_and_sample(store):
    assert store.get_draft("ann", 1) is None
    store.put_draft("ann", 1, base_rev=1, data={"steps": [], "answer": "x"}, step=2)
    store.put_draft("ann", 1, base_rev=1, data={"steps": [], "answer": "y"}, step=0)
    store.put_draft("bob", 2, base_rev=1, data={"steps": [], "answer": "z"})
    draft = store.get_draft("ann", 1)
    assert (draft.base_rev, draft.data["answer"], draft.step) == (1, "y", 0)
    assert store.drafted("ann", [1, 2, 3]) == {1} and store.count(draft_of="bob") == 1
    assert [r.id for r in store.query(draft_of="ann")] == [1]
    store.drop_draft("ann", 1)
    assert store.get_draft("ann", 1) is None and store.drafted("ann", [1]) == set()


@pytest.mark.parametrize("sort", sorted(SORT_KEYS))
@pytest.mark.parametrize("descending", [False, True])
def test_neighbours_and_positions_follow_the_query_order(store, sort, descending):
    """Walking with `neighbour` from the first sample visits exactly what `query` lists, in order
    (NULLs last); `position` is each one's index, also for a sample the filter no longer matches."""
    store.add_revision(3, "<think><area>[]</area></think><answer>x</answer>", origin="edited", author="a")
    store.set_review(4, "accepted", reviewer="ann", expected_version=0)
    store.add_sample(
        dataset="toy",
        source_id="nochain",
        image="images/x.png",
        question="Q?",
        answer="a",
        gt_boxes=[],
        width=8,
        height=8,
    )  # no chain: NULL metrics
    order = [r.id for r in store.query(sort=sort, descending=descending, limit=-1)]
    walked, current = [order[0]], order[0]
    while (current := store.neighbour(current, +1, sort=sort, descending=descending)) is not None:
        walked.append(current)
    assert walked == order
    assert [store.position(i, sort=sort, descending=descending) for i in order] == list(range(len(order)))
    assert store.neighbour(order[-1], -1, sort=sort, descending=descending) == order[-2]
    assert store.neighbour(order[0], 2, sort=sort, descending=descending) == order[2]
    pending = [r.id for r in store.query(status="pending", sort=sort, descending=descending, limit=-1)]
    after_4 = next((i for i in order[order.index(4) + 1 :] if i in pending), None)
    assert store.neighbour(4, +1, sort=sort, descending=descending, status="pending") == after_4
