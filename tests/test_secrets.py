"""Secrets never reach what is kept. A local server (standing in for a paid API) echoes the API
key and the URL's credentials in its errors and its replies; after `sif generate` and `sif eval`
neither the store (every byte of it), nor the run configs, nor the eval report holds them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from common.redact import REDACTED, redact, redact_config
from db.store import Store
from sif.synthetic import make_dataset
from tests.support.datagen import add_samples, chain_reply, instruction_text, planned_areas
from tests.support.fake_openai import Reply, fake_openai_server

runner = CliRunner()
KEY = "sk-echo-test-0123456789abcdef"
QUERY_KEY = "qk-in-the-url-9876543210"
PASSWORD = "hunter2-in-the-url-secret"


def _echo(request) -> str:
    """What a careless server says back: the auth header, decoded, and the path with its query."""
    auth = request["_headers"].get("Authorization", "")
    decoded = base64.b64decode(auth.split()[1]).decode() if auth.startswith("Basic ") else ""
    return f"Incorrect API key provided: {auth} ({decoded}) for {request['_path']}"


def _leaks(paths, *secrets) -> list[str]:
    return [f"{p.name}: {s}" for p in paths if p.is_file() for s in secrets if s.encode() in p.read_bytes()]


def test_redaction_keeps_what_is_not_a_secret():
    text = "max_tokens=20 for https://api.example.com/v1?api-version=2024 by token counting"
    assert redact(text) == text
    config = {"api_key_env": "OPENAI_API_KEY", "max_tokens": 2048, "api_key": "x", "base_url": "https://u:p@h/v1"}
    assert redact_config(config) == {
        "api_key_env": "OPENAI_API_KEY",
        "max_tokens": 2048,
        "api_key": REDACTED,
        "base_url": f"https://{REDACTED}@h/v1",
    }


def test_generate_stores_no_key_from_errors_replies_or_the_base_url(tmp_path, monkeypatch):
    monkeypatch.setenv("SIF_ECHO_KEY", KEY)
    db = tmp_path / "sif.db"
    with Store.open(db) as store:
        ids = add_samples(store, ["Where is it? [case error]", "Where is it? [case echo]", "Where is it? [case ok]"])

    def responder(request, n):
        case = instruction_text(request).split("[case ")[1].split("]")[0]
        if case == "error":
            return Reply(_echo(request), status=401)
        good = chain_reply(planned_areas(request))
        return Reply(good.replace("<text>", f"<text>{_echo(request)} ", 1) if case == "echo" else good)

    with fake_openai_server(responder) as server:
        url = f"{server.base_url}?api-key={QUERY_KEY}"
        args = ["generate", "--db", str(db), "--teacher", "openai", "--model", "t", "--no-progress"]
        result = runner.invoke(app, [*args, "--base-url", url, "--set", "api_key_env=SIF_ECHO_KEY"])
        assert result.exit_code == 0, result.output
        assert all(r["_headers"]["Authorization"] == f"Bearer {KEY}" for r in server.requests)
        assert all(QUERY_KEY in r["_path"] for r in server.requests)  # the credentials did travel
        with Store.open(db) as store:
            [run] = store.list_runs("generation")
            failed = store.current_chain(ids[0])
            assert "teacher request failed" in failed.note and f"Bearer {REDACTED}" in failed.note
            echoed = store.current_chain(ids[1])
            assert REDACTED in (echoed.raw_text or echoed.text)  # the paid reply is kept, the key in it is not
        assert run["config"]["base_url"] == f"{server.base_url}?api-key={REDACTED}"
        # Resuming needs the URL again: what was stored cannot reach the server.
        resumed = runner.invoke(app, ["generate", "--db", str(db), "--resume", run["id"], "--no-progress"])
        assert resumed.exit_code == 1 and "pass --base-url again" in resumed.output
        resumed = runner.invoke(app, ["generate", "--db", str(db), "--resume", run["id"], "--base-url", url])
        assert resumed.exit_code == 0, resumed.output
    assert KEY not in result.output + resumed.output and QUERY_KEY not in result.output + resumed.output
    assert _leaks(tmp_path.glob("sif.db*"), KEY, QUERY_KEY) == []


def test_eval_stores_no_credentials_from_the_base_url_or_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the URL's credentials authenticate
    data = make_dataset(tmp_path / "synth", 3, seed=2, split_ratio=1.0, progress=False)
    chains = [r["messages"][-1]["content"] for r in json.loads(data.read_text())]

    def responder(request, n):
        return Reply(_echo(request), status=403) if n == 1 else Reply(chains[(n - 2) % len(chains)])

    with fake_openai_server(responder) as server:
        url = server.base_url.replace("http://", f"http://ann:{PASSWORD}@")
        out = tmp_path / "reports"
        result = runner.invoke(
            app,
            ["eval", "synth", "--data", str(data), "--db", str(tmp_path / "sif.db"), "--backend", "openai"]
            + ["--model", "m", "--base-url", url, "--out", str(out), "--max-failure-rate", "0.5"],
        )
        sent = server.requests[0]["_headers"]["Authorization"]
    assert result.exit_code == 0, result.output
    assert base64.b64decode(sent.split()[1]).decode() == f"ann:{PASSWORD}"  # basic auth from the URL
    assert "1 failures" in result.output
    report = json.loads(next(out.glob("*/report.json")).read_text())
    assert report["failures"] and PASSWORD not in json.dumps(report)
    with Store.open(tmp_path / "sif.db") as store:
        [run] = store.list_runs("evaluation")
        assert run["config"]["base_url"].startswith(f"http://{REDACTED}@127.0.0.1")
    files = [*tmp_path.glob("sif.db*"), *out.rglob("*")]
    secret_forms = [PASSWORD, base64.b64encode(f"ann:{PASSWORD}".encode()).decode()]
    assert _leaks(files, *secret_forms) == [] and PASSWORD not in result.output
    assert Path(files[0]).exists()
