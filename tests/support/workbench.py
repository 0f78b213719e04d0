"""Fixtures for the workbench tests: a real demo store built from synthetic data, the real app
served on a free port, and chromium through Playwright."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CURATORS = [("alice", "alice-pw"), ("bob", "bob-pw")]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(db: Path, auth=None):
    """The real workbench on a free loopback port; yields its URL."""
    from workbench.app import launch

    app, url = launch(db, port=free_port(), auth=auth, block=False, quiet=True)
    try:
        yield url.rstrip("/")
    finally:
        app.close()


def login(browser, url: str, user: str, password: str):
    """A new browser session signed in as `user`, on the workbench page once it has loaded."""
    context = browser.new_context(viewport={"width": 1500, "height": 1300})
    page = context.new_page()
    page.goto(url + "/")
    page.locator('input[data-testid="textbox"]').first.fill(user)
    page.locator('input[type="password"]').fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#wb-user").get_by_text(f"Signed in as {user}").wait_for(timeout=30_000)
    page.locator("#wb-info").get_by_text("Question:").wait_for(timeout=30_000)
    return page


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
