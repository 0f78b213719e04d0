"""Helpers for the workbench tests: the real app served on a free port, chromium sessions at the
curators' 1440×900 screen, and reading what the screen shows (the target every action carries,
the info panel, the message)."""

from __future__ import annotations

import gc
import json
import os
import re
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CURATORS = [("alice", "alice-pw"), ("bob", "bob-pw")]
SCREEN = {"width": 1440, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT = 30_000
ERRORS_ON_PAGE = "() => document.querySelectorAll('.toast-body, span.error').length"
TARGET = (
    "() => { const t = document.querySelector('#wb-target textarea, #wb-target input'); return t ? t.value : '{}'; }"
)
SHOWN = "() => { const e = document.querySelector('#wb-info .wb-info'); return e ? Number(e.dataset.sample) : null; }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_store(src: Path, dst: Path) -> Path:
    """A private copy of a store (tests that write reviews and revisions get their own)."""
    with sqlite3.connect(src) as conn:
        conn.execute("VACUUM INTO ?", [str(dst)])
    return dst


@contextmanager
def serve(db: Path, auth=None):
    """The real workbench on a free loopback port; yields its URL."""
    from workbench.app import launch

    app, url = launch(db, port=free_port(), auth=auth, block=False, quiet=True)
    try:
        yield url.rstrip("/")
    finally:
        app.close()
        gc.unfreeze()  # the server froze the heap; a test process serves many (its garbage is collectable again)


def login(browser, url: str, user: str, password: str, *, wait_for_sample: bool = True):
    """A new browser session at 1440×900 signed in as `user`, on the workbench once it has loaded."""
    page = browser.new_context(viewport=SCREEN).new_page()
    page.goto(url + "/")
    page.locator('input[data-testid="textbox"]').first.fill(user)
    page.locator('input[type="password"]').fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#wb-user").get_by_text(f"Signed in as {user}").wait_for(timeout=TIMEOUT)
    if wait_for_sample:
        page.locator("#wb-info").get_by_text("Question:").wait_for(timeout=TIMEOUT)
    return page


def open_page(browser, url: str):
    """A session without sign-in (a store served without --auth)."""
    page = browser.new_context(viewport=SCREEN).new_page()
    page.goto(url + "/")
    page.locator("#wb-user").get_by_text("Signed in as").wait_for(timeout=TIMEOUT)
    return page


def shot(page, name: str, *, docs: bool = False) -> None:
    """A screenshot under artifacts/screenshots/; with `docs`, and SIF_UPDATE_SCREENSHOTS=1 set, also
    docs/NAME.png, the picture the README shows (so a test run leaves the checkout clean)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    if docs and os.environ.get("SIF_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"))


def target(page) -> dict:
    return json.loads(page.evaluate(TARGET) or "{}")


def shown(page) -> int | None:
    """The sample the info panel shows."""
    return page.evaluate(SHOWN)


def wait_shown(page, sample_id: int, *, draft: bool | None = None) -> None:
    """Until the screen shows `sample_id` (and, if given, with or without an unsaved edit)."""
    page.wait_for_function(
        """([id, draft]) => {
            const t = document.querySelector('#wb-target textarea, #wb-target input');
            const e = document.querySelector('#wb-info .wb-info');
            if (!t || !e || Number(e.dataset.sample) !== id) return false;
            const v = JSON.parse(t.value);
            return v.sample === id && (draft === null || v.draft === draft);
        }""",
        arg=[sample_id, draft],
        timeout=TIMEOUT,
    )


def wait_target(page, **expected) -> None:
    """Until the target the screen carries has the `expected` values (step=1, draft=True, …)."""
    page.wait_for_function(
        """(expected) => {
            const t = document.querySelector('#wb-target textarea, #wb-target input');
            const v = t ? JSON.parse(t.value) : {};
            return Object.entries(expected).every(([k, x]) => v[k] === x);
        }""",
        arg=expected,
        timeout=TIMEOUT,
    )


def wait_text(page, elem_id: str, text: str | re.Pattern) -> None:
    """Until the element shows `text`; a timeout says what it showed instead."""
    try:
        page.locator(f"#{elem_id}").get_by_text(text).first.wait_for(timeout=TIMEOUT)
    except PlaywrightTimeout:
        shown_instead = page.locator(f"#{elem_id}").inner_text(timeout=1_000)
        raise AssertionError(f"#{elem_id} never showed {text!r}; it shows {shown_instead!r}") from None


def message(page) -> str:
    return page.locator("#wb-message").inner_text().strip()


def settle(page, quiet_ms: int = 1500, timeout_s: float = 60) -> None:
    """Until the screen (target, message, info) has not changed for `quiet_ms`: every action sent
    has been answered."""
    probe = (
        "() => [document.querySelector('#wb-target textarea, #wb-target input')?.value,"
        " document.querySelector('#wb-message')?.innerText, document.querySelector('#wb-info')?.innerText].join('|')"
    )
    last, since, end = None, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < end:
        now = page.evaluate(probe)
        if now != last:
            last, since = now, time.monotonic()
        elif (time.monotonic() - since) * 1000 >= quiet_ms:
            return
        time.sleep(0.1)
    raise TimeoutError("the workbench kept changing")


def errors_on_page(page) -> int:
    """Error toasts and red error badges Gradio shows."""
    return page.evaluate(ERRORS_ON_PAGE)


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def editor_point(page, sample, nx: float, ny: float) -> tuple[float, float]:
    """Screen point of the normalized picture point (nx, ny) on the box editor's canvas, which
    draws the picture (zoomed to the editor's size) centred across and at the top."""
    from workbench.render import fit_size

    W, H = fit_size(sample.width, sample.height)
    canvas = page.locator("#wb-annot canvas").first
    bb = canvas.bounding_box()
    scale = min(bb["width"] / W, bb["height"] / H)
    ox, oy = bb["x"] + (bb["width"] - W * scale) / 2, bb["y"]
    return ox + nx * W * scale, oy + ny * H * scale


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


# ------------------------------------------------------------ the app's API (gradio_client)

CONTEXT_DEFAULTS = {  # the filters and view settings a fresh page sends, in the order the app reads them
    "status": "any",
    "dataset": "any",
    "validity": "any",
    "origin": "any",
    "run": "any",
    "text": "",
    "sort": "id",
    "drafts": False,
    "view": False,
    "show": "all steps",
    "show_gt": True,
    "stay": False,
}


class ApiCurator:
    """One curator driving the served workbench through its API as the page does: every call
    sends the target the previous answer drew and the filters, and keeps what comes back."""

    def __init__(self, url: str, user: str, password: str, **filters):
        from gradio_client import Client

        self.user = user
        self.client = Client(url, auth=(user, password), download_files=False, verbose=False)
        self.context = {**CONTEXT_DEFAULTS, **filters}
        self.target = "{}"
        self.message = ""

    def _call(self, api: str, *extras):
        out = self.client.predict(self.target, *self.context.values(), *extras, api_name=f"/{api}")
        target, message = out[0], out[2]  # every curate endpoint answers target, info, message first
        if isinstance(target, str) and target:
            self.target = target
        self.message = message if isinstance(message, str) else ""
        return out

    @property
    def shown(self) -> int | None:
        return json.loads(self.target or "{}").get("sample")

    def load(self):
        return self._call("load")

    def next(self):
        return self._call("next", None, None)

    def open(self, sample_id: int):
        return self._call("open", sample_id, None, None)

    def decide(self, status: str = "accepted", note: str = ""):
        return self._call(status, note, "Accept (a)", None, None)

    def replace(self):
        """Confirm that this curator's decision replaces the one someone else made meanwhile."""
        return self._call("replace", "", "Accept (a)", None, None)
