"""Bulk writes on real SQLite files: `Store.import_samples` defers the per-row index/FTS triggers
and builds those rows set-based; the result must be what the triggers build one row at a time."""

from __future__ import annotations

import sqlite3

import pytest

from db.schema import DEFERRED_KEY
from db.store import Store, StoreError
from tests.support.store import RELEASED_CHAIN as CHAIN_A
from tests.support.store import old_schema_db

CHAIN_B = CHAIN_A.replace("wears a pink dress", "holds a blue cup").replace("\npink\n", "\nblue\n")
BROKEN = '<think><area>[{"bbox_2d":[0,0,1,1],"depth":0.5}]</area><text>a lonely zebra'


def fields(i: int, **kw) -> dict:
    out = dict(
        dataset="ab"[i % 2],
        source_id=f"s{i}",
        image=f"img/{i}.png",
        question=f"Where is the mug {i}?",
        answer="red",
        gt_boxes=[[0.1, 0.2, 0.4, 0.6]],
        width=64,
        height=48,
    )
    out.update(kw)
    return out


# New samples with and without chains, a bad record, the same content twice (the second time
# with another chain: a second revision whose parent is the first) and an invalid chain.
RECORDS = [
    (fields(0), CHAIN_A),
    (fields(1), None),
    (fields(2, width=0), CHAIN_A),
    (fields(3), CHAIN_B),
    (fields(0), CHAIN_A),
    (fields(3), CHAIN_A),
    (fields(4), BROKEN),
    (fields(1), CHAIN_B),
]


def index_rows(store: Store) -> list[tuple]:
    return [
        tuple(r)
        for r in store.conn.execute(
            "SELECT i.sample_id, i.dataset, i.split, i.status, i.rev, i.origin, i.valid, i.n_steps, i.final_hiou,"
            " i.depth_ok, c.sample_id, i.updated_at = COALESCE(c.created_at, i.created_at)"
            " FROM sample_index i LEFT JOIN chain_revisions c ON c.id = i.revision_id ORDER BY i.sample_id"
        )
    ]


def searches(store: Store) -> dict[str, list[int]]:
    return {
        words: [r.id for r in store.query(text=words)]
        for words in ("mug", "mug 3", "blue cup", "pink dress", "zebra", "lonely", "red", "s0")
    }


def test_bulk_import_builds_the_rows_the_triggers_build(tmp_path):
    one_by_one = Store.open(tmp_path / "single.db")
    single = []
    for sample, chain in RECORDS:
        try:
            single.append(one_by_one.import_sample(chain, author="import", **sample))
        except StoreError as exc:
            single.append(exc)
    bulk = Store.open(tmp_path / "bulk.db")
    results = bulk.import_samples([(sample, chain, None) for sample, chain in RECORDS], author="import")

    assert [r if isinstance(r, tuple) else str(r) for r in results] == [
        r if isinstance(r, tuple) else str(r) for r in single
    ]
    assert results[0] == (1, True, True) and results[4] == (1, False, False) and results[5] == (3, False, True)
    assert isinstance(results[2], StoreError) and "width" in str(results[2])
    assert index_rows(bulk) == index_rows(one_by_one)
    assert searches(bulk) == searches(one_by_one)
    assert searches(bulk)["blue cup"] == [2] and searches(bulk)["zebra"] == [4]
    assert [(r.rev, r.parent) for r in bulk.history(3)] == [(1, None), (2, 1)]
    assert bulk.current_chain(2).text == one_by_one.current_chain(2).text
    assert bulk.conn.execute("SELECT COUNT(*) FROM meta WHERE key = ?", [DEFERRED_KEY]).fetchone()[0] == 0

    # A later batch: stored samples get their new chains through the triggers, new ones set-based.
    more = [(fields(4), CHAIN_B), (fields(5), CHAIN_B), (fields(1), CHAIN_B)]
    for sample, chain in more:
        one_by_one.import_sample(chain, author="import", **sample)
    assert bulk.import_samples([(s, c, None) for s, c in more], author="import") == [
        (4, False, True),
        (5, True, True),
        (2, False, False),
    ]
    assert index_rows(bulk) == index_rows(one_by_one)
    assert searches(bulk) == searches(one_by_one)
    assert bulk.count(text="zebra") == 0 and bulk.count(valid=True) == 5


def test_reviews_and_revisions_inside_a_deferred_block_reach_the_index(tmp_path):
    store = Store.open(tmp_path / "sif.db")
    store.import_samples([(fields(0), CHAIN_A, None)], author="import")
    with store.deferred_index():
        results = store.import_samples([(fields(1), None, None), (fields(2), None, None)], author="import")
        assert [r[:2] for r in results] == [(2, True), (3, True)]
        store.set_review(2, "accepted", reviewer="ann", expected_version=0)
        store.add_revision(2, CHAIN_B, origin="edited", author="ann")
        store.add_revision(3, CHAIN_B, origin="edited", author="ann")
        store.set_review(3, "needs_fix", reviewer="ann", expected_version=0)
        store.add_revision(1, CHAIN_B, origin="edited", author="ann")  # an older sample: triggers as usual
        assert store.count(text="blue") == 1  # the new samples are not indexed until the block ends
    # Sample 2 was accepted before it had a chain: the edited revision reopens it (a review is
    # bound to the revision it was made on).
    assert store.count(text="blue") == 3 and store.count(status="accepted") == 0
    assert [(r.id, r.status, r.origin, r.rev, r.valid) for r in store.query()] == [
        (1, "pending", "edited", 2, True),
        (2, "pending", "edited", 1, True),
        (3, "needs_fix", "edited", 1, True),
    ]
    updated = dict(store.conn.execute("SELECT sample_id, updated_at FROM sample_index").fetchall())
    # The time of the latest write, as the triggers record it.
    assert updated[2] == store.current_chain(2).created_at and updated[3] == store.get_review(3).updated_at


def test_a_failed_deferred_block_leaves_nothing_and_others_never_see_the_mark(tmp_path):
    store = Store.open(tmp_path / "sif.db")
    other = sqlite3.connect(tmp_path / "sif.db")
    with pytest.raises(RuntimeError), store.deferred_index():
        store.import_samples([(fields(0), CHAIN_A, None), (fields(1), None, None)], author="import")
        assert other.execute("SELECT COUNT(*) FROM meta WHERE key = ?", [DEFERRED_KEY]).fetchone()[0] == 0
        raise RuntimeError("stop")
    assert store.count() == 0
    assert store.conn.execute("SELECT COUNT(*) FROM samples_fts").fetchone()[0] == 0
    assert store.conn.execute("SELECT COUNT(*) FROM meta WHERE key = ?", [DEFERRED_KEY]).fetchone()[0] == 0
    # Writers outside a deferred block (another connection, say) keep the triggers.
    other.execute(
        "INSERT INTO samples (dataset, source_id, image, width, height, question, answer, gt_boxes,"
        " content_hash, created_at) VALUES ('x', 'o', 'a.png', 1, 1, 'Any zebra?', 'no', '[]', 'h', 'now')"
    )
    other.commit()
    assert store.count(text="zebra") == 1
    other.close()


def test_store_from_the_previous_schema_migrates_and_bulk_imports(tmp_path):
    path = tmp_path / "old.db"
    zebra = ("o1", "a.png", "Where is the zebra?", "left", "[[0.1,0.1,0.5,0.5]]")
    db = old_schema_db(path, "m004_deferrable_index_triggers", [zebra])
    db.execute(
        "INSERT INTO chain_revisions (sample_id, rev, origin, author, created_at, chain, text, valid,"
        " n_steps) VALUES (1, 1, 'imported', 'a', '2025-01-02', '{\"steps\": [], \"answer\": null}',"
        " 'zebra chain', 0, 0)"
    )
    db.conn.commit()
    db.close()

    store = Store.open(path)
    assert [r.rev for r in store.query()] == [1] and store.count(text="zebra chain") == 1
    store.import_samples([(fields(0), CHAIN_A, None), (fields(1), CHAIN_B, None)], author="import")
    store.add_revision(1, CHAIN_B, origin="edited", author="ann")
    assert store.count() == 3 and store.count(text="blue cup") == 2 and store.count(text="zebra chain") == 0
    assert [(r.id, r.origin) for r in store.query(sort="id")] == [(1, "edited"), (2, "imported"), (3, "imported")]
    store.close()
