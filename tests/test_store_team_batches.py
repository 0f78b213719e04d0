"""Batches of decisions on a real store: every sample pinned to its current revision, one batch
row, undo restores each earlier review exactly and refuses when a sample was decided again;
claims, decided-since and the filters the CLI and workbench share (bad values name the filter
and change nothing)."""

from __future__ import annotations

import time

import pytest

from db.importers import import_file, sif50k_converter
from db.store import Store, StoreError
from tests.support.store import synth_folder


@pytest.fixture
def store(tmp_path):
    data = synth_folder(tmp_path / "data", n=8)
    s = Store.open(tmp_path / "sif.db", data_root=tmp_path / "data")
    assert import_file(s, data, sif50k_converter(data.parent), progress=False).errors == []
    yield s
    s.close()


def reviews(store: Store) -> dict[int, tuple]:
    return {
        r.id: (lambda v: (v.status, v.reviewer, v.note, v.rev))(store.get_review(r.id)) for r in store.query(limit=1000)
    }


def test_a_batch_pins_revisions_and_undo_restores_every_earlier_review(store):
    ids = [r.id for r in store.query(limit=100)]
    store.set_review(ids[0], "rejected", reviewer="ann", note="blurry", expected_version=0)
    store.set_review(ids[1], "needs_fix", reviewer="bob", expected_version=0)
    before = reviews(store)
    batch = store.decide_many("accepted", "admin", note="looks fine", status=["pending", "rejected"])
    assert batch.count == len(ids) - 1  # the needs_fix one is not in the filter
    for sid in ids:
        review = store.get_review(sid)
        if sid == ids[1]:
            assert review.status == "needs_fix"
            continue
        assert (review.status, review.reviewer, review.note) == ("accepted", "admin", "looks fine")
        assert review.rev == store.current_chain(sid).rev
    assert store.undo_batch(batch.id, "admin") == batch.count
    after = reviews(store)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert after[ids[0]] == before[ids[0]]  # reviewer, note and revision too
    with pytest.raises(StoreError, match="undone already"):
        store.undo_batch(batch.id)


def test_undo_is_refused_when_a_sample_was_decided_after_the_batch(store):
    ids = [r.id for r in store.query(limit=3)]
    batch = store.decide_many("rejected", "admin", ids=ids)
    store.set_review(ids[1], "accepted", reviewer="ann", expected_version=store.get_review(ids[1]).version)
    with pytest.raises(StoreError, match=f"sample {ids[1]} is now accepted by ann"):
        store.undo_batch(batch.id)
    assert [store.get_review(i).status for i in ids] == ["rejected", "accepted", "rejected"]


def test_a_batch_of_unknown_ids_or_an_empty_filter_changes_nothing(store):
    before = reviews(store)
    with pytest.raises(StoreError, match="ids: no sample with id 999"):
        store.decide_many("accepted", "admin", ids=[1, 999])
    with pytest.raises(StoreError, match="match no sample"):
        store.decide_many("accepted", "admin", text="nothing-like-this-anywhere")
    with pytest.raises(StoreError, match="status: 'maybe'"):
        store.decide_many("maybe", "admin", ids=[1])
    assert reviews(store) == before
    assert store.conn.execute("SELECT COUNT(*) FROM review_batches").fetchone()[0] == 0


@pytest.mark.parametrize(
    "filters, field",
    [
        ({"status": "done"}, "status"),
        ({"hiou_min": "high"}, "hiou_min"),
        ({"hiou_min": 0.9, "hiou_max": 0.1}, "hiou_min"),
        ({"hiou_max": 1.5}, "hiou_max"),
        ({"split": "holdout"}, "split"),
        ({"run_id": "eval-nope"}, "run"),
        ({"origin": "teacher"}, "origin"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_filters_name_the_filter(store, filters, field):
    with pytest.raises(StoreError, match=f"^{field}: "):
        store.count(**filters)


def test_thresholds_depth_check_and_source_id_search(store):
    rows = store.query(limit=100)
    with_hiou = [r for r in rows if r.final_hiou is not None]
    cut = sorted(r.final_hiou for r in with_hiou)[len(with_hiou) // 2]
    assert store.count(hiou_min=cut) == sum(r.final_hiou >= cut for r in with_hiou)
    assert store.count(hiou_max=str(cut)) == sum(r.final_hiou <= cut for r in with_hiou)
    assert store.count(depth_ok=True) == sum(r.depth_ok is True for r in rows)
    source = store.get_sample(rows[3].id).source_id
    assert [r.id for r in store.query(text=source)] == [rows[3].id]


def test_claims_and_decisions_since(store):
    a, b = [r.id for r in store.query(limit=2)]
    assert store.claim(a, "ann") is None
    assert store.claim(a, "bob") == "ann"
    assert store.claim(a, "ann", ttl_s=60) is None  # renewed
    assert store.claimed_by_others("bob") == {a}
    assert store.claimed_by_others("ann") == set()
    store.release_claim(a, "ann")
    assert store.claim(a, "bob") is None
    assert store.claim(b, "ann", ttl_s=-1) is None  # expired at once: not live
    assert store.claimed_by_others("bob") == set()
    assert store.claimed_by_others("ann") == {a}
    assert store.claim(b, "bob") is None  # an expired claim is no one's
    t = time.time()
    store.set_review(b, "accepted", reviewer="ann", expected_version=0)
    assert store.decided_since(t) == {b}
    assert store.decided_since(time.time()) == set()
