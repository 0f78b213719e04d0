"""A teacher and a model under evaluation whose replies cycle through the hostile cases (local
OpenAI-compatible servers, standing in for remote paid APIs): `sif generate` and `sif eval` exit
0, every sample ends with exactly one revision (generate) or prediction (eval) of the run, and
every paid reply is stored: usable ones repaired, the others verbatim with their problems. A
benchmark record the store refuses is a bad record of the run, not the end of it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from db.store import Store
from sif.chain import clean_text
from sif.synthetic import make_dataset
from tests.support.datagen import add_samples, chain_reply, instruction_text, planned_areas
from tests.support.fake_openai import Reply, fake_openai_server
from tests.support.hostile import USABLE, hostile_replies, not_utf8_body, reply_body
from tests.support.shared_data import REC_SAMPLE

runner = CliRunner()
KEY = "sk-hostile-key-0123456789"
SIZE = (64, 48)  # add_samples' pictures
# Beyond the text cases: what else a server can send with a 200.
EXTRA = ("not_utf8", "content_parts", "bad_usage")
EXTRA_USABLE = ("content_parts", "bad_usage")


class HostileModel:
    """Answers each request with the hostile case its question names (`[case NAME]`), or, for the
    model under evaluation, the next case in turn; remembers what each reply said."""

    def __init__(self, good_for, cases: list[str] | None = None):
        self.good_for = good_for  # request -> the well-formed chain to spoil
        self.cases = cases
        self.sent: dict[str, str] = {}  # case -> the reply text as the client reads it
        self.lock = threading.Lock()

    def __call__(self, request, n):
        if self.cases is None:
            case = instruction_text(request).split("[case ")[1].split("]")[0]
        else:
            case = self.cases[(n - 1) % len(self.cases)]
        good = self.good_for(request)
        if case == "not_utf8":
            with self.lock:
                self.sent[case] = good.replace("<text>", "<text>\ufffd\ufffd", 1)
            return Reply(raw=not_utf8_body(good, n))
        if case == "content_parts":
            parts = [{"type": "text", "text": good[:9]}, {"type": "image_url"}, {"type": "text", "text": good[9:]}]
            with self.lock:
                self.sent[case] = good
            body = json.loads(reply_body("", n))
            body["choices"][0]["message"]["content"] = parts
            return Reply(raw=json.dumps(body))
        if case == "bad_usage":
            usage = {"prompt_tokens": "many", "completion_tokens": -5, "total_tokens": 1e300}
            with self.lock:
                self.sent[case] = good
            return Reply(raw=reply_body(good, n, usage=usage))
        reply = hostile_replies(good, SIZE)[case]
        with self.lock:
            self.sent[case] = reply
        return Reply(raw=reply_body(reply, n))


CASES = sorted(hostile_replies(chain_reply([[{"bbox_2d": [0, 0, 1, 1], "depth": 0.5}]]), SIZE)) + list(EXTRA)


def _stored(rev) -> str:
    return rev.raw_text if rev.raw_text is not None else rev.text


def test_generate_stores_every_hostile_reply_and_exits_0(tmp_path, monkeypatch):
    monkeypatch.setenv("SIF_HOSTILE_KEY", KEY)
    db = tmp_path / "sif.db"
    with Store.open(db) as store:
        ids = dict(zip(CASES, add_samples(store, [f"Where is the mug? [case {c}]" for c in CASES])))
    model = HostileModel(lambda request: chain_reply(planned_areas(request)))
    with fake_openai_server(model) as server:
        result = runner.invoke(
            app,
            ["generate", "--db", str(db), "--teacher", "openai", "--base-url", server.base_url, "--model", "t"]
            + ["--no-progress", "--concurrency", "4", "--set", "api_key_env=SIF_HOSTILE_KEY", "--set", "max_retries=0"],
        )
        paid = len(server.requests)
    assert result.exit_code == 0, result.output
    assert paid == len(CASES)  # one request each, all answered with a 200
    with Store.open(db) as store:
        [run] = store.list_runs("generation")
        assert run["status"] == "done"
        m = run["metrics"]
        assert m["generated"] + m["invalid"] == len(CASES) and m["request_failed"] == m["skipped"] == 0
        assert m["total_tokens"] == 15 * (len(CASES) - 1)  # bad_usage's counts read as 0
        for case, sid in ids.items():
            history = store.history(sid)
            assert len(history) == 1 and history[0].run_id == run["id"], case  # exactly one revision each
            rev = store.current_chain(sid)
            if case in USABLE + EXTRA_USABLE:
                assert rev.valid and rev.chain.answer == "a red mug", (case, rev.problems)
            else:  # the paid reply, kept verbatim (text SQLite can hold), with its reasons
                assert not rev.valid and rev.problems, case
                assert _stored(rev) == clean_text(model.sent[case]), case
        pixel = store.current_chain(ids["pixel_boxes"])
        assert "converted pixel boxes of the 64×48 image" in pixel.note


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-eval")
    data = make_dataset(root / "synth", len(CASES), seed=11, split_ratio=1.0, progress=False)
    return root, data


def test_eval_stores_one_prediction_per_record_and_exits_0(synth, monkeypatch):
    root, data = synth
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    records = json.loads(data.read_text())
    chains = {r["problem"]: r["messages"][-1]["content"] for r in records}

    def good_for(request):
        text = "".join(p["text"] for p in request["messages"][-1]["content"] if p["type"] == "text")
        return next(chain for question, chain in chains.items() if question in text)

    model = HostileModel(good_for, CASES)
    db = root / "sif.db"
    with fake_openai_server(model) as server:
        result = runner.invoke(
            app,
            ["eval", "synth", "--data", str(data), "--db", str(db), "--backend", "openai", "--model", "m"]
            + ["--base-url", server.base_url, "--out", str(root / "reports")],
        )
        paid = len(server.requests)
    assert result.exit_code == 0, result.output
    assert paid == len(records) == len(CASES)
    assert f"{len(CASES)} new predictions" in result.output and "0 failures" in result.output
    with Store.open(db) as store:
        [run] = store.list_runs("evaluation")
        assert run["status"] == "done"
        predictions = store.run_predictions(run["id"])
        assert len(predictions) == len(CASES)
        stored = set()
        for sid in predictions:
            [rev] = store.run_revisions(sid, run["id"])  # exactly one prediction each
            stored.add(_stored(rev))
        assert stored == {clean_text(text) for text in model.sent.values()}  # every paid reply, verbatim
    report = json.loads(next((root / "reports").glob("*/report.json")).read_text())
    assert report["summary"]["predicted"] == len(CASES)


def test_a_benchmark_record_the_store_refuses_is_a_bad_record_and_the_run_goes_on(tmp_path):
    rows = [json.loads(line) for line in Path(REC_SAMPLE).read_text().splitlines()[:5]]
    rows[2] = dict(rows[2], width=2**63)  # no picture is that wide
    data = tmp_path / "rec.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(
        app,
        ["eval", "rec", "--data", str(data), "--images", str(tmp_path / "img"), "--backend", "scripted"]
        + ["--db", str(tmp_path / "sif.db"), "--out", str(tmp_path / "reports")],
    )
    assert result.exit_code == 0, result.output
    assert "4 new predictions, 4 records" in result.output and "1 bad records" in result.output
    report = json.loads(next((tmp_path / "reports").glob("*/report.json")).read_text())
    [bad] = report["bad_records"]
    assert bad.startswith(f"refcoco-validation-{rows[2]['sent_id']}: width: must be a whole number of pixels")
