"""`sif eval` at scale: requests in flight, batches, shards and their merge, and honest reports
(unanswered records in the denominator, failed runs exit 1, resume rules, the depth check)."""

from __future__ import annotations

import base64
import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from db.store import Store
from evaluation.runner import EvalConfig, run_eval, select_records
from tests.support.evaluation import (
    InFlight,
    choice_answer,
    make_choice_bench,
    mmbench_tsv,
    png_base64,
    question_of,
)
from tests.support.fake_openai import Reply, fake_openai_server
from tests.support.inference import scene_image


def _eval(db, data, *args):
    return CliRunner().invoke(
        app, ["eval", "cvbench", "--db", str(db), "--data", str(data), "--out", str(Path(db).parent / "reports"), *args]
    )


def _runs(db) -> list[dict]:
    with Store.open(db) as store:
        return store.list_runs(kind="evaluation")


def _one_prediction_each(db, run_id) -> int:
    with Store.open(db) as store:
        predictions = store.run_predictions(run_id)
        assert all(len(store.run_revisions(sid, run_id)) == 1 for sid in predictions)
        return len(predictions)


# ---------------------------------------------------------------- throughput


def test_openai_backend_keeps_concurrency_requests_in_flight(tmp_path):
    data = make_choice_bench(tmp_path, 24)
    flight = InFlight()

    def slow(request, n):
        with flight:
            flight.hold(8)
        return Reply(choice_answer(request))

    with fake_openai_server(slow) as server:
        res = _eval(
            tmp_path / "sif.db", data, "--backend", "openai", "--base-url", server.base_url, "--concurrency", "8"
        )
    assert res.exit_code == 0, res.output
    assert flight.peak == 8  # the server was kept busy, never more than asked
    run = _runs(tmp_path / "sif.db")[0]
    assert run["config"]["concurrency"] == 8 and run["status"] == "done"
    assert _one_prediction_each(tmp_path / "sif.db", run["id"]) == 24
    request = next(r for r in server.requests if question_of(r).startswith("Question 0:"))
    urls = [p["image_url"]["url"] for p in request["messages"][0]["content"] if p["type"] == "image_url"]
    assert [u.split(",")[0] for u in urls] == ["data:image/jpeg;base64", "data:image/png;base64"]
    sent = [base64.b64decode(u.split(",")[1]) for u in urls]
    assert sent == [(tmp_path / "img/0.jpg").read_bytes(), (tmp_path / "img/0_d.png").read_bytes()]  # as they are
    assert request["max_tokens"] == 2048  # the reference's default


def test_a_stopped_openai_run_resumes_with_one_prediction_per_record(tmp_path):
    data = make_choice_bench(tmp_path, 20)
    with (
        fake_openai_server(lambda r, n: Reply(choice_answer(r), delay_s=0.05)) as server,
        Store.open(tmp_path / "sif.db") as store,
    ):
        config = EvalConfig(
            benchmark="cvbench", data=str(data), backend="openai", base_url=server.base_url, concurrency=6
        )
        first = run_eval(store, config, progress=False, stop_after=5)
        assert first.predicted == 5 and len(store.run_predictions(first.run_id)) == 5  # each committed on arrival
        rest = run_eval(store, config, resume=first.run_id, progress=False)
        assert rest.predicted == 15 and rest.status == "done"
    assert _one_prediction_each(tmp_path / "sif.db", first.run_id) == 20


def test_hf_batches_are_left_padded_and_answer_as_one_at_a_time(tiny_model, tmp_path):
    from inference.backends import GenerateRequest, load_backend

    backend = load_backend("hf", str(tiny_model), depth_model="flat", batch_size=3)
    questions = ["Which?", "What colour is the block on the left of the picture?", "How many blocks are there here?"]
    requests = [GenerateRequest(i, scene_image(), None, q) for i, q in enumerate(questions)]
    requests.insert(1, GenerateRequest("bad", tmp_path / "missing.png", None, "q"))
    batched = dict(backend.generate_many(requests, max_new_tokens=12))
    assert isinstance(batched.pop("bad"), FileNotFoundError)  # its own error; the batch went on
    backend.batch_size = 1
    single = dict(backend.generate_many([r for r in requests if r.key != "bad"], max_new_tokens=12))
    assert batched == single and len(single) == 3


def test_a_stopped_hf_run_resumes(tiny_model, tmp_path):
    data = make_choice_bench(tmp_path, 7)
    with Store.open(tmp_path / "sif.db") as store:
        config = EvalConfig(
            benchmark="cvbench", data=str(data), backend="hf", model=str(tiny_model), batch_size=2, max_new_tokens=6
        )
        first = run_eval(store, config, progress=False, stop_after=3)
        assert len(store.run_predictions(first.run_id)) == 3
        rest = run_eval(store, config, resume=first.run_id, progress=False)
        assert rest.status == "done" and rest.summary["predicted"] == 7
    assert _one_prediction_each(tmp_path / "sif.db", first.run_id) == 7


class _FakeOutput:
    def __init__(self, text):
        self.outputs = [types.SimpleNamespace(text=text)]


class FakeLLM:
    """Stands in for vLLM's offline `LLM` (vLLM cannot be installed here): records each
    `generate` call and answers every prompt with the number of the call."""

    calls: list = []
    engine: dict = {}

    def __init__(self, model, **engine):
        FakeLLM.engine = {"model": model, **engine}
        FakeLLM.calls = []

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        FakeLLM.calls.append((prompts, params, lora_request))
        return [_FakeOutput(f"call {len(FakeLLM.calls)}") for _ in prompts]


def _fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    vllm.SamplingParams = lambda **kw: kw
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda *args: args
    for name, module in {"vllm": vllm, "vllm.lora": types.ModuleType("vllm.lora"), "vllm.lora.request": lora}.items():
        monkeypatch.setitem(sys.modules, name, module)


def test_vllm_backend_hands_chunks_of_prompts_to_one_generate_call(tiny_model, tmp_path, monkeypatch):
    """vLLM's documented offline API, with a fake `LLM` standing in for the absent library."""
    from inference.backends import GenerateRequest, load_backend

    _fake_vllm(monkeypatch)
    backend = load_backend("vllm", str(tiny_model), depth_model="flat", batch_size=4)
    assert FakeLLM.engine["mm_processor_kwargs"] == {"max_pixels": 589_824}
    assert FakeLLM.engine["limit_mm_per_prompt"] == {"image": 2}
    requests = [GenerateRequest(i, scene_image(), None, f"q{i}") for i in range(10)]
    requests.insert(5, GenerateRequest("bad", tmp_path / "missing.png", None, "q"))
    answers = dict(backend.generate_many(requests, max_new_tokens=7, temperature=0.0))
    assert [len(prompts) for prompts, _, _ in FakeLLM.calls] == [4, 3, 3]  # the bad one left its chunk
    assert isinstance(answers.pop("bad"), FileNotFoundError)
    assert answers == {i: f"call {1 + (i >= 4) + (i >= 7)}" for i in range(10)}
    prompts, params, lora = FakeLLM.calls[0]
    assert params == {"max_tokens": 7, "top_p": 1.0, "temperature": 0.0} and lora is None
    first = prompts[0]
    assert len(first["multi_modal_data"]["image"]) == 2 and "q0 Please first output" in first["prompt"]
    assert first["prompt"].count("<|vision_start|>") == 2


# ---------------------------------------------------------------- honest reports


def test_unanswered_records_count_in_the_denominator_and_fail_the_run(tmp_path):
    data = make_choice_bench(tmp_path, 18)

    def answer(request, n):
        if question_of(request).startswith("Question 5:"):
            return Reply("bad request", status=400)
        return Reply(choice_answer(request))

    with fake_openai_server(answer) as server:
        res = _eval(tmp_path / "sif.db", data, "--backend", "openai", "--base-url", server.base_url)
        assert res.exit_code == 1  # 1 of 18 unanswered is more than the default 1 %
        assert "1 of 18 records have no prediction (1 failed requests, 0 images missing)" in res.output
        assert "failed: 5.56% of its records have no prediction" in res.output
        run = _runs(tmp_path / "sif.db")[0]
        assert run["status"] == "failed" and run["metrics"]["summary"]["unanswered"] == 1
        report = json.loads((tmp_path / "reports" / run["id"] / "report.json").read_text())
        right = sum(r["correct"] for r in report["records"])
        assert run["metrics"]["overall"]["n"] == 18
        assert run["metrics"]["overall"]["accuracy"] == pytest.approx(right / 18)  # not right / 17
        failed = [r for r in report["records"] if r["failed"]]
        assert [r["id"] for r in failed] == ["cvbench-5"] and "HTTP 400" in failed[0]["error"]

        res = _eval(
            tmp_path / "b.db", data, "--backend", "openai", "--base-url", server.base_url, "--max-failure-rate", "0.1"
        )
        assert res.exit_code == 0 and "1 of 18 records have no prediction" in res.output


def test_resume_accepts_a_new_endpoint_and_refuses_other_changes(tmp_path):
    data = make_choice_bench(tmp_path, 6)
    db = tmp_path / "sif.db"
    with fake_openai_server(lambda r, n: Reply("overloaded", status=400)) as down:
        res = _eval(db, data, "--backend", "openai", "--base-url", down.base_url, "--model", "sif")
        assert res.exit_code == 1
        run_id = _runs(db)[0]["id"]
        res = _eval(db, data, "--resume", run_id)  # every request fails again: still failed, exit 1
        assert res.exit_code == 1 and _runs(db)[0]["status"] == "failed"
    with fake_openai_server(lambda r, n: Reply(choice_answer(r))) as up:
        res = _eval(db, data, "--resume", run_id, "--model", "other", "--base-url", up.base_url)
        assert res.exit_code == 1 and "model (the run has 'sif', given 'other')" in res.output
        assert not up.requests and len(_runs(db)) == 1
        res = _eval(db, data, "--resume", run_id, "--base-url", up.base_url, "--concurrency", "2")
        assert res.exit_code == 0, res.output
        assert f"resumed run {run_id} with base_url '{up.base_url}'" in res.output
    run = _runs(db)[0]
    assert run["status"] == "done" and run["config"]["base_url"] == up.base_url and run["config"]["concurrency"] == 2
    assert run["metrics"]["resumed"][-1]["changed"]["base_url"] == {"was": down.base_url, "now": up.base_url}
    assert _one_prediction_each(db, run_id) == 6


def test_missing_depth_pictures_are_one_clear_error_before_the_run(tmp_path):
    data = make_choice_bench(tmp_path, 3, depth=False)
    db = tmp_path / "sif.db"
    with fake_openai_server(lambda r, n: Reply(choice_answer(r))) as server:
        for extra in ([], ["--depth-model", str(tmp_path / "no-such-model")]):
            res = _eval(db, data, "--backend", "openai", "--base-url", server.base_url, *extra)
            assert res.exit_code == 1
            assert "3 of 3 records have no depth picture" in res.output and "0_d.png" in res.output
            assert "--depth-model" in res.output
        assert not server.requests and not _runs(db)  # nothing was asked, no run was made
        res = _eval(db, data, "--backend", "openai", "--base-url", server.base_url, "--set", "depth_model=flat")
        assert res.exit_code == 0, res.output
        assert _runs(db)[0]["config"]["depth_model"] == "flat" and len(server.requests) == 3


# ---------------------------------------------------------------- shards


def _mmbench(tmp_path) -> Path:
    rows = [
        {
            "index": q,
            "question": f"Question about colour {q}?",
            "hint": "nan",
            **dict(zip("ABCD", ["red", "green", "blue", "black"][: 2 + q % 3])),
            "answer": "ABCD"[q % (2 + q % 3)],
            "category": f"cat{q % 2}",
            "l2-category": f"ability{q % 3}",
            "image": png_base64(),
        }
        for q in range(9)
    ]
    return mmbench_tsv(tmp_path / "mmbench.tsv", rows)


def test_two_shards_merged_equal_the_unsharded_run(tmp_path):
    data = _mmbench(tmp_path)
    runner = CliRunner()

    def run(db, *args):
        res = runner.invoke(
            app,
            ["eval", "mmbench", "--db", str(db), "--data", str(data), "--backend", "openai", "--base-url", url, *args]
            + ["--depth-model", "flat", "--out", str(tmp_path / "reports")],
        )
        assert res.exit_code == 0, res.output
        return _runs(db)[0]["id"]

    with fake_openai_server(lambda r, n: Reply(choice_answer(r))) as server:
        url = server.base_url
        whole = run(tmp_path / "whole.db")
        shards = [run(tmp_path / f"machine{i}.db", "--shard", f"{i}/2") for i in range(2)]
    res = runner.invoke(
        app,
        ["eval", "merge", *(str(tmp_path / "reports" / s) for s in shards), "--db", str(tmp_path / "merged.db")]
        + ["--out", str(tmp_path / "reports")],
    )
    assert res.exit_code == 0, res.output
    merged = _runs(tmp_path / "merged.db")[0]["id"]

    def report(run_id):
        return json.loads((tmp_path / "reports" / run_id / "report.json").read_text())

    parts = [{r["id"] for r in report(s)["records"]} for s in shards]
    assert not parts[0] & parts[1] and all(parts)
    questions = [{rid.rsplit("-c", 1)[0] for rid in part} for part in parts]
    assert not questions[0] & questions[1]  # a question's circular passes stay in one shard

    def records(run_id):
        return [{k: v for k, v in r.items() if k != "sample_id"} for r in report(run_id)["records"]]

    assert records(merged) == records(whole)  # record for record
    assert report(merged)["metrics"] == report(whole)["metrics"]
    assert 0 < report(whole)["metrics"]["overall"]["accuracy"] < 1
    with Store.open(tmp_path / "merged.db") as store:
        assert len(store.run_predictions(merged)) == len(records(whole))  # curators can open them
        assert store.get_run(merged)["metrics"]["summary"]["merged_from"] == [
            str(tmp_path / "reports" / s) for s in shards
        ]

    res = runner.invoke(app, ["eval", "merge", str(tmp_path / "reports" / shards[0]), "--db", str(tmp_path / "m.db")])
    assert res.exit_code == 1 and "shard(s) 1/2 missing" in res.output


def test_shards_are_deterministic_and_cover_every_record(tmp_path):
    from evaluation.adapters import load_benchmark

    records = load_benchmark("cvbench", make_choice_bench(tmp_path, 11, size=(8, 8))).records
    parts = [select_records(records, None, f"{i}/3") for i in range(3)]
    assert sorted(r.id for p in parts for r in p) == sorted(r.id for r in records)
    assert [len(p) for p in parts] == [4, 4, 3]
    assert [r.id for r in select_records(records, None, "1/3")] == [r.id for r in parts[1]]
    with pytest.raises(ValueError, match="0 ≤ i < n"):
        EvalConfig(benchmark="cvbench", data="x", shard="3/3")
