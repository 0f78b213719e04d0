"""Empty states, not errors: in real chromium, every control of the workbench pressed on an empty
store and on a one-sample store (no outputs to adopt, nothing selected in the history) shows a
message or nothing, never an error toast or badge, and the server logs no traceback."""

from __future__ import annotations

import pytest

from db.store import Store
from tests.support.workbench import CURATORS, errors_on_page, login, serve, settle

pytestmark = pytest.mark.browser
BUTTONS = (
    "wb-page-prev",
    "wb-page-next",
    "wb-prev",
    "wb-next",
    "wb-step-prev",
    "wb-step-next",
    "wb-add-step",
    "wb-up-step",
    "wb-down-step",
    "wb-del-step",
    "wb-del-step",
    "wb-save",
    "wb-discard",
    "wb-needs-fix",
    "wb-reject",
    "wb-accept",
)
KEYS = ("j", "k", "[", "]", "g", "f", "x", "a", "Control+s", "/", "Escape")
FILTERS = {
    "wb-f-status": "accepted",
    "wb-f-valid": "invalid",
    "wb-f-origin": "none",
    "wb-f-sort": "chain length ↓",
}


def press_everything(page, *, with_sample: bool) -> list[str]:
    """Press every control of every tab; returns what was pressed."""
    pressed = []

    def after(what: str) -> None:
        pressed.append(what)
        page.wait_for_timeout(150)

    for elem_id in BUTTONS:
        page.locator(f"#{elem_id}").click()
        after(elem_id)
    page.locator("#wb-info").click()
    for key in KEYS:
        page.keyboard.press(key)
        after(key)
    page.keyboard.press("Escape")
    for radio in ("selected step", "all steps"):
        page.locator("#wb-show").get_by_text(radio).click()
        after(radio)
    for box in ("wb-gt", "wb-stay", "wb-f-drafts", "wb-f-drafts"):
        page.locator(f"#{box} input").click()
        after(box)
    page.locator("#wb-search textarea, #wb-search input").first.fill("nothing like this")
    page.keyboard.press("Enter")
    after("search")
    page.locator("#wb-search textarea, #wb-search input").first.fill("")
    page.keyboard.press("Enter")
    for elem_id, option in FILTERS.items():
        page.locator(f"#{elem_id} input").click()
        page.get_by_role("option", name=option, exact=True).click()
        after(elem_id)
        page.locator(f"#{elem_id} input").click()
        page.get_by_role("option", name="any" if elem_id != "wb-f-sort" else "id", exact=True).click()
    if with_sample:
        page.locator("#wb-list [data-sample]").first.click()
        page.locator("#wb-chain [data-step]").first.click()
        box = page.locator("#wb-strip img").first.bounding_box()
        page.mouse.click(box["x"] + 5, box["y"] + box["height"] / 2)
        after("list, chain and strip")
        page.locator("#wb-step-text textarea").type(" more")
        page.locator("#wb-answer textarea, #wb-answer input").first.type(" too")
        after("typing")
    for tab in ("Boxes & depth", "Checks", "History", "Model outputs", "Chain"):
        page.get_by_role("tab", name=tab).click()
        after(tab)
        if tab == "History":
            page.locator("#wb-revert").click()
            after("revert")
            if with_sample:
                page.locator("#wb-history [data-rev]").first.click()
                after("history row")
        if tab == "Model outputs":
            page.locator("#wb-adopt").click()
            after("adopt")
    for tab in ("Stats", "Keys", "Curate"):
        page.get_by_role("tab", name=tab, exact=True).click()
        after(tab)
    page.locator("#wb-stats-refresh").click(force=True) if page.locator("#wb-stats-refresh").is_visible() else None
    for elem_id in ("wb-discard", "wb-accept", "wb-next", "wb-prev"):
        page.locator(f"#{elem_id}").click()
        after(elem_id)
    page.reload()
    page.locator("#wb-user").get_by_text("Signed in as").wait_for()
    after("reload")
    return pressed


@pytest.mark.parametrize("samples", [0, 1])
def test_every_control_on_an_empty_and_a_one_sample_store(chromium, tmp_path, capfd, samples):
    if samples:
        from workbench.demo_db import build_demo

        db = build_demo(tmp_path / "one", n=1, progress=False)
    else:
        db = tmp_path / "empty.db"
        Store.open(db).close()
    capfd.readouterr()
    with serve(db, auth=CURATORS) as url:
        page = login(chromium, url, *CURATORS[0], wait_for_sample=bool(samples))
        if not samples:
            page.locator("#wb-info").get_by_text("no samples yet").wait_for()
        pressed = press_everything(page, with_sample=bool(samples))
        settle(page)
        errors = errors_on_page(page)
        text = page.locator("#wb-main").inner_text()
    logged = capfd.readouterr()
    assert len(pressed) > 40
    assert errors == 0, f"{errors} error toast(s) or badge(s) on the page"
    assert "Traceback" not in logged.err + logged.out, logged.err[-3000:]
    assert "Error" not in text
