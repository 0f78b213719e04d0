"""Queues, blind second reviews, gold checks, the agreement report (κ computed by hand here),
accounts and the model-disagreement priority, on a real store."""

from __future__ import annotations

import json

import pytest
import yaml

from db.importers import import_file, sif50k_converter
from db.store import Store, StoreError
from db.team import AuthFile, cohen_kappa, matched_iou
from sif.chain import Chain, Region, Step
from tests.support.store import old_schema_db, synth_folder


@pytest.fixture
def store(tmp_path):
    data = synth_folder(tmp_path / "data", n=12)
    s = Store.open(tmp_path / "sif.db", data_root=tmp_path / "data")
    assert import_file(s, data, sif50k_converter(data.parent), progress=False).errors == []
    yield s
    s.close()


def decide(store: Store, sample_id: int, status: str, who: str) -> None:
    store.set_review(sample_id, status, reviewer=who, expected_version=store.get_review(sample_id).version)


def boxed(*boxes) -> Chain:
    return Chain(
        (
            Step((Region((0.0, 0.0, 1.0, 1.0), 0.5),), "look everywhere"),
            Step(tuple(Region(b, 0.4) for b in boxes), "here it is"),
        ),
        "red",
    )


def test_assign_gives_disjoint_queues_that_empty_as_curators_decide(store):
    assert store.assign("ann", 4) == 4
    assert store.assign("bob", 4, dataset="synthetic") == 4
    ann, bob = store.queue("ann"), store.queue("bob")
    assert len(ann) == len(bob) == 4 and not set(ann) & set(bob)
    decide(store, ann[0], "accepted", "ann")
    decide(store, bob[0], "rejected", "ann")  # someone else's decision leaves bob's item in his queue
    assert store.queue("ann") == ann[1:]
    assert store.queue("ann", limit=2) == ann[1:3]
    assert store.queue("bob") == bob
    assert store.assign("cid", 100) == 12 - 8  # only samples in nobody's queue
    with pytest.raises(StoreError, match="status: only pending"):
        store.assign("cid", 1, status="accepted")
    with pytest.raises(StoreError, match="n: "):
        store.assign("cid", 0)


def test_qa_second_review_is_blind_separate_and_reported_with_kappa(store):
    ids = [r.id for r in store.query(limit=12)]
    firsts = {sid: ("ann" if k % 2 else "bob") for k, sid in enumerate(ids[:8])}
    for sid, who in firsts.items():
        decide(store, sid, "accepted", who)
    picked = store.qa_sample(0.5, seed=1, reviewers=["ann", "bob"])
    assert len(picked) == 4
    assert all(second != firsts[sid] for sid, second in picked)
    assert store.qa_sample(1.0, seed=1, reviewers=["ann", "bob"]) != []  # the rest; nothing picked twice
    pairs = {}
    for sid, second in store.conn.execute("SELECT sample_id, curator FROM second_reviews ORDER BY sample_id"):
        assert sid in store.queue(second) and store.blind_review(sid, second)
        verdict = "rejected" if sid % 3 == 0 else "accepted"
        store.second_review(sid, second, verdict)
        pairs[sid] = ("accepted", verdict)
        assert store.get_review(sid).status == "accepted"  # the sample's own review is untouched
        assert not store.blind_review(sid, second) and sid not in store.queue(second)
    report = store.qa_report()
    # κ by hand: the first decisions are all "accepted", so p_e = p2(accepted) and κ = 0 unless
    # the second rater also always accepted (p_e = 1: undefined).
    labels = list(pairs.values())
    p_o = sum(a == b for a, b in labels) / len(labels)
    p_e = sum(b == "accepted" for _, b in labels) / len(labels)
    expected = None if p_e == 1 else (p_o - p_e) / (1 - p_e)
    assert report["ann"]["pairs"] + report["bob"]["pairs"] == 2 * len(labels)
    assert cohen_kappa(labels) == expected
    assert report["ann"]["done"] == sum(w == "ann" for w in firsts.values()) + sum(
        1 for sid, _ in pairs.items() if firsts[sid] == "bob"
    )


def test_kappa_on_a_crafted_case():
    # 10 items: both accept 4, both reject 3, first accepts/second rejects 2, first rejects/second accepts 1.
    pairs = [("a", "a")] * 4 + [("r", "r")] * 3 + [("a", "r")] * 2 + [("r", "a")]
    p_o = 7 / 10
    p_e = (6 / 10) * (5 / 10) + (4 / 10) * (5 / 10)  # first: 6 a, 4 r; second: 5 a, 5 r
    assert cohen_kappa(pairs) == pytest.approx((p_o - p_e) / (1 - p_e))
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a")] * 3) is None
    assert cohen_kappa([]) is None


def test_box_agreement_when_both_edited_and_gold_accuracy(store):
    a, b, g = [r.id for r in store.query(limit=3)]
    store.add_revision(a, boxed((0.1, 0.1, 0.5, 0.5)), origin="edited", author="ann")
    decide(store, a, "accepted", "ann")
    [(sid, second)] = store.qa_sample(1.0, seed=0, reviewers=["ann", "bob"])
    assert (sid, second) == (a, "bob")
    store.second_review(a, "bob", "accepted", chain=boxed((0.1, 0.1, 0.5, 0.3)))
    store.mark_gold([g], "rejected")
    assert store.assign("cid", 2) == 2
    assert g in store.queue("cid")  # gold mixed in, unannounced but blind
    assert store.blind_review(g, "cid")
    store.second_review(g, "cid", "accepted")
    report = store.qa_report()
    assert report["bob"]["box_iou"] == pytest.approx(0.5)  # same box, half the height
    assert report["ann"]["box_iou"] == pytest.approx(0.5)
    assert report["bob"]["text_change_rate"] == 0.0  # the texts are the ones ann wrote
    assert report["cid"]["gold_n"] == 1 and report["cid"]["gold_accuracy"] == 0.0
    assert report["bob"]["kappa"] is None  # one pair, one label each: p_e = 1


def test_matched_iou_pairs_boxes_one_to_one():
    left = [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]
    assert matched_iou(left, left[::-1]) == pytest.approx(1.0)
    assert matched_iou(left, left[:1]) == pytest.approx(0.5)  # the unmatched box counts 0


@pytest.mark.parametrize("where", ["store", "auth.json", "auth.yaml"])
def test_accounts_keep_salted_hashes_only(store, tmp_path, where):
    accounts = store if where == "store" else AuthFile(tmp_path / where)
    accounts.add_user("ann", "curator", "correct horse")
    accounts.add_user("root", "admin", "correct horse")
    assert accounts.verify_user("ann", "correct horse") == "curator"
    assert accounts.verify_user("root", "correct horse") == "admin"
    assert accounts.verify_user("ann", "wrong") is None
    assert accounts.verify_user("nobody", "correct horse") is None
    assert accounts.users() == [("ann", "curator"), ("root", "admin")]
    with pytest.raises(StoreError, match="role: 'boss'"):
        accounts.add_user("x", "boss", "pw")
    stored = (
        [r[0] for r in store.conn.execute("SELECT password_hash FROM users")]
        if where == "store"
        else [u["hash"] for u in yaml.safe_load((tmp_path / where).read_text())["users"].values()]
    )
    assert len(set(stored)) == 2 and all(h.startswith("$argon2") and "correct" not in h for h in stored)


def test_priority_puts_the_samples_the_model_disagrees_on_first(store):
    ids = [r.id for r in store.query(limit=4)]
    run = store.create_run("evaluation", {})
    far, near = ids[1], ids[2]
    for sid in (far, near):
        current = store.current_chain(sid)
        store.add_revision(sid, current.chain, origin="prediction", author="m", run_id=run)
    wrong = boxed((0.9, 0.9, 0.95, 0.95))
    store.add_revision(far, wrong, origin="prediction", author="m", run_id=run)
    order = [r.id for r in store.query(sort="priority", limit=4)]
    assert order[:2] == [far, near]  # samples without outputs last
    assert store.conn.execute("SELECT COUNT(*) FROM priority_stale").fetchone()[0] == 0
    store.add_revision(near, wrong, origin="prediction", author="m", run_id=run)
    store.add_revision(near, wrong, origin="prediction", author="m", run_id=run)
    assert [r.id for r in store.query(sort="priority", limit=2)] == [near, far]  # refreshed on the way


def test_migration_queues_the_priority_of_outputs_already_stored(tmp_path):
    path = tmp_path / "old.db"
    db = old_schema_db(path, "m009_team", [("o1", "a.png", "Q?", "a", "[[0.1, 0.1, 0.5, 0.5]]")])
    db.execute(
        "INSERT INTO runs (id, kind, status, created_at, updated_at) VALUES ('eval-1', 'evaluation', 'done', 'x', 'x')"
    )
    chain = json.dumps(boxed((0.6, 0.6, 0.9, 0.9)).to_json())
    db.execute(
        "INSERT INTO chain_revisions (sample_id, rev, origin, author, created_at, chain, text, valid, n_steps, run_id)"
        " VALUES (1, 1, 'prediction', 'm', '2025-01-02', ?, 't', 1, 2, 'eval-1')",
        [chain],
    )
    db.conn.commit()
    db.close()
    with Store.open(path, data_root=tmp_path) as store:
        assert [r[0] for r in store.conn.execute("SELECT sample_id FROM priority_stale")] == [1]
        [row] = store.query(sort="priority")
        priority = store.conn.execute("SELECT priority FROM sample_index WHERE sample_id = 1").fetchone()[0]
    assert row.id == 1 and priority == pytest.approx(1.0)  # misses the ground truth entirely, one output


def test_a_curator_who_checked_a_gold_sample_is_not_asked_to_qa_it_again(store):
    gold = store.query(limit=1)[0].id
    store.mark_gold([gold], "accepted")
    assert store.assign("bob", 3) == 3 and gold in store.queue("bob")
    store.second_review(gold, "bob", "accepted")
    decide(store, gold, "accepted", "ann")
    assert store.qa_sample(1.0, seed=0, reviewers=["ann", "bob"]) == []  # bob has had it, ann decided it
    assert store.qa_sample(1.0, seed=0, reviewers=["ann", "bob", "cid"]) == [(gold, "cid")]
