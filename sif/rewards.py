"""The four GRPO-SIF rewards (FORMATS §5) as plain functions with TRL's reward signature.

Each takes `completions` (a list of `[{"role": "assistant", "content": str}]`, or plain
strings) and the dataset's per-completion columns as keyword lists, and returns one float a
completion. A completion that cannot be parsed scores 0; no reward raises on bad text.
Variants of the public reference code are keyword options, bound with `functools.partial`.
"""

from __future__ import annotations

import math
import re
import string
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

from sif.chain import Chain, ParseResult, parse_chain, validate_chain
from sif.depth import DepthMap
from sif.geometry import PairDenominator, hiou

DEPTH_TOLERANCE = 0.1


def completion_text(completion) -> str:
    """The assistant text of a TRL completion (conversational list, message dict or plain
    string); anything else holds no text ("")."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content", "")
    elif isinstance(completion, Sequence) and completion:
        last = completion[-1]
        content = last.get("content", "") if isinstance(last, dict) else last
    else:
        return ""
    if isinstance(content, list):  # multimodal content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def _parsed(completion) -> ParseResult | None:
    try:
        return parse_chain(completion_text(completion))
    except Exception:  # a reward must never raise on model output
        return None


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 for a strictly valid chain (FORMATS §1), else 0.0.

    >>> ok = '<think><area>[{"bbox_2d":[0,0,1,1],"depth":0.5}]</area><text>a</text></think><answer>b</answer>'
    >>> format_reward([[{"role": "assistant", "content": ok}], "<answer>b</answer>"])
    [1.0, 0.0]
    """
    return [0.0 if validate_chain(completion_text(c)) else 1.0 for c in completions]


def bbox_reward(
    completions, gt_boxes, *, positive_only: bool = False, pair_denominator: PairDenominator = "min", **kwargs
) -> list[float]:
    """Correction-enhanced grounding: s_end + (s_end − s_init), s = hiou(·, ground truth).

    `positive_only=True` is the reference's variant that adds the improvement only when positive.

    >>> c = '<area>[{"bbox_2d":[0,0,1,1],"depth":0.5}]</area><text>a</text><area>[{"bbox_2d":[0,0,0.5,0.5],"depth":0.5}]</area><text>b</text><answer>x</answer>'
    >>> bbox_reward([c], gt_boxes=[[[0, 0, 0.5, 0.5]]])
    [1.0]
    """
    out = []
    for c, gt in zip(completions, gt_boxes):
        parsed = _parsed(c)
        out.append(
            0.0
            if parsed is None
            else chain_bbox_score(parsed.chain, gt, positive_only=positive_only, pair_denominator=pair_denominator)
        )
    return out


def chain_bbox_score(
    chain: Chain, gt_boxes, *, positive_only: bool = False, pair_denominator: PairDenominator = "min"
) -> float:
    """`bbox_reward` of one already parsed chain (callers holding the chain skip a re-parse)."""
    if not chain.steps:
        return 0.0
    s_end = hiou(chain.final_boxes, gt_boxes, pair_denominator)
    s_init = hiou(chain.initial_boxes, gt_boxes, pair_denominator)
    gain = s_end - s_init
    return s_end + (max(gain, 0.0) if positive_only else gain)


def depth_reward(
    completions,
    depth_path,
    depth_encoding=None,
    *,
    tolerance: float = DEPTH_TOLERANCE,
    fractional: bool = False,
    floor: float = 0.0,
    **kwargs,
) -> list[float]:
    """Depth consistency: 1 when every region's depth is within `tolerance`·d_gt of the depth map.

    `fractional=True` is the reference's variant: the fraction of regions that pass. `floor` is
    an allowance the tolerance never drops below (0: the paper's rule, which near d_gt = 0 only
    an exact depth meets; 0.02, say, forgives that).
    """
    encodings = depth_encoding if depth_encoding is not None else ["auto"] * len(completions)
    out = []
    for c, path, enc in zip(completions, depth_path, encodings):
        parsed = _parsed(c)
        out.append(
            chain_depth_score(parsed.chain, path, enc, tolerance=tolerance, fractional=fractional, floor=floor)
            if parsed
            else 0.0
        )
    return out


def chain_depth_score(
    chain: Chain,
    depth_path,
    depth_encoding=None,
    *,
    tolerance: float = DEPTH_TOLERANCE,
    fractional: bool = False,
    floor: float = 0.0,
) -> float:
    """`depth_reward` of one already parsed chain (callers holding the chain skip a re-parse)."""
    regions = [r for s in chain.steps for r in s.regions]
    if not regions:
        return 0.0
    try:
        dmap = DepthMap.load(depth_path, depth_encoding or "auto")
    except (OSError, ValueError):
        return 0.0
    scored = [(r.bbox, r.depth) for r in regions if r.depth is not None and math.isfinite(r.depth)]
    truths = dmap.box_means([box for box, _ in scored])
    passed = sum(abs(d - gt) <= max(tolerance * gt, floor) for (_, d), gt in zip(scored, truths))
    return passed / len(regions) if fractional else float(passed == len(regions))


# ---------------------------------------------------------------- progressive answer reward


class ProgressStore(Protocol):
    """Where the progressive answer reward keeps each sample's previous group mean."""

    def previous_mean(self, sample_id: str) -> float | None: ...

    def record(self, sample_id: str, scores: Sequence[float]) -> None: ...


class InMemoryProgressStore:
    """Process-local store; training uses a persistent one that survives resume."""

    def __init__(self) -> None:
        self._means: dict[str, float] = {}
        self._lock = threading.Lock()

    def previous_mean(self, sample_id: str) -> float | None:
        with self._lock:
            return self._means.get(str(sample_id))

    def record(self, sample_id: str, scores: Sequence[float]) -> None:
        with self._lock:
            self._means[str(sample_id)] = sum(scores) / len(scores)


Scorer = Callable[[str, str, str], float]


def make_answer_reward(scorer: Scorer, store: ProgressStore, *, positive_only: bool = False):
    """The progressive answer reward r = s + (s − previous group mean) as a TRL reward function.

    `scorer(question, answer, prediction)` gives s in [0, 1]. Completions of one sample within a
    call form its group; their mean becomes the baseline the next time the sample is seen.

    >>> reward = make_answer_reward(rule_based_score, InMemoryProgressStore())
    >>> reward(["<answer>red</answer>", "<answer>blue</answer>"], answer=["red"] * 2, question=["?"] * 2, sample_id=["s1"] * 2)
    [1.0, 0.0]
    >>> reward(["<answer>red</answer>", "<answer>red</answer>"], answer=["red"] * 2, question=["?"] * 2, sample_id=["s1"] * 2)
    [1.5, 1.5]
    """

    def progressive_answer_reward(completions, answer, question, sample_id, **kwargs) -> list[float]:
        scores: list[float] = []
        parsed_ok: list[bool] = []
        for c, gt, q in zip(completions, answer, question):
            parsed = _parsed(c)
            pred = parsed.chain.answer if parsed else None
            if not pred:
                scores.append(0.0)
                parsed_ok.append(False)
                continue
            scores.append(min(max(float(scorer(q, str(gt), pred)), 0.0), 1.0))
            parsed_ok.append(True)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, sid in enumerate(sample_id):
            groups[str(sid)].append(i)
        rewards = [0.0] * len(scores)
        for sid, idx in groups.items():
            prev = store.previous_mean(sid)
            for i in idx:
                if not parsed_ok[i]:
                    continue
                gain = 0.0 if prev is None else scores[i] - prev
                rewards[i] = scores[i] + (max(gain, 0.0) if positive_only else gain)
            store.record(sid, [scores[i] for i in idx])
        return rewards

    progressive_answer_reward.__name__ = "answer_reward"
    return progressive_answer_reward


# ---------------------------------------------------------------- offline rule-based scorer

_ARTICLES = {"a", "an", "the"}
_WORD_NUMBERS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    words = str(text).lower().translate(_PUNCT).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def _numbers(text: str) -> list[float]:
    nums = [float(m) for m in re.findall(r"-?\d+(?:\.\d+)?", str(text).replace(",", ""))]
    nums += [float(_WORD_NUMBERS[w]) for w in normalize_answer(text).split() if w in _WORD_NUMBERS]
    return nums


def _choice_letter(text: str) -> str | None:
    t = str(text).strip()
    m = re.fullmatch(r"\(?([A-Ha-h])[\).:]?", t)
    if m:
        return m.group(1).upper()
    m = re.search(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Ha-h])\b\)?", t, re.I) or re.match(
        r"\(?([A-H])[\).:]\s", t
    )
    return m.group(1).upper() if m else None


def token_f1(gt: str, pred: str) -> float:
    g, p = normalize_answer(gt).split(), normalize_answer(pred).split()
    if not g or not p:
        return float(g == p)
    common = sum((Counter(g) & Counter(p)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def rule_based_score(question: str, answer: str, prediction: str, *, rel_tol: float = 0.01) -> float:
    """Offline judge: exact match after normalizing, numbers with tolerance, yes/no, choice
    letters, then token F1 as partial credit.

    >>> rule_based_score("How many?", "3", "three"), rule_based_score("?", "Yes", "yes, it is")
    (1.0, 1.0)
    """
    g, p = normalize_answer(answer), normalize_answer(prediction)
    if not p:
        return 0.0
    if g == p:
        return 1.0
    if g in ("yes", "no"):
        first = next((w for w in p.split() if w in ("yes", "no")), None)
        return float(first == g)
    letter = _choice_letter(answer)
    if letter is not None and len(str(answer).strip()) <= 4:
        return float(_choice_letter(prediction) == letter)
    gn = _numbers(answer)
    # The raw answer, not `g`: normalizing strips the "." and "," of "2.5" and "1,000".
    if len(gn) == 1 and (re.fullmatch(r"-?[\d.,]+", str(answer).strip()) or g in _WORD_NUMBERS):
        pn = _numbers(prediction)
        return float(bool(pn) and math.isclose(pn[0], gn[0], rel_tol=rel_tol, abs_tol=1e-9))
    return token_f1(answer, prediction)
