"""The four ways the workbench let unreviewed chains into the exported data, each driven in real
chromium against the real app on a real store (and each failing on the workbench before reviews
were bound to revisions and actions to the ids on screen):

1. an edit, then navigating away and back (keys, a row, a filter, a reload);
2. an edit, then accept;
3. accept, then a new revision, then `sif export --status accepted`;
4. `a`/`j` at 10 keys a second over 30 samples.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from cli.main import app as cli
from db.store import Store
from tests.support.workbench import (
    CURATORS,
    copy_store,
    drag,
    editor_point,
    login,
    message,
    pick,
    serve,
    settle,
    shot,
    shown,
    target,
    wait_shown,
    wait_target,
    wait_text,
)
from workbench.handlers import SAVE_AND_ACCEPT

pytestmark = pytest.mark.browser


@pytest.fixture
def store_url(demo_db, tmp_path):
    db = copy_store(demo_db, tmp_path / "sif.db")
    with serve(db, auth=CURATORS) as url:
        yield Store.open(db), url


def accepted_log(store: Store) -> list[tuple[int, int]]:
    """(sample, revision) of every acceptance ever saved."""
    return [tuple(r) for r in store.conn.execute("SELECT sample_id, rev FROM review_log WHERE status = 'accepted'")]


def export_accepted(store: Store, out) -> dict[int, str]:
    result = CliRunner().invoke(
        cli, ["export", "sft", "--out", str(out), "--status", "accepted", "--split", "all", "--db", str(store.path)]
    )
    if result.exit_code == 1 and "nothing exported: no sample matches the filters" in result.output:
        return {}  # an export with nothing to write refuses to write it (and says so)
    assert result.exit_code == 0, result.output
    return {r["sample_id"]: r["messages"][1]["content"] for r in json.loads((out / "sif_sft.json").read_text())}


def chain_boxes(page) -> str:
    """The boxes of the selected step as the chain list shows them."""
    return page.locator("#wb-chain .wb-selected .wb-step-head").inner_text()


def test_an_edit_survives_keys_rows_filters_and_reloads(chromium, store_url):
    store, url = store_url
    page = login(chromium, url, *CURATORS[0])
    first = shown(page)
    sample, before = store.get_sample(first), store.current_chain(first)
    page.locator('#wb-chain [data-step="1"]').click()
    wait_target(page, sample=first, step=1)
    x1, y1, x2, y2 = before.chain.steps[1].regions[0].bbox
    centre = editor_point(page, sample, (x1 + x2) / 2, (y1 + y2) / 2)
    drag(page, centre, (centre[0] - 30, centre[1] - 25))
    page.locator("#wb-accept").get_by_text(SAVE_AND_ACCEPT).wait_for()
    edited = chain_boxes(page)
    assert edited != "" and f"[{x1:.3f}" not in edited, "the box did not move"
    shot(page, "integrity-1-edited")

    def back_with_the_edit(how: str) -> None:
        wait_shown(page, first, draft=True)
        assert chain_boxes(page) == edited, f"the edit was lost after {how}"
        assert "Your unsaved edit of sample" in message(page), how
        assert store.current_chain(first).rev == before.rev  # nothing saved on the way

    page.keyboard.press("j")
    wait_shown(page, first + 1)
    page.keyboard.press("k")
    back_with_the_edit("j then k")

    page.locator(f'#wb-list [data-sample="{first + 2}"]').click()
    wait_shown(page, first + 2)
    page.locator(f'#wb-list [data-sample="{first}"]').click()
    back_with_the_edit("a row click and back")

    pick(page, "wb-f-valid", "invalid")
    page.wait_for_function(
        "id => JSON.parse(document.querySelector('#wb-target textarea').value).sample !== id", arg=first
    )
    assert target(page)["sample"] != first  # a filter change opens its first match
    pick(page, "wb-f-valid", "any")
    back_with_the_edit("a filter change and back")

    page.reload()
    page.locator("#wb-info").get_by_text("Question:").wait_for()
    back_with_the_edit("a reload")
    assert page.locator(f'#wb-list [data-sample="{first}"] .wb-draft').count() == 1
    assert store.get_draft("alice", first) is not None


def test_accept_with_an_edit_on_screen_accepts_that_edit_or_refuses(chromium, store_url):
    store, url = store_url
    page = login(chromium, url, *CURATORS[0])
    first = shown(page)
    old = store.current_chain(first)

    # Typed text whose edit had not reached the server (no input events): refused, nothing accepted.
    page.locator("#wb-step-text textarea").fill("a text the server has not seen")
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    wait_text(page, "wb-message", "Not accepted")
    page.locator("#wb-accept").get_by_text(SAVE_AND_ACCEPT).wait_for()
    assert store.get_review(first).status == "pending" and accepted_log(store) == []
    shot(page, "integrity-2-refused")

    # Typed by keyboard, Esc, a: what is on screen is saved and accepted (now or on the second press).
    page.locator("#wb-step-text textarea").click()
    page.keyboard.press("End")
    page.keyboard.type(" Typed by alice.")
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    settle(page)
    if store.get_review(first).status != "accepted":
        assert "Not accepted" in message(page)
        wait_shown(page, first, draft=True)
        page.keyboard.press("a")
        settle(page)
    review, saved = store.get_review(first), store.current_chain(first)
    assert review.status == "accepted" and review.rev == saved.rev > old.rev
    assert saved.chain.steps[0].text == "a text the server has not seen Typed by alice."
    assert saved.author == "alice" and saved.origin == "edited"
    assert accepted_log(store) == [(first, saved.rev)], "an older revision was accepted"
    assert shown(page) == first + 1  # and the next sample is open


def test_a_new_revision_after_an_acceptance_is_not_exported_as_accepted(chromium, store_url, tmp_path):
    store, url = store_url
    alice = login(chromium, url, *CURATORS[0])
    bob = login(chromium, url, *CURATORS[1])
    first = shown(alice)
    accepted = store.current_chain(first)
    alice.locator("#wb-stay").click()  # keep this sample open after the decision
    alice.keyboard.press("a")
    wait_text(alice, "wb-message", f"Accepted: sample {first}, revision {accepted.rev}")
    assert export_accepted(store, tmp_path / "e1") == {first: accepted.text}

    # Bob opens it (alice has it open, so his list started on the next one) and changes the answer
    # and saves: a new revision, which nobody accepted.
    bob.locator(f'#wb-list [data-sample="{first}"]').click()
    wait_shown(bob, first)
    wait_text(bob, "wb-message", f"alice has sample {first} open too")
    bob.locator("#wb-answer textarea, #wb-answer input").first.click()
    bob.keyboard.press("End")
    bob.keyboard.type(" (bob)")
    bob.locator("#wb-save").click()
    wait_text(bob, "wb-message", re.compile(r"Saved revision \d+ by bob.*pending review again"))
    bobs = store.current_chain(first)
    assert bobs.rev > accepted.rev and store.get_review(first).status == "pending"
    assert first not in export_accepted(store, tmp_path / "e2")

    # Alice still has the accepted revision on screen: her next decision is refused, then made on Bob's.
    alice.keyboard.press("a")
    wait_text(alice, "wb-message", "changed since it was drawn on your screen")
    assert store.get_review(first).status == "pending"
    wait_text(alice, "wb-info", re.compile(rf"Revision: {bobs.rev} · origin edited · by bob"))
    wait_text(alice, "wb-info", re.compile(rf"Earlier: accepted by alice on revision {accepted.rev}"))
    shot(alice, "integrity-3-reopened")
    alice.keyboard.press("a")
    wait_text(alice, "wb-message", f"Accepted: sample {first}, revision {bobs.rev}")
    assert export_accepted(store, tmp_path / "e3") == {first: bobs.text}
    assert [(r.status, r.rev) for r in store.review_log(first)] == [
        ("accepted", accepted.rev),
        ("pending", bobs.rev),
        ("accepted", bobs.rev),
    ]


def test_fast_keys_accept_exactly_the_samples_on_screen_once_each(chromium, tmp_path):
    from workbench.demo_db import build_demo

    db = build_demo(tmp_path / "demo30", n=30, progress=False)
    store = Store.open(db)
    with serve(db, auth=CURATORS) as url:
        page = login(chromium, url, *CURATORS[0])
        page.evaluate(
            """() => { window.pressed = [];
            document.addEventListener('keydown', (e) => {
              const info = document.querySelector('#wb-info .wb-info');
              window.pressed.push([e.key, info ? Number(info.dataset.sample) : null]);
            }, true); }"""
        )
        for i in range(60):  # a, j, a, j, … every 100 ms: faster than the screen can follow
            page.keyboard.press("aj"[i % 2])
            page.wait_for_timeout(100)
        settle(page, quiet_ms=2500, timeout_s=120)
        shot(page, "integrity-4-fast-keys")
        pressed = page.evaluate("() => window.pressed")
    on_screen_at_a = {sample for key, sample in pressed if key == "a"}
    log = accepted_log(store)
    accepted = [sample for sample, _ in log]
    assert sorted(set(accepted)) == sorted(on_screen_at_a), "a sample was accepted that was not on screen"
    assert len(accepted) == len(set(accepted)), "a sample was accepted twice"
    for sample, rev in log:
        assert rev == store.current_chain(sample).rev
    assert len(on_screen_at_a) >= 3  # the keys did move through the list (how far depends on the machine)
