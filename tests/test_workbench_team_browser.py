"""A team in real chromium: an admin and two curators signed in with store accounts. The admin
assigns each curator a queue from the current filter; each curator's screen opens on "my queue"
and they work it with the keys; a blind second review (QA) of each decided sample goes to the
other curator, whose screen does not show the first decision; the agreement report in Stats
shows the κ and counts computed here by hand; the admin's bulk accept of a filter, then its
undo, restores every earlier status; the admin's list follows the curators' decisions by itself;
curators see no Team tab, and Sign out signs out."""

from __future__ import annotations

import re

import pytest

from db.store import Store
from tests.support.workbench import TIMEOUT, copy_store, login, pick, serve, settle, shown, wait_shown, wait_text
from workbench.app import LIVE_EVERY_S

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ACCOUNTS = {"root": ("admin", "root-pw"), "ann": ("curator", "ann-pw"), "bob": ("curator", "bob-pw")}
FIRST = {"ann": {1: "accepted", 2: "accepted", 3: "rejected", 4: "accepted"}}
FIRST["bob"] = {5: "accepted", 6: "rejected", 7: "accepted", 8: "accepted"}
SECOND = {"bob": {1: "accepted", 2: "rejected", 3: "rejected", 4: "accepted"}}  # bob's blind look at ann's
SECOND["ann"] = {5: "accepted", 6: "accepted", 7: "accepted", 8: "rejected"}
KEYS = {"accepted": "a", "rejected": "x"}


@pytest.fixture
def served(demo_db, tmp_path):
    db = copy_store(demo_db, tmp_path / "sif.db")
    with Store.open(db) as store:
        for name, (role, password) in ACCOUNTS.items():
            store.add_user(name, role, password)
    with serve(db) as url:  # no --auth: the store's accounts sign in
        yield Store.open(db), url


def sign_in(chromium, url: str, name: str):
    return login(chromium, url, name, ACCOUNTS[name][1])


def listed(page) -> list[int]:
    return [int(x) for x in page.locator("#wb-list [data-sample]").evaluate_all("rs => rs.map(r => r.dataset.sample)")]


def work_queue(page, decisions: dict[int, str]) -> None:
    """Decide the queue on screen, in its order, with the keys."""
    ids = sorted(decisions)
    for i, sample_id in enumerate(ids):
        wait_shown(page, sample_id)
        page.keyboard.press(KEYS[decisions[sample_id]])
        if i + 1 < len(ids):
            wait_shown(page, ids[i + 1])
    settle(page)


def kappa(pairs: list[tuple[str, str]]) -> float:
    """Cohen's κ by hand: (p_o − p_e) / (1 − p_e)."""
    n = len(pairs)
    p_o = sum(a == b for a, b in pairs) / n
    labels = {x for pair in pairs for x in pair}
    p_e = sum(sum(a == k for a, _ in pairs) * sum(b == k for _, b in pairs) for k in labels) / n**2
    return (p_o - p_e) / (1 - p_e)


def test_assign_queues_blind_second_reviews_agreement_and_bulk_undo(chromium, served):
    store, url = served
    admin = sign_in(chromium, url, "root")
    pick(admin, "wb-f-status", "pending")
    admin.get_by_role("tab", name="Team").click()
    for curator in ("ann", "bob"):
        pick(admin, "wb-assign-curator", curator)
        admin.locator("#wb-assign-n input").fill("4")
        admin.locator("#wb-assign").click()
        wait_text(admin, "wb-assign-msg", f"Assigned 4 sample(s) of this filter to {curator}.")
    assert store.queue("ann") == [1, 2, 3, 4] and store.queue("bob") == [5, 6, 7, 8]

    # Each curator's screen opens on their queue; they work it; neither sees the Team tab.
    screens = {name: sign_in(chromium, url, name) for name in ("ann", "bob")}
    for name, page in screens.items():
        assert page.locator("#wb-f-view input").is_checked()
        assert listed(page) == sorted(FIRST[name]) and shown(page) == min(FIRST[name])
        assert not page.get_by_role("tab", name="Team").is_visible()
        work_queue(page, FIRST[name])
    for name, decided in FIRST.items():
        assert {s: (store.get_review(s).status, store.get_review(s).reviewer) for s in decided} == {
            s: (status, name) for s, status in decided.items()
        }
    # The admin's list (the pending filter, on the Curate tab) followed their decisions by itself.
    admin.get_by_role("tab", name="Curate").click()
    admin.wait_for_function(
        "n => document.querySelector('#wb-count').textContent.trim().startsWith(n + ' matching')",
        arg=str(store.count(status="pending")),
        timeout=3000 * LIVE_EVERY_S,
    )

    # Second reviews (as `sif qa sample --fraction 1 --status accepted,rejected` would pick them):
    # each decided sample goes, blind, to the other curator.
    picked = store.qa_sample(1.0, seed=1, reviewers=["ann", "bob"], statuses=("accepted", "rejected"))
    assert sorted(picked) == [(s, "bob") for s in range(1, 5)] + [(s, "ann") for s in range(5, 9)]
    for name, page in screens.items():
        page.reload()
        page.locator("#wb-info").get_by_text("Question:").wait_for(timeout=TIMEOUT)
        assert listed(page) == sorted(SECOND[name])
        first_reviewer = "bob" if name == "ann" else "ann"
        info = page.locator("#wb-info").inner_text()
        assert "yours to decide" in info and first_reviewer not in info and "accepted" not in info
        assert set(page.locator("#wb-list .wb-pill").all_inner_texts()) == {"pending"}  # the list says nothing either
        work_queue(page, SECOND[name])
    for decided in FIRST.values():  # the second reviews left the samples' own reviews alone
        assert {s: store.get_review(s).status for s in decided} == decided

    # Stats: the agreement report against κ computed here from the same decisions.
    pairs = [(FIRST[a][s], SECOND[b][s]) for a, b in (("ann", "bob"), ("bob", "ann")) for s in FIRST[a]]
    expected = f"{kappa(pairs):.3f}"
    assert expected == "0.143"
    admin.get_by_role("tab", name="Stats").click()
    for name in ("ann", "bob"):
        row = admin.locator(f'#wb-team-report tr[data-curator="{name}"]')
        row.wait_for(timeout=TIMEOUT)
        cell = {key: row.locator(f'td[data-key="{key}"]').inner_text() for key in ("kappa", "pairs", "done")}
        accepted = sum(v == "accepted" for v in FIRST[name].values())
        assert cell == {"kappa": expected, "pairs": "8", "done": "8"}
        assert row.locator('td[data-key="accepted"]').inner_text() == str(accepted)

    # Bulk accept of the pending filter, then undo: every earlier status is back.
    before = {r.id: r.status for r in store.query(limit=1000)}
    pending = [s for s, status in before.items() if status == "pending"]
    admin.get_by_role("tab", name="Team").click()
    admin.locator("#wb-bulk-count").click()
    wait_text(admin, "wb-bulk-msg", f"all {len(pending)} sample(s) of the current filter")
    admin.locator("#wb-bulk-confirm").click()
    wait_text(admin, "wb-bulk-msg", re.compile(rf"Batch \d+: {len(pending)} sample\(s\) accepted by root"))
    assert {store.get_review(s).status for s in pending} == {"accepted"}
    admin.locator("#wb-bulk-undo").click()
    wait_text(admin, "wb-bulk-msg", f"{len(pending)} sample(s) have their earlier status back")
    assert {r.id: r.status for r in store.query(limit=1000)} == before

    # Sign out: the sign-in page again.
    ann = screens["ann"]
    ann.locator("#wb-signout").click()
    ann.locator('input[type="password"]').wait_for(timeout=TIMEOUT)
