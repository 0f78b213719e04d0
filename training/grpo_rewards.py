"""The four SIF rewards as TRL reward functions, configured from `RewardSettings` and a judge."""

from __future__ import annotations

import functools
import logging

from sif.chain import parse_chain
from sif.errors import ConfigError
from sif.rewards import (
    bbox_reward,
    completion_text,
    depth_reward,
    format_reward,
    make_answer_reward,
    rule_based_score,
)
from training.config import GRPOSettings
from training.judge import JudgeItem

log = logging.getLogger(__name__)
REWARD_NAMES = ("format", "answer", "bbox", "depth")


def _predicted_answer(completion) -> str | None:
    try:
        return parse_chain(completion_text(completion)).chain.answer or None
    except Exception:  # model output must never break a reward
        return None


def make_judged_answer_reward(judge, store, *, on_failure: str = "rule", positive_only: bool = False):
    """The progressive answer reward with scores from `judge`, all of a batch judged at once.

    An item the judge fails on is counted and logged; it is scored by the rule-based scorer
    (`on_failure="rule"`) or left out of the answer reward (`"skip"`: None, which TRL ignores).
    """
    if on_failure not in ("rule", "skip"):
        raise ConfigError(f"judge.on_failure: {on_failure!r} is not one of rule, skip")

    def answer_reward(
        completions, answer, question, sample_id, image_path=None, trainer_state=None, log_metric=None, **kwargs
    ):
        if trainer_state is not None:
            store.step = trainer_state.global_step
        preds = [_predicted_answer(c) for c in completions]
        idx = [i for i, p in enumerate(preds) if p]
        items = [JudgeItem(question[i], str(answer[i]), preds[i], image_path[i] if image_path else None) for i in idx]
        table, failed = {}, set()
        for i, item, score in zip(idx, items, judge.score_many(items)):
            if score is None:
                failed.add(i)
                score = rule_based_score(item.question, item.answer, item.prediction)
            table[(item.question, item.answer, item.prediction)] = score
        reward = make_answer_reward(lambda q, a, p: table[(q, a, p)], store, positive_only=positive_only)
        rewards: list = reward(completions, answer=answer, question=question, sample_id=sample_id)
        if failed:
            log.warning(
                "judge failed on %d of %d answers (%s so far); %s",
                len(failed),
                len(items),
                dict(judge.failures),
                "scored by rules" if on_failure == "rule" else "left out",
            )
            if on_failure == "skip":
                rewards = [None if i in failed else r for i, r in enumerate(rewards)]
        if log_metric is not None:
            log_metric("judge/failed", float(len(failed)))
            log_metric("judge/judged", float(len(items)))
            if getattr(judge, "text_only", 0):  # the endpoint refused images: judged on text
                log_metric("judge/text_only", float(judge.text_only))
        return rewards

    return answer_reward


def sif_reward_functions(s: GRPOSettings, judge, store) -> tuple[list, list[float]]:
    """(reward functions, weights) in the order format, answer, bbox, depth; TRL logs them as
    `rewards/<name>_reward/mean` and `/std`."""
    r = s.rewards
    unknown = set(r.weights) - set(REWARD_NAMES)
    if unknown:
        raise ConfigError(f"rewards.weights: unknown reward(s) {sorted(unknown)}; known: {', '.join(REWARD_NAMES)}")
    funcs = [
        format_reward,
        make_judged_answer_reward(judge, store, on_failure=s.judge.on_failure, positive_only=r.answer_positive_only),
        functools.partial(bbox_reward, positive_only=r.bbox_positive_only, pair_denominator=r.pair_denominator),
        functools.partial(
            depth_reward, tolerance=r.depth_tolerance, fractional=r.depth_fractional, floor=r.depth_floor
        ),
    ]
    return funcs, [float(r.weights.get(name, 1.0)) for name in REWARD_NAMES]
