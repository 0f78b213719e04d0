"""The workbench in real chromium against the real app on a real demo store: filter, open, drag a
box (depth and reward preview follow), save, accept by keyboard, reload, revert; and two curators
saving the same sample. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest

from db.store import Store
from sif.depth import DepthMap
from tests.support.workbench import CURATORS, login, serve, shot

pytestmark = pytest.mark.browser
TIMEOUT = 30_000


@pytest.fixture(scope="module")
def app_url(demo_db):
    with serve(demo_db, auth=CURATORS) as url:
        yield url


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def open_sample(page, sample_id: int) -> None:
    first_column(page, "wb-list", sample_id).click()
    wait_text(page, "wb-info", f"Sample {sample_id} ")


def wait_text(page, elem_id: str, text: str | re.Pattern) -> None:
    page.locator(f"#{elem_id}").get_by_text(text).first.wait_for(timeout=TIMEOUT)


def first_column(page, elem_id: str, value: int):
    """The cell in the first column of a (virtualized) Gradio table that holds `value`."""
    cells = page.locator(f'#{elem_id} [role="gridcell"][data-col="0"]')
    return cells.filter(has_text=re.compile(rf"^\s*{value}\s*$")).first


ROW0 = """() => [...document.querySelectorAll('#wb-regions [role="gridcell"][data-row="0"]')]
    .map(c => c.innerText.trim()).join('|')"""


def region_row(page) -> list[str]:
    return page.evaluate(ROW0).split("|")


def feedback_value(page, label: str) -> str:
    row = page.locator("#wb-feedback tr").filter(has_text=label).first
    return row.locator("td").last.inner_text().strip()


def to_screen(page, width: int, height: int):
    """A function from picture pixels to screen points on the annotator's canvas, which fits the
    picture in, centred across and at the top (as gradio_image_annotation draws it)."""
    canvas = page.locator("#wb-annot canvas").first
    canvas.scroll_into_view_if_needed()
    bb = canvas.bounding_box()
    scale = min(bb["width"] / width, bb["height"] / height)
    ox, oy = bb["x"] + (bb["width"] - width * scale) / 2, bb["y"]
    return lambda x, y: (ox + x * scale, oy + y * scale)


N_ROWS = """n => document.querySelectorAll('#wb-regions [role="gridcell"][data-col="0"]').length === n"""


def wait_rows(page, n: int) -> None:
    """Until the regions table has n rows."""
    page.wait_for_function(N_ROWS, arg=n, timeout=TIMEOUT)


def drag_first_box(page, width: int, height: int, box_px, dx: int, dy: int) -> None:
    """Drag the annotator's first box by (dx, dy) screen pixels."""
    cx, cy = to_screen(page, width, height)((box_px[0] + box_px[2]) / 2, (box_px[1] + box_px[3]) / 2)
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + dx / 2, cy + dy / 2, steps=4)
    page.mouse.move(cx + dx, cy + dy, steps=4)
    page.mouse.up()


def test_filter_open_drag_save_accept_reload_revert(chromium, app_url, demo_db):
    store = Store.open(demo_db)
    invalid = store.count(valid=False)
    page = login(chromium, app_url, *CURATORS[0])
    shot(page, "01-opened")

    pick(page, "wb-f-valid", "invalid")
    wait_text(page, "wb-count", f"{invalid} matching")
    target = store.query(valid=False, limit=1)[0].id
    open_sample(page, target)
    sample = store.get_sample(target)
    chain = store.current_chain(target).chain
    last = len(chain.steps)
    page.locator("#wb-step label").filter(has_text=re.compile(rf"^\s*{last}\s*$")).click()
    wait_text(page, "wb-step-text", re.compile("."))
    page.wait_for_timeout(500)
    before_row, before_hiou = region_row(page), feedback_value(page, "final-step HIoU")
    shot(page, "02-filtered-step-selected")

    x1, y1, x2, y2 = chain.steps[-1].regions[0].bbox
    W, H = sample.width, sample.height
    drag_first_box(page, W, H, (x1 * W, y1 * H, x2 * W, y2 * H), dx=-25, dy=-20)
    page.wait_for_function(f"old => ({ROW0})() !== old", arg="|".join(before_row), timeout=TIMEOUT)
    page.wait_for_timeout(800)
    after_row, after_hiou = region_row(page), feedback_value(page, "final-step HIoU")
    shot(page, "03-box-dragged")
    assert after_row[:4] != before_row[:4], "the box did not move"
    assert after_row[4] != before_row[4], "the depth did not follow the box"
    assert after_row[5] == "auto"
    assert after_hiou != before_hiou, "the reward preview did not change"

    page.locator("#wb-save").click()
    wait_text(page, "wb-save-msg", re.compile(r"Saved.*revision \d+ by alice"))
    page.locator("#wb-info").click()
    page.keyboard.press("a")  # accept, by shortcut
    wait_text(page, "wb-review-msg", "accepted")
    shot(page, "04-saved-accepted")
    saved = store.current_chain(target)
    assert saved.origin == "edited" and saved.author == "alice"
    assert store.get_review(target).status == "accepted"

    page.reload()
    wait_text(page, "wb-info", "Question:")
    open_sample(page, target)
    wait_text(page, "wb-info", re.compile(rf"Revision:.*{saved.rev}.*edited.*alice"))
    wait_text(page, "wb-info", re.compile("Review:.*accepted.*alice"))
    page.get_by_role("tab", name="History").click()
    imported = next(r for r in store.history(target) if r.origin == "imported")
    first_column(page, "wb-history", imported.rev).click()
    wait_text(page, "wb-history-msg", f"revision {imported.rev} (imported")
    assert page.locator("#wb-diff").inner_text().strip(), "no diff shown"
    shot(page, "05-history-diff")
    page.locator("#wb-revert").click()
    wait_text(page, "wb-history-msg", f"restores revision {imported.rev}")
    shot(page, "06-reverted")
    reverted = store.current_chain(target)
    assert reverted.text == imported.text and reverted.author == "alice" and reverted.valid


def test_two_curators_saving_the_same_sample(chromium, app_url, demo_db):
    store = Store.open(demo_db)
    target = store.query(valid=True, limit=3)[2].id
    alice = login(chromium, app_url, *CURATORS[0])
    bob = login(chromium, app_url, *CURATORS[1])
    for page in (alice, bob):
        open_sample(page, target)
    for page, answer in ((alice, "answer by alice"), (bob, "answer by bob")):
        page.locator("#wb-answer textarea, #wb-answer input").first.fill(answer)
        page.wait_for_timeout(400)
    alice.locator("#wb-save").click()
    wait_text(alice, "wb-save-msg", "by alice")
    bob.locator("#wb-save").click()
    wait_text(bob, "wb-save-msg", "Conflict")
    shot(bob, "07-conflict")
    assert store.current_chain(target).chain.answer == "answer by alice"
    assert bob.locator("#wb-answer textarea, #wb-answer input").first.input_value() == "answer by bob"

    bob.locator("#wb-rebase").click()
    wait_text(bob, "wb-save-msg", "Save again")
    bob.locator("#wb-save").click()
    wait_text(bob, "wb-save-msg", "by bob")
    answers = [r.chain.answer for r in store.history(target) if r.origin == "edited"]
    assert answers == ["answer by alice", "answer by bob"], "an edit was lost"


def test_model_outputs_adopt_and_stats(chromium, app_url, demo_db):
    store = Store.open(demo_db)
    target = next(r.id for r in store.query(origin="prediction", limit=5) if r.id % 4 and r.id % 10 != 5)
    page = login(chromium, app_url, *CURATORS[0])
    open_sample(page, target)
    page.get_by_role("tab", name="Model outputs").click()
    wait_text(page, "wb-out-feedback", "final-step HIoU")
    shot(page, "08-model-outputs")
    before = region_row(page)
    page.locator("#wb-adopt").click()
    wait_text(page, "wb-save-msg", "into the editor")
    prediction = store.run_revisions(target)[0].chain
    page.wait_for_function(f"old => ({ROW0})() !== old", arg="|".join(before), timeout=TIMEOUT)
    first = prediction.steps[0].regions[0].bbox
    assert [float(v) for v in region_row(page)[:4]] == pytest.approx(list(first), abs=1e-3)

    page.get_by_role("tab", name="Stats").click()
    wait_text(page, "wb-stats-summary", "validity rate")
    page.locator("#wb-plot-hiou canvas, #wb-plot-hiou svg").first.wait_for(timeout=TIMEOUT)
    shot(page, "09-stats")


def test_draw_a_box_with_the_c_key_then_delete_one(chromium, app_url, demo_db):
    """`c` on the focused box editor starts a new box; drawing it adds a region to the step (with
    its depth from the map); Delete removes the selected box; the saved chain has them."""
    store = Store.open(demo_db)
    target = store.query(valid=True, limit=5)[4].id
    sample, chain = store.get_sample(target), store.current_chain(target).chain
    last = len(chain.steps)
    page = login(chromium, app_url, *CURATORS[0])
    open_sample(page, target)
    page.locator("#wb-step label").filter(has_text=re.compile(rf"^\s*{last}\s*$")).click()
    wait_text(page, "wb-step-text", re.compile("."))
    page.wait_for_timeout(500)
    n_before = len(chain.steps[-1].regions)
    wait_rows(page, n_before)

    W, H = sample.width, sample.height
    x1, y1, x2, y2 = chain.steps[-1].regions[0].bbox  # draw in the corner away from this box
    nx1, ny1 = (0.05 if x1 + x2 > 1 else 0.7), (0.05 if y1 + y2 > 1 else 0.7)
    new_box = (nx1, ny1, nx1 + 0.25, ny1 + 0.25)
    page.locator("#wb-annot .annotator-container").first.focus()
    page.keyboard.press("c")
    point = to_screen(page, W, H)  # after the focus, which may have scrolled the page
    page.mouse.move(*point(new_box[0] * W, new_box[1] * H))
    page.mouse.down()
    page.mouse.move(*point((new_box[0] + new_box[2]) / 2 * W, (new_box[1] + new_box[3]) / 2 * H), steps=4)
    page.mouse.move(*point(new_box[2] * W, new_box[3] * H), steps=4)
    page.mouse.up()
    wait_rows(page, n_before + 1)
    page.wait_for_timeout(800)
    shot(page, "10-box-drawn")

    page.locator("#wb-save").click()
    wait_text(page, "wb-save-msg", re.compile(r"Saved.*revision \d+ by alice"))
    saved = store.current_chain(target).chain.steps[-1].regions
    assert len(saved) == n_before + 1
    drawn = saved[-1]
    assert list(drawn.bbox) == pytest.approx(list(new_box), abs=0.02)
    depth = store.depth_file(sample)
    assert drawn.depth == pytest.approx(DepthMap.load(*depth).box_mean(drawn.bbox), abs=1e-3)

    # After a save the editor stays on the step. Delete removes the selected box: the one just
    # drawn, selected by a click in drag mode (`d`).
    assert page.locator("#wb-step input:checked").first.get_attribute("value") == str(last)
    page.locator("#wb-annot .annotator-container").first.focus()
    page.keyboard.press("d")
    point = to_screen(page, W, H)
    page.mouse.click(*point((new_box[0] + new_box[2]) / 2 * W, (new_box[1] + new_box[3]) / 2 * H))
    page.keyboard.press("Delete")
    wait_rows(page, n_before)
    page.wait_for_timeout(800)
    rev = store.current_chain(target).rev
    page.locator("#wb-save").click()
    wait_text(page, "wb-save-msg", re.compile(rf"Saved.*revision {rev + 1} by alice"))
    assert len(store.current_chain(target).chain.steps[-1].regions) == n_before
