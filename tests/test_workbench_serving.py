"""What the served workbench exposes: the pictures it renders, to signed-in curators, and no other
file (not the data root's pictures, `.env` or backups, not the store, nothing outside); curators
from the accounts, loopback by default. Real app, real HTTP."""

from __future__ import annotations

import httpx
import pytest

from db.store import Store
from tests.support.workbench import CURATORS, login, serve
from workbench.serving import parse_auth


@pytest.fixture(scope="module")
def served(demo_db):
    with serve(demo_db, auth=CURATORS) as url:
        yield url


def signed_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    r = client.post("/login", data={"username": CURATORS[0][0], "password": CURATORS[0][1]})
    assert r.status_code == 200, r.text
    return client


def test_binds_loopback_by_default(served):
    assert served.startswith("http://127.0.0.1:")


def test_nothing_on_disk_is_served_but_the_rendered_pictures(served, demo_db):
    """Not the data root's pictures, nor a `.env`, a backup or another store beside them, nor the
    store itself, nor anything outside: only what the app renders (checked in the browser test)."""
    root = Store.open(demo_db).data_root
    (root / ".env").write_text("OPENAI_API_KEY=secret\n")
    (root / "backup.db").write_bytes(demo_db.read_bytes())
    picture = next((root / "images").iterdir())
    client = signed_in(served)
    try:
        paths = [picture, root / ".env", root / "backup.db", "/etc/passwd", demo_db]
        paths += [f"{root}/../{demo_db.name}", f"{root}/../../../../etc/passwd", f"{root}/images/../.env"]
        for path in map(str, paths):
            for route in (f"/gradio_api/file={path}", f"/gradio_api/file/{path.lstrip('/')}", f"/file={path}"):
                r = client.get(route)
                assert r.status_code in (403, 404), f"{route} answered {r.status_code}"
                assert b"root:" not in r.content and b"SQLite format" not in r.content and b"secret" not in r.content
    finally:
        client.close()


@pytest.mark.browser
def test_the_rendered_pictures_are_served_to_curators_only(chromium, served):
    page = login(chromium, served, *CURATORS[0])
    src = page.locator("#wb-depth img").first.get_attribute("src")
    assert "sif-views" in src and src.endswith(".jpg")
    assert page.request.get(src).status == 200
    assert httpx.get(src if src.startswith("http") else served + src, timeout=30).status_code in (401, 403)


def test_wrong_password_is_refused(served):
    r = httpx.post(f"{served}/login", data={"username": "alice", "password": "nope"}, timeout=30)
    assert r.status_code in (400, 401)


def test_parse_auth():
    assert parse_auth(["alice:pw", "bob:p:w"]) == [("alice", "pw"), ("bob", "p:w")]
    assert parse_auth(None) is None
    for bad in ("alice", ":pw", "alice:"):
        with pytest.raises(ValueError, match="USER:PASS"):
            parse_auth([bad])


def test_cli_refuses_a_missing_store_and_bad_auth(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    r = CliRunner().invoke(app, ["workbench", "--db", str(tmp_path / "none.db")])
    assert r.exit_code == 1 and "no store at" in r.output
    (tmp_path / "auth.json").write_text('{"users": {}}')
    r = CliRunner().invoke(
        app, ["workbench", "--db", str(tmp_path / "none.db"), "--auth-file", str(tmp_path / "auth.json")]
    )
    assert r.exit_code == 1 and "no accounts in it" in r.output
    r = CliRunner().invoke(app, ["workbench", "--help"])
    assert "--auth-file" in r.output and "--auth " not in r.output  # no passwords on the command line
