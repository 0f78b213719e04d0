"""Answer judges for the progressive answer reward: a VLM over an OpenAI-compatible API, or rules.

`score_many(items)` scores every (question, ground truth, prediction, image) at once — the VLM
judge sends them concurrently through the project's chat client (retries with backoff,
timeouts) — and returns `None` for an item whose judging failed. Failures are counted by kind
(`timeout`, `http`, `transport`, `malformed`, `unparseable`) so a caller can log them and never
mistake a failed judgment for a wrong answer.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from dataclasses import dataclass

from sif.errors import ConfigError
from sif.rewards import rule_based_score
from training.config import JudgeSettings

# The judging instruction (after the paper's Fig. 7 and the reference's prompt), in our own words:
# a continuous closeness score, not a right/wrong verdict.
JUDGE_INSTRUCTION = (
    "You grade answers to questions about an image. You get the question, the reference answer "
    "and a model's answer (and the image, when it can be shown). Score how close the model's "
    "answer is to the reference answer, from 0 to 1: the closer it comes, the higher the score. "
    "1 is an answer that means the same as the reference, 0 one that is unrelated to it or "
    "contradicts it, and anything in between is for answers that come partly or nearly there. "
    "Wording, letter case, synonyms and extra explanation do not matter; a different object, "
    'colour, count, position or yes/no does. Reply with JSON only, exactly in the form {"score": '
    "<number between 0 and 1>}."
)
IMAGE_REFUSED = (400, 413, 415, 422)  # HTTP statuses with which an endpoint turns down an image


@dataclass(frozen=True)
class JudgeItem:
    question: str
    answer: str
    prediction: str
    image: str | None = None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)
_SCORE = re.compile(r"[\"']?score[\"']?\s*[:=]\s*[\"']?(-?\d+(?:\.\d+)?)", re.I)


def parse_score(text: str) -> float | None:
    """The score in a judge reply: `{"score": x}`, possibly fenced or inside prose; None if absent
    or outside [0, 1]."""
    if not isinstance(text, str):
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        for m in re.finditer(r"\{[^{}]*\}", chunk):
            try:
                value = json.loads(m.group(0)).get("score")
            except (ValueError, AttributeError):
                continue
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                try:
                    score = float(value)
                except ValueError:
                    continue
                return score if 0.0 <= score <= 1.0 else None
    bare = _SCORE.search(text)
    if bare:
        score = float(bare.group(1))
        return score if 0.0 <= score <= 1.0 else None
    return None


class RuleJudge:
    """The offline rule-based scorer (`sif.rewards.rule_based_score`); it never fails."""

    failures: Counter

    def __init__(self):
        self.failures = Counter()

    def score_many(self, items: list[JudgeItem]) -> list[float | None]:
        return [rule_based_score(i.question, i.answer, i.prediction) for i in items]


class VLMJudge:
    """An OpenAI-compatible VLM judge, called concurrently; failed items come back as None."""

    def __init__(self, settings: JudgeSettings):
        from common.openai_client import ChatConfig

        self.config = ChatConfig.of(settings)
        self.send_image = settings.send_image
        self.failures: Counter = Counter()
        self.requests = 0
        self.text_only = 0  # requests sent without the image after the endpoint refused one

    def _messages(self, item: JudgeItem, with_image: bool) -> list[dict]:
        from common.openai_client import user_message

        text = (
            f"Question: {item.question}\nReference answer: {item.answer}\n"
            f'Model\'s answer: {item.prediction}\nReply with {{"score": x}}.'
        )
        images = [item.image] if with_image and item.image else []
        return [{"role": "system", "content": JUDGE_INSTRUCTION}, user_message(text, images)]

    async def _score_all(self, items: list[JudgeItem]) -> list[float | None]:
        from common.openai_client import ChatClient, ChatError

        async with ChatClient(self.config) as client:

            async def ask(item: JudgeItem):
                with_image = self.send_image and bool(item.image)
                try:
                    return await client.complete(self._messages(item, with_image), temperature=0.0, max_tokens=64)
                except ChatError as exc:
                    if not (with_image and exc.kind == "http" and exc.status in IMAGE_REFUSED):
                        raise
                self.send_image = False  # a text-only endpoint: judge on text from now on
                self.text_only += 1
                return await client.complete(self._messages(item, False), temperature=0.0, max_tokens=64)

            async def one(item: JudgeItem) -> float | None:
                try:
                    reply = await ask(item)
                except ChatError as exc:
                    self.failures[exc.kind] += 1
                    return None
                score = parse_score(reply.text)
                if score is None:
                    self.failures["unparseable"] += 1
                return score

            return await asyncio.gather(*(one(i) for i in items))

    def score_many(self, items: list[JudgeItem]) -> list[float | None]:
        unique = list(dict.fromkeys(items))  # the same prediction for the same sample is judged once
        self.requests += len(unique)
        if not unique:
            return []
        scores = dict(zip(unique, _run(self._score_all(unique))))
        return [scores[i] for i in items]


def _run(coro):
    """Run `coro` to completion from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def make_judge(settings: JudgeSettings):
    if settings.kind == "rule":
        return RuleJudge()
    if settings.kind == "openai":
        return VLMJudge(settings)
    raise ConfigError(f"judge.kind: {settings.kind!r} is not one of rule, openai")
