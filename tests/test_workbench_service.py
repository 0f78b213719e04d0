"""The workbench's operations on a real demo store: browse with filters and paging, next/previous
across pages, open with overlays, optimistic saves and reviews, revert, model outputs, stats."""

from __future__ import annotations

import numpy as np
import pytest

from db.store import ConflictError, Store
from sif.chain import Chain, Step
from sif.depth import DepthMap
from workbench.demo_db import ensure_demo
from workbench.render import fit_size
from workbench.service import PAGE_SIZE, Filters, Workbench
from workbench.stats import compute_stats


@pytest.fixture
def wb(demo_db, tmp_path):
    # a private copy per test: tests write revisions and reviews
    copy = tmp_path / "sif.db"
    with Store.open(demo_db) as src:
        src.conn.execute("VACUUM INTO ?", [str(copy)])
    return Workbench(Store.open(copy))


def test_browse_filters_sorts_and_pages(wb):
    page = wb.browse(Filters())
    assert page.total == 40 and page.pages == 2 and len(page.ids) == PAGE_SIZE
    invalid = wb.browse(Filters(validity="invalid"))
    assert invalid.total == wb.store.count(valid=False) > 0
    assert all(row[3] == "no" for row in invalid.rows)
    generated = wb.browse(Filters(origin="generated"))
    assert {row[4] for row in generated.rows} == {"generated"}
    worst = wb.browse(Filters(sort="final-step HIoU ↑"))
    hious = [float(r[7]) for r in worst.rows if r[7] != ""]
    assert hious == sorted(hious) and hious[0] < 1.0
    cubes = wb.browse(Filters(text="cube"))
    assert 0 < cubes.total < 40
    assert wb.browse(Filters(run=wb.store.list_runs()[0]["id"])).total == 40
    assert wb.browse(Filters(), page=5).page == 1  # clamped to the last page


def test_next_and_previous_turn_pages(wb):
    f = Filters()
    page = wb.browse(f)
    last = page.ids[-1]
    page2, nxt = wb.step(f, page, last, +1)
    assert page2.page == 1 and nxt == page2.ids[0] == last + 1
    back, prev = wb.step(f, page2, nxt, -1)
    assert back.page == 0 and prev == last
    assert wb.step(f, page, page.ids[0], -1)[1] == page.ids[0]  # stays at the start


def test_open_renders_both_overlays_and_the_strip(wb):
    o = wb.open(1)
    assert o.views.image.size == fit_size(o.sample.width, o.sample.height)  # zoomed to fit the editor
    assert o.views.depth.size == o.views.image.size
    n = len(o.revision.chain.steps)
    assert o.views.strip.width > o.views.strip.height * (n - 1)
    assert o.preview.format == 1.0 and o.outputs and o.outputs[0].origin == "prediction"
    assert o.draft.base_rev == o.revision.rev


def test_edit_conflict_keeps_both_edits(wb):
    a, b = wb.open(3).draft, wb.open(3).draft
    a.set_answer("alice's")
    b.set_answer("bob's")
    saved = wb.save(a, "alice")
    assert saved.origin == "edited" and saved.parent == b.base_rev
    with pytest.raises(ConflictError, match="changed by someone else"):
        wb.save(b, "bob")
    assert wb.store.current_chain(3).chain.answer == "alice's"
    b.base_rev = saved.rev  # "keep my edit on top of theirs"
    wb.save(b, "bob")
    assert [r.chain.answer for r in wb.store.history(3) if r.origin == "edited"] == ["alice's", "bob's"]


def test_review_conflict_and_revert(wb):
    version = wb.store.get_review(4).version
    wb.review(4, "accepted", "alice", "", version)
    with pytest.raises(ConflictError):
        wb.review(4, "rejected", "bob", "too loose", version)
    assert wb.store.get_review(4).status == "accepted"
    first = wb.store.history(4)[0]
    reverted = wb.revert(4, first.rev, "bob")
    assert wb.store.current_chain(4).text == first.text and reverted.author == "bob"


def test_a_kept_draft_is_handed_out_as_a_copy_and_rebuilt_for_a_new_revision_or_depth_map(wb, monkeypatch):
    sample = wb.store.get_sample(1)
    first, _ = wb.draft_of("ann", sample, None)
    first.set_text(0, "changed on one screen")
    first.steps[0].regions[0].bbox[0] = 0.987
    again, _ = wb.draft_of("ann", sample, first.base_rev)
    assert again.steps[0].text != "changed on one screen" and again.steps[0].regions[0].bbox[0] != 0.987
    assert not again.dirty and again.to_chain() == wb.draft_of("bob", sample, None)[0].to_chain()

    chain = again.to_chain()
    edited = Chain((Step(chain.steps[0].regions, "a new revision"), *chain.steps[1:]), chain.answer)
    assert wb.store.add_revision(1, edited, origin="edited", author="ann").rev > (first.base_rev or 0)
    assert wb.draft_of("ann", sample, None)[0].steps[0].text == "a new revision"
    assert wb.draft_of("ann", sample, first.base_rev)[0].steps[0].text == again.steps[0].text != "a new revision"

    flat = DepthMap(np.full((8, 8), 0.25, dtype=np.float32))  # the depth file was replaced: new auto depths
    monkeypatch.setattr(wb, "depth_map", lambda s: flat)
    assert {r.depth for s in wb.draft_of("ann", sample, None)[0].steps for r in s.regions if not r.manual} <= {0.25}


def test_stats_count_what_the_store_holds(wb):
    wb.review(1, "accepted", "alice", "", 0)
    s = compute_stats(wb.store)
    assert s.total == 40 and s.reviewed == 1
    assert s.status.count("accepted") == 1
    assert s.hiou.total() == s.with_chain == 40
    assert s.length.total() == 40
    assert s.valid == wb.store.count(valid=True)
    assert "validity rate" in s.summary()


def test_demo_is_built_once(tmp_path):
    calls = []
    db = ensure_demo(tmp_path, n=6, progress=False, echo=calls.append)
    assert db.is_file() and len(calls) == 1 and Store.open(db).count() == 6
    ensure_demo(tmp_path, n=6, progress=False, echo=calls.append)
    assert len(calls) == 1
