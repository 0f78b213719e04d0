"""The VLM answer judge against a real local OpenAI-compatible server, and its reward wiring."""

from __future__ import annotations

import pytest

from sif.rewards import InMemoryProgressStore
from tests.support.fake_openai import Reply, fake_openai_server
from training.config import JudgeSettings
from training.grpo_rewards import make_judged_answer_reward
from training.judge import JUDGE_INSTRUCTION, JudgeItem, VLMJudge, make_judge, parse_score


@pytest.mark.parametrize(
    "text, score",
    [
        ('{"score": 1}', 1.0),
        ('```json\n{"score": 0.5}\n```', 0.5),
        ('The answer names the same object. {"score": 0.8} Hope this helps.', 0.8),
        ("Score: 0.25", 0.25),
        ('{"score": "1"}', 1.0),
        ('{"score": 7}', None),
        ("I cannot judge this.", None),
        ("", None),
    ],
)
def test_parse_score_tolerates_fences_and_prose(text, score):
    assert parse_score(text) == score


def _settings(server, **extra) -> JudgeSettings:
    options = dict(
        kind="openai", base_url=server.base_url, model="judge-vlm", max_retries=1, backoff_s=0.01, timeout_s=2.0
    )
    return JudgeSettings(**{**options, **extra})


def _item(prediction: str) -> JudgeItem:
    return JudgeItem("What colour is the cube?", "red", prediction)


def test_scores_come_back_concurrently_with_the_instruction_and_image(tmp_path):
    from PIL import Image

    image = tmp_path / "rgb.png"
    Image.new("RGB", (8, 8), "red").save(image)

    def responder(request, n):
        text = request["messages"][1]["content"][-1]["text"]
        return Reply('```json\n{"score": 1}\n```' if "Model's answer: red" in text else 'Wrong. {"score": 0}')

    with fake_openai_server(responder) as server:
        judge = VLMJudge(_settings(server))
        items = [
            JudgeItem("What colour?", "red", "red", str(image)),
            JudgeItem("What colour?", "red", "blue", str(image)),
            JudgeItem("What colour?", "red", "red", str(image)),
        ]
        assert judge.score_many(items) == [1.0, 0.0, 1.0]
        assert len(server.requests) == 2  # identical items are judged once
        request = server.requests[0]
    assert request["model"] == "judge-vlm" and request["messages"][0]["content"] == JUDGE_INSTRUCTION
    assert request["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert not judge.failures


def test_timeout_500_and_malformed_replies_are_counted_failures():
    def responder(request, n):
        text = request["messages"][1]["content"][-1]["text"]
        if "slow" in text:
            return Reply('{"score": 1}', delay_s=3.0)
        if "broken" in text:
            return Reply(status=500, text="internal error")
        if "garbled" in text:
            return Reply(raw="{not json at all")
        if "rambling" in text:
            return Reply("I think it is probably fine.")
        return Reply('{"score": 1}')

    with fake_openai_server(responder) as server:
        judge = VLMJudge(_settings(server, timeout_s=0.5))
        scores = judge.score_many([_item(p) for p in ("slow", "broken", "garbled", "rambling", "red")])
    assert scores == [None, None, None, None, 1.0]
    assert judge.failures == {"timeout": 1, "http": 1, "malformed": 1, "unparseable": 1}


def test_answer_reward_never_scores_a_judge_failure_as_zero():
    chain = '<think><area>[{"bbox_2d":[0,0,1,1],"depth":0.5}]</area><text>a</text></think><answer>red</answer>'

    def responder(request, n):
        return Reply(status=500, text="down")

    with fake_openai_server(responder) as server:
        judge = make_judge(_settings(server))
        metrics = {}
        kwargs = dict(
            answer=["red"] * 2,
            question=["What colour is the cube?"] * 2,
            sample_id=["7"] * 2,
            log_metric=lambda k, v: metrics.__setitem__(k, v),
        )
        by_rules = make_judged_answer_reward(judge, InMemoryProgressStore(), on_failure="rule")
        assert by_rules([chain, chain], **kwargs) == [1.0, 1.0]  # the rule-based scorer stood in
        assert metrics == {"judge/failed": 2.0, "judge/judged": 2.0}
        skipped = make_judged_answer_reward(judge, InMemoryProgressStore(), on_failure="skip")
        assert skipped([chain, "no answer here"], **kwargs) == [None, 0.0]
    assert judge.failures["http"] >= 2


def test_rule_judge_is_the_offline_default():
    judge = make_judge(JudgeSettings())
    assert judge.score_many([_item("Red."), _item("blue")]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="judge.kind"):
        make_judge(JudgeSettings(kind="magic"))


def test_an_endpoint_that_refuses_images_is_judged_on_text_from_then_on(tmp_path):
    from PIL import Image

    image = tmp_path / "rgb.png"
    Image.new("RGB", (8, 8), "red").save(image)

    def responder(request, n):
        parts = request["messages"][1]["content"]
        if any(p.get("type") == "image_url" for p in parts):
            return Reply(status=400, text="this model does not accept images")
        return Reply('{"score": 0.7}')

    def images_sent(requests):
        return sum(any(p.get("type") == "image_url" for p in r["messages"][1]["content"]) for r in requests)

    with fake_openai_server(responder) as server:
        judge = VLMJudge(_settings(server))
        items = [JudgeItem("What colour?", "red", p, str(image)) for p in ("dark red", "crimson", "maroon")]
        assert judge.score_many(items) == [0.7, 0.7, 0.7]  # a continuous closeness score comes back as it is
        assert images_sent(server.requests) == judge.text_only >= 1 and not judge.failures
        first = len(server.requests)
        assert judge.score_many([JudgeItem("What colour?", "red", "scarlet", str(image))]) == [0.7]
        assert images_sent(server.requests[first:]) == 0 and len(server.requests) == first + 1
    assert "how close the model's answer is to the reference answer, from 0 to 1" in JUDGE_INSTRUCTION
