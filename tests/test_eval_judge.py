"""Open-VQA scoring through the OpenAI-compatible judge, against a real local server."""

from evaluation.runner import EvalConfig, make_scorer
from tests.support.fake_openai import Reply, fake_openai_server


def test_openai_judge_scores_and_counts_failures_instead_of_scoring_zero(monkeypatch):
    replies = {1: Reply('Sure.\n```json\n{"score": 0.8}\n```'), 2: Reply("I cannot tell.")}
    with fake_openai_server(lambda req, n: replies.get(n, Reply("bad", status=400))) as server:
        monkeypatch.setenv("SIF_OPENAI_BASE_URL", server.base_url)
        scorer = make_scorer(EvalConfig(benchmark="viscot", data="x.jsonl", judge="openai"))
        assert scorer("What colour?", "red", "crimson") == 0.8
        # An unparseable reply is a counted failure; the rules score the answer, not a silent 0.
        assert scorer("What colour?", "red", "red") == 1.0
        assert scorer("What colour?", "red", "blue") == 0.0
        sent = server.requests[0]["messages"]
    assert dict(scorer.failures) == {"unparseable": 1, "http": 1}
    assert "Reference answer: red" in sent[-1]["content"][-1]["text"]
