"""Curators working the same list at once, through the served app's API (gradio_client against
the real server): opening a sample claims it, "next" skips what others have open or decided, so
four curators on one pending list decide 40 different samples with no conflict and no sample
decided twice. A decision on a sample someone else decided after it was opened is not recorded
until the curator confirms it replaces theirs."""

from __future__ import annotations

import threading

import pytest

from db.store import Store
from tests.support.workbench import ApiCurator, copy_store, serve

TEAM = [(f"curator{i}", f"pw-{i}") for i in range(4)]
WARNINGS = ("Not ", "after you opened it", "open too")


@pytest.fixture(scope="module")
def team_db(tmp_path_factory):
    """More pending samples than the 40 decisions: the last sample each curator opens stays
    claimed by them when they stop."""
    from workbench.demo_db import build_demo

    return build_demo(tmp_path_factory.mktemp("team"), n=48, progress=False)


@pytest.fixture
def served(team_db, tmp_path):
    db = copy_store(team_db, tmp_path / "sif.db")
    with serve(db, auth=TEAM) as url:
        yield Store.open(db), url


def decisions(store: Store) -> list[tuple[int, str]]:
    return [
        (r[0], r[1])
        for r in store.conn.execute(
            "SELECT sample_id, reviewer FROM review_log WHERE status IN ('accepted', 'rejected', 'needs_fix')"
        )
    ]


def test_four_curators_on_one_pending_list_decide_40_distinct_samples(served):
    store, url = served
    pending = store.count(status="pending")
    assert pending >= 40
    curators = [ApiCurator(url, user, password, status="pending") for user, password in TEAM]
    start, problems, decided = threading.Barrier(len(curators)), [], {c.user: [] for c in curators}

    def work(c: ApiCurator) -> None:
        start.wait()
        c.load()
        for _ in range(10):
            shown = c.shown
            c.decide("accepted")
            decided[c.user].append(shown)
            if any(w in c.message for w in WARNINGS):
                problems.append((c.user, shown, c.message))

    threads = [threading.Thread(target=work, args=(c,)) for c in curators]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert problems == []
    log = decisions(store)
    samples = [s for s, _ in log]
    assert len(log) == 40 and len(set(samples)) == 40, f"{len(log)} decisions on {len(set(samples))} samples"
    for user, ids in decided.items():
        assert sorted(s for s, who in log if who == user) == sorted(ids)
    assert store.count(status="pending") == pending - 40


def test_a_decision_on_a_sample_decided_meanwhile_asks_before_replacing(served):
    store, url = served
    ann, bob = (ApiCurator(url, user, password) for user, password in TEAM[:2])
    ann.open(5)
    bob.open(5)  # bob opens it too (a row click): he is told ann has it open
    assert "curator0 has sample 5 open too" in bob.message
    ann.decide("accepted")
    bob.decide("rejected")  # bob lost the race: told, nothing recorded
    assert "curator0 decided sample 5" in bob.message and "Replace their decision" in bob.message
    assert bob.shown == 5 and store.get_review(5).status == "accepted"
    assert decisions(store) == [(5, "curator0")]
    bob.replace()
    assert store.get_review(5).status == "rejected" and store.get_review(5).reviewer == "curator1"
    # The same decision as theirs is not recorded twice.
    ann.open(6)
    bob.open(6)
    ann.decide("accepted")
    bob.decide("accepted")
    assert "not decided twice" in bob.message
    assert [s for s, _ in decisions(store)].count(6) == 1
