"""Turning a teacher's reply into a chain: extract it, check it kept the plan, repair what is safe.

Safe repairs: wrapping prose or code fences around the chain, numbers not in canonical form,
boxes that drift from the plan within a tolerance (snapped back to the planned boxes), depths
(always the planned ones, which come from the depth map), and an answer that disagrees with the
ground truth (replaced by it, since the teacher was told it). The teacher's own answer sentence
is kept when it agrees, as in SIF-50K; the short ground truth stays on the sample for rewards
and evaluation. Anything else — unclosed or stray tags, missing or extra steps, a step with
another number of regions, a box beyond the tolerance, an empty text — leaves the reply
invalid, and it is stored verbatim with these problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from sif.chain import Chain, Region, Step, parse_chain, render_chain, validate_chain
from sif.plan import FocusPlan
from sif.rewards import normalize_answer, rule_based_score

DEFAULT_BOX_TOLERANCE = 0.02  # largest |coordinate difference| from the planned box, normalized
_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)


@dataclass
class ReplyCheck:
    """The outcome for one reply: a strictly valid chain, or None with the problems found."""

    chain: Chain | None
    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    max_drift: float = 0.0

    @property
    def ok(self) -> bool:
        return self.chain is not None

    @property
    def text(self) -> str | None:
        """The canonical chain text, when the reply was usable."""
        return render_chain(self.chain) if self.chain is not None else None


def extract_chain_text(reply: str) -> str:
    """The part of a reply from the first `<think>` to the last `</answer>` (fences dropped)."""
    text = _FENCE.sub("", reply)
    start = text.find("<think>")
    end = text.rfind("</answer>")
    if start >= 0 and end > start:
        return text[start : end + len("</answer>")]
    return text.strip()


def _drift(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))


def _match_regions(got: tuple[Region, ...], planned: list[Region]) -> tuple[list[int], list[float]]:
    """For each planned region, the index of the reply region matched to it and its drift."""
    cost = np.array([[_drift(g.bbox, p.bbox) for p in planned] for g in got])
    rows, cols = linear_sum_assignment(cost)
    order = [0] * len(planned)
    drifts = [0.0] * len(planned)
    for r, c in zip(rows, cols):
        order[c], drifts[c] = int(r), float(cost[r, c])
    return order, drifts


def answer_agrees(truth: str, sentence: str) -> bool:
    """Whether the teacher's answer sentence gives the ground-truth answer: the rule-based scorer
    says so, or (for answers that are not a yes/no or a number) it contains every word of it."""
    if rule_based_score("", truth, sentence) == 1.0:
        return True
    words = normalize_answer(truth).split()
    if not words or words[0] in ("yes", "no") or any(w.replace(".", "", 1).isdigit() for w in words):
        return False
    return set(words) <= set(normalize_answer(sentence).split())


def check_reply(reply: str, plan: FocusPlan, answer: str, *, tolerance: float = DEFAULT_BOX_TOLERANCE) -> ReplyCheck:
    """Check `reply` against `plan` and the ground-truth `answer`; repair what is safe."""
    candidate = extract_chain_text(reply)
    repairs: list[str] = []
    if candidate != reply.strip():
        repairs.append("removed text around the chain")
    format_problems = validate_chain(candidate)
    parsed = parse_chain(candidate)
    steps = parsed.chain.steps
    # What the lenient parser had to skip or guess is structural damage, not a safe repair
    # (a missing <answer> is fine: the ground truth replaces it anyway).
    problems = [f"unreadable reply: {s}" for s in parsed.skipped if s != "no <answer>"]
    if not steps:
        problems.append("no <area>/<text> step could be read from the reply")
    elif len(steps) != len(plan.steps):
        problems.append(f"the reply has {len(steps)} steps, the plan has {len(plan.steps)}")
    max_drift = 0.0
    new_steps: list[Step] = []
    if not problems:
        for i, (step, planned) in enumerate(zip(steps, plan.steps), start=1):
            text = step.text.strip()
            if not text:
                problems.append(f"step {i}: the text is empty")
            if len(step.regions) != len(planned):
                problems.append(f"step {i}: the reply has {len(step.regions)} region(s), the plan has {len(planned)}")
                continue
            _, drifts = _match_regions(step.regions, planned)
            for j, d in enumerate(drifts, start=1):
                max_drift = max(max_drift, d)
                if d > tolerance:
                    problems.append(f"step {i} region {j}: box drifts {d:.3f} from the plan (tolerance {tolerance:g})")
            new_steps.append(Step(tuple(planned), text))
    if problems:
        return ReplyCheck(None, problems + [str(p) for p in format_problems], repairs, max_drift)

    given = (parsed.chain.answer or "").strip()
    chain = Chain(tuple(new_steps), given if given and answer_agrees(answer, given) else answer.strip())
    final_problems = validate_chain(render_chain(chain))
    if final_problems:  # e.g. a text that itself contains tags
        return ReplyCheck(None, [str(p) for p in final_problems], repairs, max_drift)
    if format_problems:
        repairs.append("fixed format: " + "; ".join(str(p) for p in format_problems[:5]))
    if max_drift > 0.0005:
        repairs.append(f"snapped boxes to the plan (largest drift {max_drift:.3f})")
    got_depths = sorted(-1.0 if r.depth is None else r.depth for s in steps for r in s.regions)
    planned_depths = sorted(r.depth for s in plan.steps for r in s)
    if not np.allclose(got_depths, planned_depths, atol=5e-4):
        repairs.append("refilled depths from the depth map")
    if chain.answer != given:
        repairs.append(f"answer {parsed.chain.answer!r} replaced by the ground truth")
    return ReplyCheck(chain, [], repairs, max_drift)
