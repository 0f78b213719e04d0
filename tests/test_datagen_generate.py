"""`sif generate` end to end on a real SQLite store, against a real local OpenAI-compatible server."""

import base64
import io
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from datagen.depth_source import DepthEstimator, estimated_depth_path
from datagen.generation import GenerateConfig, generate
from db.store import Store
from sif.chain import validate_chain
from sif.depth import DepthMap
from tests.support.datagen import add_samples, chain_reply, instruction_text, planned_areas
from tests.support.fake_openai import Reply, fake_openai_server

SECRET = "sk-test-secret-123"

# Each case's question carries its name; the fake teacher behaves accordingly.
VALID_CASES = ("ok", "prose", "drift_small", "rate_limited", "server_error", "slow")
INVALID_CASES = {  # case -> words expected in the stored problems
    "drift_large": "drifts",
    "malformed": "no <area>/<text> step",
    "truncated": "steps, the plan has",
    "always_500": "teacher request failed",
    "broken_json": "teacher request failed",
}


class MixedTeacher:
    """Canned replies by case: good, wrapped, drifting, broken, rate limited, failing, slow."""

    def __init__(self):
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, request, n):
        text = instruction_text(request)
        case = re.search(r"\[case (\w+)\]", text).group(1)
        with self.lock:
            attempt = self.attempts[case] = self.attempts.get(case, 0) + 1
        areas = planned_areas(request)
        good = chain_reply(areas)
        if case == "prose":
            return Reply("Sure, here is the chain:\n```xml\n" + good + "\n```\nLet me know if you need more.")
        if case == "drift_small":
            return Reply(chain_reply(areas, shift=0.01))
        if case == "drift_large":
            return Reply(chain_reply(areas, shift=0.2))
        if case == "malformed":
            return Reply("I am sorry, I cannot see the image clearly.")
        if case == "truncated":
            return Reply(good[: good.index("</text>") + len("</text>")])
        if case == "rate_limited" and attempt == 1:
            return Reply("slow down", status=429, headers={"Retry-After": "0"})
        if case == "server_error" and attempt <= 2:
            return Reply("overloaded", status=503)
        if case == "always_500":
            return Reply("internal error", status=500)
        if case == "broken_json":
            return Reply(raw="{this is not json")
        if case == "slow" and attempt == 1:
            return Reply(good, delay_s=2.5)
        return Reply(good, usage={"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100})


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "sif.db") as s:
        yield s


def _cfg(server, **kw):
    base = dict(
        teacher="openai",
        base_url=server.base_url,
        model="teacher-m",
        api_key_env="SIF_TEST_KEY",
        concurrency=4,
        timeout_s=1.0,
        max_retries=2,
        backoff_s=0.01,
        price_prompt_per_m=2.0,
        price_completion_per_m=10.0,
    )
    return GenerateConfig(**{**base, **kw})


@pytest.mark.parametrize("workers", [2, 0])  # replies checked in worker processes, or in a thread
def test_every_sample_ends_generated_or_invalid_with_its_reason(store, monkeypatch, workers):
    monkeypatch.setenv("SIF_TEST_KEY", SECRET)
    cases = list(VALID_CASES) + list(INVALID_CASES)
    ids = dict(zip(cases, add_samples(store, [f"What is on the table? [case {c}]" for c in cases])))
    teacher = MixedTeacher()
    with fake_openai_server(teacher) as server:
        summary = generate(store, _cfg(server, worker_processes=workers), progress=False)
        requests = list(server.requests)

    for case in VALID_CASES:
        rev = store.current_chain(ids[case])
        assert rev.origin == "generated" and rev.valid, (case, rev.problems)
        assert validate_chain(rev.text) == [] and rev.chain.answer == "a red mug"
        assert rev.final_hiou == pytest.approx(1.0) and rev.depth_ok, case  # planned boxes, depths from the map
        assert rev.run_id == summary.run_id and rev.author == "teacher:teacher-m"
    assert "repaired" in store.current_chain(ids["drift_small"]).note
    assert "removed text around the chain" in store.current_chain(ids["prose"]).note
    for case, reason in INVALID_CASES.items():
        rev = store.current_chain(ids[case])
        assert rev.origin == "generated" and not rev.valid, case
        assert any(reason in p for p in rev.problems), (case, rev.problems)
    # What was paid for is kept verbatim.
    drifted = store.current_chain(ids["drift_large"])
    assert drifted.raw_text is not None and '"bbox_2d": [0.2, 0.2, 1.0, 1.0]' in drifted.raw_text
    assert store.current_chain(ids["malformed"]).raw_text == "I am sorry, I cannot see the image clearly."

    m = summary.metrics
    assert (m["generated"], m["invalid"], m["request_failed"], m["skipped"]) == (6, 3, 2, 0)
    assert m["repaired"] >= 2 and m["retries"] >= 1 + 2 + 1 + 2  # 429, 503×2, the timeout, 500×2
    assert m["prompt_tokens"] > 0 and m["cost_usd"] == pytest.approx(
        (m["prompt_tokens"] * 2.0 + m["completion_tokens"] * 10.0) / 1e6
    )
    run = store.get_run(summary.run_id)
    assert run["status"] == "done" and run["metrics"]["generated"] == 6
    assert run["config"]["teacher"] == "openai" and run["config"]["base_url"] == server.base_url
    assert run["config"]["model"] == "teacher-m"

    # One step image per planned step; the question and answer in the instruction; the key in the header only.
    first = requests[0]
    parts = first["messages"][0]["content"]
    assert sum(p["type"] == "image_url" for p in parts) == len(planned_areas(first))
    assert "Correct answer: a red mug" in instruction_text(first)
    assert first["_headers"]["Authorization"] == f"Bearer {SECRET}"
    store.close()
    for f in Path(store.path).parent.glob("sif.db*"):
        assert SECRET.encode() not in f.read_bytes(), f


def test_a_worker_process_that_dies_costs_no_reply(store, monkeypatch):
    """A worker killed mid-run (out of memory, say): its samples' work, the replies already
    paid for included, runs in the main process instead; every sample is stored."""
    import os

    import datagen.generation as gen

    main, real = os.getpid(), gen.check_reply

    def check_or_die(*args, **kwargs):
        if os.getpid() != main:  # in the worker: die the way an OOM kill does
            os._exit(9)
        return real(*args, **kwargs)

    monkeypatch.setattr(gen, "check_reply", check_or_die)  # the forked worker inherits it
    ids = add_samples(store, [f"Where is the mug {i}?" for i in range(4)])
    with fake_openai_server(lambda req, n: Reply(chain_reply(planned_areas(req)))) as server:
        summary = generate(store, _cfg(server, worker_processes=1), progress=False)
        assert len(server.requests) == 4  # each sample asked once: no reply was thrown away
    assert summary.metrics["generated"] == 4 and store.get_run(summary.run_id)["status"] == "done"
    assert all(store.current_chain(i).valid for i in ids)
    assert any("worker process died" in e for e in summary.errors)


def test_template_teacher_limit_dataset_and_resume(store):
    add_samples(store, [f"Where is the mug {i}?" for i in range(5)], dataset="viscot")
    other = add_samples(
        store,
        ["How many cups?"] * 1 + ["How many plates?"],
        dataset="tallyqa",
        seed=1,
        gt_boxes=((0.1, 0.1, 0.2, 0.2), (0.6, 0.6, 0.8, 0.9)),
    )
    first = generate(store, GenerateConfig(teacher="template", limit=3, dataset="viscot"), progress=False)
    assert first.metrics["generated"] == 3 and store.count(run_id=first.run_id) == 3
    assert store.count(origin="none", dataset="viscot") == 2 and store.count(origin="none", dataset="tallyqa") == 2
    rev = store.current_chain(store.query(run_id=first.run_id)[0].id)
    assert rev.note == "template" and rev.author == "template" and rev.valid
    assert store.get_run(first.run_id)["config"]["template_text"] is True

    again = generate(store, resume=first.run_id, progress=False)  # its limit is already reached
    assert again.run_id == first.run_id and store.count(run_id=first.run_id) == 3
    rest = generate(store, GenerateConfig(teacher="template"), progress=False)
    assert rest.metrics["generated"] == 4 and store.count(origin="none") == 0
    multi = store.current_chain(other[0])
    assert len(multi.chain.final_boxes) == 2 and "2 regions" in multi.chain.steps[-1].text
    with pytest.raises(Exception, match="no run"):
        generate(store, resume="gen-nope", progress=False)


def test_missing_depth_is_estimated_once_cached_and_recorded(store):
    (sid,) = add_samples(store, ["What is near?"], depth=False)
    calls = []

    def estimate(image):
        calls.append(image.size)
        w, h = image.size
        return np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))

    estimator = DepthEstimator("some-org/Depth-Model", estimate=estimate)
    generate(
        store,
        GenerateConfig(teacher="template", depth_model="some-org/Depth-Model"),
        estimator=estimator,
        progress=False,
    )
    sample = store.get_sample(sid)
    expected = estimated_depth_path(store.data_root, estimator, store.resolve(sample.image).read_bytes())
    assert store.resolve(sample.depth) == expected and sample.depth_encoding == "gray16_depth"  # keyed by content
    assert sample.depth.startswith("depth/estimated/some-org_Depth-Model/")
    depth = DepthMap.load(store.resolve(sample.depth), "gray16_depth")
    assert depth.array.shape == (48, 64) and depth.box_mean([0, 0, 0.1, 1]) < 0.1
    assert store.current_chain(sid).depth_ok and calls == [(64, 48)]


def test_bad_records_are_reported_and_the_batch_goes_on(store):
    ids = add_samples(store, ["Where?", "What?", "Which?"])
    store.resolve(store.get_sample(ids[1]).image).unlink()
    summary = generate(store, GenerateConfig(teacher="template"), progress=False)
    assert summary.metrics["generated"] == 2 and summary.metrics["skipped"] == 1
    assert len(summary.errors) == 1 and summary.errors[0].startswith(f"sample {ids[1]}:")
    assert store.current_chain(ids[1]) is None


def test_invalid_chains_are_redone_only_when_asked(store):
    (sid,) = add_samples(store, ["What is on the table? [case malformed]"])
    with fake_openai_server(MixedTeacher()) as server:
        generate(store, _cfg(server), progress=False)
        assert not store.current_chain(sid).valid
        assert generate(store, _cfg(server), progress=False).metrics["invalid"] == 0  # nothing selected
    fixed = generate(store, GenerateConfig(teacher="template", retry_invalid=True), progress=False)
    assert fixed.metrics["generated"] == 1 and store.current_chain(sid).valid
    assert [r.valid for r in store.history(sid)] == [False, True]


def test_cli_generate_prints_a_summary(tmp_path):
    with Store.open(tmp_path / "sif.db") as s:
        add_samples(s, ["Where is it?", "What is it?"])
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--db",
            str(tmp_path / "sif.db"),
            "--no-progress",
            "--set",
            "distractor_prob=1.0",
            "--set",
            "seed=7",
        ],
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"run gen-\S+: 2 generated \(0 repaired\), 0 invalid", result.output)
    with Store.open(tmp_path / "sif.db") as s:
        (run,) = s.list_runs("generation")
        assert run["config"]["distractor_prob"] == 1.0 and run["config"]["seed"] == 7
    bad = CliRunner().invoke(app, ["generate", "--db", str(tmp_path / "sif.db"), "--teacher", "gpt"])
    assert bad.exit_code == 1 and "teacher must be one of template, openai" in bad.output
    bad = CliRunner().invoke(app, ["generate", "--db", str(tmp_path / "sif.db"), "--set", "temprature=0.5"])
    assert bad.exit_code == 1 and "unknown setting(s) temprature" in bad.output
    json.dumps(run["metrics"])  # metrics are plain JSON


def test_generated_chains_open_in_the_workbench_like_imported_ones(store):
    from workbench.render import fit_size
    from workbench.service import Filters, Workbench

    imported, generated = add_samples(store, ["Where is the mug?", "Where is the cup?"])
    first = generate(store, GenerateConfig(teacher="template"), progress=False)
    store.add_revision(imported, store.current_chain(imported).chain, origin="imported", author="import")
    assert store.current_chain(imported).origin == "imported"
    bench = Workbench(store)
    opened = {sid: bench.open(sid) for sid in (imported, generated)}
    assert opened[generated].revision.origin == "generated" and opened[generated].revision.run_id == first.run_id
    for o in opened.values():
        assert o.draft.to_chain() == o.revision.chain
        assert o.preview.format == 1.0 and o.preview.final_hiou == pytest.approx(1.0) and o.preview.depth == 1.0
        assert o.views.image.size == fit_size(64, 48) and o.views.strip.width > 64  # zoomed to the editor
    page = bench.browse(Filters(origin="generated", run=first.run_id))
    assert page.ids == [generated] and page.rows[0][4] == "generated"


@pytest.mark.slow
def test_cli_estimates_missing_depth_with_the_tiny_model(tmp_path):
    db = tmp_path / "sif.db"
    with Store.open(db) as s:
        (sid,) = add_samples(s, ["Where is the mug?"], depth=False)
    result = CliRunner().invoke(app, ["generate", "--db", str(db), "--depth-model", "tiny", "--no-progress"])
    assert result.exit_code == 0, result.output
    with Store.open(db) as s:
        sample = s.get_sample(sid)
        assert sample.depth.startswith("depth/estimated/tiny/") and s.resolve(sample.depth).is_file()
        rev = s.current_chain(sid)
        assert rev.valid and rev.depth_ok
        assert s.list_runs("generation")[0]["config"]["depth_model"] == "tiny"
    bad = CliRunner().invoke(
        app,
        ["generate", "--db", str(db), "--depth-model", str(tmp_path / "no-model"), "--retry-invalid", "--no-progress"],
    )
    assert bad.exit_code == 0 and "0 generated" in bad.output  # nothing left to do: no model is loaded
    with Store.open(db) as s:
        (other,) = add_samples(s, ["Where is the cup?"], depth=False, seed=3)
    bad = CliRunner().invoke(
        app, ["generate", "--db", str(db), "--depth-model", str(tmp_path / "no-model"), "--no-progress"]
    )
    assert bad.exit_code == 1 and "no-model" in bad.output and "could not be loaded" in bad.output
    with Store.open(db) as s:
        assert s.list_runs("generation")[0]["status"] == "failed" and s.current_chain(other) is None


def test_a_resumed_run_keeps_its_recorded_settings(store):
    add_samples(store, ["Where?"])
    run = generate(store, GenerateConfig(teacher="template", limit=0, seed=5), progress=False).run_id
    with pytest.raises(ValueError, match="keeps its recorded seed"):
        generate(store, resume=run, seed=6, progress=False)
    resumed = generate(store, resume=run, concurrency=2, progress=False)  # speed settings may change
    assert resumed.metrics["generated"] == 0 and store.get_run(run)["config"]["seed"] == 5


def test_step_images_from_worker_processes_match_those_made_in_threads(store):
    """Where the step images are made changes nothing the teacher sees; a big picture is sent at
    `step_image_max_side` (decoded at a reduced scale first)."""
    from PIL import Image

    ids = add_samples(store, ["Where is the mug?", "Where is the cup?", "Where is the bowl?"])
    big = store.get_sample(ids[0])
    Image.open(store.resolve(big.image)).resize((2000, 1500)).save(store.resolve(big.image), quality=90)
    sent = {}
    for processes in (0, 2):
        with fake_openai_server(lambda req, n: Reply(chain_reply(planned_areas(req)))) as server:
            summary = generate(
                store,
                _cfg(
                    server,
                    worker_processes=processes,
                    step_image_max_side=300,
                    step_image_quality=60,
                    retry_invalid=True,
                ),
                progress=False,
            )
            assert summary.metrics["generated"] == 3
            sent[processes] = sorted(json.dumps(r["messages"]) for r in server.requests)
        for sid in ids:  # invalid again, so that the next run (retry_invalid) redoes them
            store.add_revision(sid, "not a chain", origin="generated", author="test", run_id=summary.run_id)
    assert sent[0] == sent[2]
    sizes = set()
    for messages in map(json.loads, sent[0]):
        for part in messages[0]["content"]:
            if part["type"] == "image_url":
                data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                sizes.add(Image.open(io.BytesIO(data)).size)
    assert (300, 225) in sizes and (64, 48) in sizes


def test_a_resumed_retry_invalid_run_does_not_pay_again_for_what_it_already_wrote(store):
    """A sample this run already wrote as invalid is done for this run, even with `retry_invalid`."""
    first_ids = add_samples(store, [f"What is on table {i}? [case malformed]" for i in range(2)])
    teacher = MixedTeacher()
    with fake_openai_server(teacher) as server:
        first = generate(store, _cfg(server, retry_invalid=True), progress=False)
        assert teacher.attempts == {"malformed": 2} and first.metrics["invalid"] == 2
        (late,) = add_samples(store, ["What is on the shelf? [case malformed]"], seed=1)  # arrives before the resume
        generate(store, resume=first.run_id, base_url=server.base_url, progress=False)
        assert teacher.attempts == {"malformed": 3}  # only the new sample was asked for
        assert [len(store.history(i)) for i in [*first_ids, late]] == [1, 1, 1]
        again = generate(store, _cfg(server, retry_invalid=True), progress=False)  # a new run redoes all three
    assert teacher.attempts == {"malformed": 6} and again.metrics["invalid"] == 3


def test_a_failed_sample_is_recorded_with_it_and_a_resume_does_not_retry_it(store):
    ids = add_samples(store, ["Where?", "What?", "Which?"])
    store.resolve(store.get_sample(ids[1]).image).write_bytes(b"not a picture")  # fails every time it is read
    with fake_openai_server(lambda req, n: Reply(chain_reply(planned_areas(req)))) as server:
        run = generate(store, _cfg(server, worker_processes=0), progress=False)
        assert run.metrics["generated"] == 2 and run.metrics["skipped"] == 1
        assert list(store.run_failures(run.run_id)) == [ids[1]]
        assert store.run_failures(run.run_id)[ids[1]].startswith("prepare: ")
        asked = len(server.requests)
        again = generate(store, resume=run.run_id, base_url=server.base_url, progress=False)
        assert len(server.requests) == asked and again.metrics["skipped"] == 1  # not retried
        assert any("1 sample(s) that failed earlier in this run were not retried" in e for e in again.errors)
        fresh = generate(store, _cfg(server, worker_processes=0), progress=False)
        assert fresh.metrics["skipped"] == 1  # a new run tries it again
    assert store.current_chain(ids[1]) is None


@pytest.mark.parametrize("workers", [1, 0])
def test_a_reply_the_check_breaks_on_is_stored_with_the_reason(store, monkeypatch, workers):
    import datagen.generation as gen

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug met by hostile text")

    monkeypatch.setattr(gen, "check_reply", broken)  # the forked worker inherits it
    (sid,) = add_samples(store, ["Where is the mug?"])
    reply = chain_reply([[{"bbox_2d": [0, 0, 1, 1], "depth": 0.5}]])
    with fake_openai_server(lambda req, n: Reply(reply)) as server:
        summary = generate(store, _cfg(server, worker_processes=workers), progress=False)
        assert len(server.requests) == 1
    rev = store.current_chain(sid)
    assert not rev.valid and _stored_text(rev) == reply  # the paid reply, verbatim
    assert any("could not be checked (ZeroDivisionError: a bug met by hostile text)" in p for p in rev.problems)
    assert summary.metrics["invalid"] == 1 and store.get_run(summary.run_id)["status"] == "done"


def _stored_text(rev) -> str:
    return rev.raw_text if rev.raw_text is not None else rev.text
