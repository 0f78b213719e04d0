"""The shared list without a browser (`workbench.handlers`): the live refresh redraws the list and
counts only when the store changed (another curator's decision), "next" skips samples another
curator has open or decided since the list was loaded, the priority sort and source-id search
reach the store, and a blind second review hides the first decision and leaves it alone."""

from __future__ import annotations

import pytest

from db.store import Store
from tests.support.workbench import copy_store
from workbench.handlers import Context, Handlers, Target
from workbench.render import PictureFiles
from workbench.service import Filters, Workbench


@pytest.fixture
def h(demo_db, tmp_path):
    return Handlers(Workbench(Store.open(copy_store(demo_db, tmp_path / "sif.db"))), PictureFiles(tmp_path / "p"))


def ctx(out: dict | None = None, curator: str = "ann", **filters) -> Context:
    return Context(curator, Target.parse(out["target"]) if out else Target(), Filters(**filters))


def shown(out: dict) -> int | None:
    return Target.parse(out["target"]).sample


def test_the_live_list_redraws_only_when_the_store_changed(h):
    screen = h.load(ctx(status="pending"))
    first = h.refresh(ctx(screen, status="pending"), None)
    assert set(first) == {"list", "count", "page_info", "mark"}
    assert h.refresh(ctx(screen, status="pending"), first["mark"]) == {}  # nothing changed: nothing sent
    bob = h.load(ctx(curator="bob", status="pending"))
    h.decide(ctx(bob, curator="bob", status="pending"), "accepted")
    again = h.refresh(ctx(screen, status="pending"), first["mark"])
    assert again["mark"] != first["mark"] and f"<b>{h.store.count(status='pending')}</b> matching" in again["count"]


def test_next_skips_what_others_have_open_or_decided_since_the_list_was_loaded(h):
    ann = h.load(ctx())
    assert shown(ann) == 1
    bob = h.open_sample(ctx(curator="bob"), 2)  # bob has 2 open
    cy = h.open_sample(ctx(curator="cy"), 3)
    h.decide(ctx(cy, curator="cy"), "rejected")  # cy decided 3 after ann's list was loaded, and opened 4
    assert shown(bob) == 2
    nxt = h.move(ctx(ann), +1)
    assert shown(nxt) == 5
    assert shown(h.move(ctx(nxt), -1)) == 4  # going back is not skipping: k shows what is there


def test_priority_sort_and_source_id_search(h):
    top = h.wb.browse(Filters(sort="model disagreement (priority)"), 0).ids
    assert top == [r.id for r in h.store.query(sort="priority", limit=len(top))]
    source_id = h.store.get_sample(7).source_id
    assert h.wb.browse(Filters(text=source_id), 0).ids == [7]


def test_a_blind_second_review_hides_and_keeps_the_first_decision(h):
    store = h.store
    store.set_review(1, "accepted", reviewer="ann", expected_version=0, rev=store.current_chain(1).rev)
    assert store.qa_sample(1.0, seed=1, reviewers=["ann", "bob"]) == [(1, "bob")]
    screen = h.load(ctx(curator="bob"))
    assert Target.parse(screen["target"]).sample == 1  # "my queue" is bob's default view now
    assert screen["f_view"] is True
    assert "yours to decide" in screen["info"] and "ann" not in screen["info"] and "accepted" not in screen["list"]
    out = h.decide(ctx(screen, curator="bob"), "rejected", "looks wrong")
    assert "Rejected: sample 1" in out["message"]
    review = store.get_review(1)
    assert (review.status, review.reviewer) == ("accepted", "ann")
    assert store.qa_report()["bob"]["pairs"] == 1 and not store.blind_review(1, "bob")
