"""The workbench in real chromium against the real app on a real demo store: filter, open, drag a
box (depth and reward preview follow), save, accept by keyboard, reload, revert; two curators
saving the same sample; model outputs and stats; drawing and deleting boxes with the editor's
keys. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest

from db.store import Store
from sif.depth import DepthMap
from tests.support.workbench import (
    CURATORS,
    copy_store,
    drag,
    editor_point,
    login,
    pick,
    serve,
    shot,
    target,
    wait_shown,
    wait_target,
    wait_text,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(demo_db, tmp_path_factory):
    db = copy_store(demo_db, tmp_path_factory.mktemp("browser") / "sif.db")
    with serve(db, auth=CURATORS) as url:
        yield db, url


def open_sample(page, sample_id: int) -> None:
    page.locator(f'#wb-list [data-sample="{sample_id}"]').click()
    wait_shown(page, sample_id)
    wait_text(page, "wb-info", f"Sample {sample_id} ")


def select_step(page, index: int) -> None:
    page.locator(f'#wb-chain [data-step="{index}"]').click()
    wait_target(page, step=index)


REGIONS = """() => [...document.querySelectorAll('#wb-chain .wb-selected .wb-region')].map(e => e.innerText.trim())"""


def regions(page) -> list[str]:
    """The selected step's regions as the chain list shows them: '[x1, y1, x2, y2] depth d (typed)'."""
    return page.evaluate(REGIONS)


def region_numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+\.\d+", text)]


def check_value(page, label: str) -> str:
    """A reward's value in the checks line under the chain."""
    return page.locator("#wb-checks span").filter(has_text=label).first.locator("b").inner_text().strip()


def wait_regions(page, n: int) -> None:
    page.wait_for_function(f"n => ({REGIONS})().length === n", arg=n, timeout=30_000)


def test_filter_open_drag_save_accept_reload_revert(chromium, served):
    db, url = served
    store = Store.open(db)
    invalid = store.count(valid=False)
    page = login(chromium, url, *CURATORS[0])
    shot(page, "01-opened")

    pick(page, "wb-f-valid", "invalid")
    wait_text(page, "wb-count", f"{invalid} matching")
    target_id = store.query(valid=False, limit=2)[1].id
    open_sample(page, target_id)
    sample = store.get_sample(target_id)
    chain = store.current_chain(target_id).chain
    last = len(chain.steps) - 1
    select_step(page, last)
    before, before_hiou = regions(page)[0], check_value(page, "final-step HIoU")
    shot(page, "02-filtered-step-selected")

    x1, y1, x2, y2 = chain.steps[-1].regions[0].bbox
    centre = editor_point(page, sample, (x1 + x2) / 2, (y1 + y2) / 2)
    drag(page, centre, (centre[0] - 25, centre[1] - 20))
    page.wait_for_function(f"old => ({REGIONS})()[0] !== old", arg=before, timeout=30_000)
    after, after_hiou = regions(page)[0], check_value(page, "final-step HIoU")
    shot(page, "03-box-dragged")
    assert region_numbers(after)[:4] != region_numbers(before)[:4], "the box did not move"
    assert region_numbers(after)[4] != region_numbers(before)[4], "the depth did not follow the box"
    assert "(typed)" not in after  # the depth is the map's
    assert after_hiou != before_hiou, "the reward preview did not change"

    page.locator("#wb-save").click()
    wait_text(page, "wb-message", re.compile(r"Saved revision \d+ by alice"))
    page.locator("#wb-info").click()
    page.keyboard.press("a")  # accept, by shortcut
    wait_text(page, "wb-message", f"Accepted: sample {target_id}")
    shot(page, "04-saved-accepted")
    saved = store.current_chain(target_id)
    assert saved.origin == "edited" and saved.author == "alice"
    review = store.get_review(target_id)
    assert review.status == "accepted" and review.rev == saved.rev

    page.reload()
    wait_text(page, "wb-info", "Question:")
    open_sample(page, target_id)
    wait_text(page, "wb-info", re.compile(rf"Revision: {saved.rev} · origin edited · by alice"))
    wait_text(page, "wb-info", re.compile("Review: accepted by alice"))
    page.get_by_role("tab", name="History").click()
    imported = next(r for r in store.history(target_id) if r.origin == "imported")
    page.locator(f'#wb-history [data-rev="{imported.rev}"]').click()
    wait_text(page, "wb-history-msg", f"revision {imported.rev} (imported")
    assert page.locator("#wb-diff").inner_text().strip(), "no diff shown"
    shot(page, "05-history-diff")
    page.locator("#wb-revert").click()
    wait_text(page, "wb-history-msg", f"restores revision {imported.rev}")
    shot(page, "06-reverted")
    reverted = store.current_chain(target_id)
    assert reverted.text == imported.text and reverted.author == "alice" and reverted.valid
    assert store.get_review(target_id).status == "pending"  # the accepted revision is no longer current


def test_two_curators_saving_the_same_sample(chromium, served):
    db, url = served
    store = Store.open(db)
    target_id = store.query(valid=True, limit=3)[2].id
    alice = login(chromium, url, *CURATORS[0])
    bob = login(chromium, url, *CURATORS[1])
    for page in (alice, bob):
        open_sample(page, target_id)
    for page, answer in ((alice, "answer by alice"), (bob, "answer by bob")):
        page.locator("#wb-answer textarea, #wb-answer input").first.fill(answer)
        page.wait_for_timeout(400)
    alice.locator("#wb-save").click()
    wait_text(alice, "wb-message", "by alice")
    bob.locator("#wb-save").click()
    wait_text(bob, "wb-message", "Conflict")
    shot(bob, "07-conflict")
    assert store.current_chain(target_id).chain.answer == "answer by alice"
    assert bob.locator("#wb-answer textarea, #wb-answer input").first.input_value() == "answer by bob"

    bob.locator("#wb-rebase").click()
    wait_text(bob, "wb-message", "Save again")
    bob.locator("#wb-save").click()
    wait_text(bob, "wb-message", "by bob")
    answers = [r.chain.answer for r in store.history(target_id) if r.origin == "edited"]
    assert answers == ["answer by alice", "answer by bob"], "an edit was lost"


def test_model_outputs_adopt_and_stats(chromium, served):
    db, url = served
    store = Store.open(db)
    target_id = next(r.id for r in store.query(origin="prediction", limit=8)[5:] if r.id % 4 and r.id % 10 != 5)
    page = login(chromium, url, *CURATORS[0])
    open_sample(page, target_id)
    page.get_by_role("tab", name="Model outputs").click()
    wait_text(page, "wb-out-feedback", "final-step HIoU")
    shot(page, "08-model-outputs")
    page.locator("#wb-adopt").click()
    wait_text(page, "wb-message", "into the editor")  # the chain list came with it
    prediction = store.run_revisions(target_id)[0].chain
    shown_boxes = [region_numbers(r)[:4] for r in regions(page)]
    assert shown_boxes == [pytest.approx(list(r.bbox), abs=1e-3) for r in prediction.steps[0].regions]
    assert target(page)["draft"] and page.locator("#wb-accept").inner_text().startswith("Save and accept")

    page.get_by_role("tab", name="Stats").click()
    wait_text(page, "wb-stats-summary", "validity rate")
    page.locator("#wb-plot-hiou canvas, #wb-plot-hiou svg").first.wait_for(timeout=30_000)
    shot(page, "09-stats")


def test_draw_a_box_with_the_c_key_then_delete_one(chromium, served):
    """`c` on the focused box editor starts a new box; drawing it adds a region to the step (with
    its depth from the map); Delete removes the selected box; the saved chain has them."""
    db, url = served
    store = Store.open(db)
    target_id = store.query(valid=True, limit=12)[11].id
    sample, chain = store.get_sample(target_id), store.current_chain(target_id).chain
    last = len(chain.steps) - 1
    page = login(chromium, url, *CURATORS[0])
    open_sample(page, target_id)
    select_step(page, last)
    n_before = len(chain.steps[-1].regions)
    wait_regions(page, n_before)

    x1, y1, x2, y2 = chain.steps[-1].regions[0].bbox  # draw in the corner away from this box
    nx1, ny1 = (0.05 if x1 + x2 > 1 else 0.7), (0.05 if y1 + y2 > 1 else 0.7)
    new_box = (nx1, ny1, nx1 + 0.25, ny1 + 0.25)
    page.locator("#wb-annot .annotator-container").first.focus()
    page.keyboard.press("c")
    drag(page, editor_point(page, sample, new_box[0], new_box[1]), editor_point(page, sample, new_box[2], new_box[3]))
    wait_regions(page, n_before + 1)
    shot(page, "10-box-drawn")

    page.locator("#wb-save").click()
    wait_text(page, "wb-message", re.compile(r"Saved revision \d+ by alice"))
    saved = store.current_chain(target_id).chain.steps[-1].regions
    assert len(saved) == n_before + 1
    drawn = saved[-1]
    assert list(drawn.bbox) == pytest.approx(list(new_box), abs=0.02)
    depth = store.depth_file(sample)
    assert drawn.depth == pytest.approx(DepthMap.load(*depth).box_mean(drawn.bbox), abs=1e-3)

    # After a save the editor stays on the step. Delete removes the selected box: the one just
    # drawn, selected by a click in drag mode (`d`).
    assert target(page)["step"] == last
    page.locator("#wb-annot .annotator-container").first.focus()
    page.keyboard.press("d")
    page.mouse.click(*editor_point(page, sample, (new_box[0] + new_box[2]) / 2, (new_box[1] + new_box[3]) / 2))
    page.keyboard.press("Delete")
    wait_regions(page, n_before)
    rev = store.current_chain(target_id).rev
    page.locator("#wb-save").click()
    wait_text(page, "wb-message", re.compile(rf"Saved revision {rev + 1} by alice"))
    assert len(store.current_chain(target_id).chain.steps[-1].regions) == n_before
