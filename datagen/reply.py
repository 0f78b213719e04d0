"""Turning a teacher's reply into a chain: extract it, check it kept the plan, repair what is safe.

Safe repairs: wrapping prose or code fences around the chain, numbers not in canonical form,
boxes in pixel coordinates of the image (converted), boxes that drift from the plan within a
tolerance (snapped back to the planned boxes), depths (always the planned ones, which come from
the depth map), and an answer that disagrees with the ground truth (replaced by it, since the
teacher was told it; a missing or unclosed `<answer>` is fine). The teacher's own answer sentence
is kept when it agrees, as in SIF-50K; the short ground truth stays on the sample for rewards and
evaluation. Anything else — unclosed or stray tags in the steps, missing or extra steps, a step
with another number of regions, a box beyond the tolerance, numbers that are neither normalized
nor pixels of the image, an empty text, a text holding control characters or undecodable bytes —
leaves the reply invalid, and it is stored verbatim with these problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from sif.chain import Chain, Region, Step, first_notes, parse_chain, render_chain, validate_chain
from sif.geometry import to_normalized
from sif.plan import FocusPlan
from sif.rewards import normalize_answer, rule_based_score

DEFAULT_BOX_TOLERANCE = 0.02  # largest |coordinate difference| from the planned box, normalized
PIXEL_SLACK = 1.01  # pixel boxes may overshoot the image by 1% (rounding); they are clipped to it
_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)
_CHAIN_START = re.compile(r"<think>\s*<area>")
# Control characters, U+FFFD (bytes that were not UTF-8) and lone surrogates: not a teacher's words.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd\ud800-\udfff]")


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
    """The chain in a reply, code fences dropped: from the `<think>` that opens the first step
    (a `<think>` followed by `<area>`, else the first `<think>`: prose before the chain may name
    the tags) to the first `</answer>` after it. Without a `</answer>` it runs to the end of the
    reply when an `<answer>` was opened, else to the last `</think>`.

    >>> extract_chain_text("Use <think> tags.\\n<think><area>[]</area><text>t</text></think><answer>a</answer> Done.")
    '<think><area>[]</area><text>t</text></think><answer>a</answer>'
    """
    text = _FENCE.sub("", reply)
    first_step = _CHAIN_START.search(text)
    start = first_step.start() if first_step else text.find("<think>")
    if start < 0:
        return text.strip()
    end = text.find("</answer>", start)
    if end >= 0:
        return text[start : end + len("</answer>")]
    if text.find("<answer>", start) < 0 and text.rfind("</think>") > start:
        return text[start : text.rfind("</think>") + len("</think>")]
    return text[start:].strip()


def _about_answer(note: str) -> bool:
    """A lenient-parse note about the answer: harmless here, since the ground truth replaces it."""
    return "<answer>" in note


def _pixel_boxes(steps: tuple[Step, ...], size: tuple[int, int] | None) -> tuple[tuple[Step, ...], str, str]:
    """(steps, repair, problem): boxes given in pixels of the `size` (width, height) image are
    normalized (the repair says so); numbers above 1 that are not such pixels are a problem.
    Normalized boxes (no number above 1) come back unchanged, with neither."""
    boxes = [r.bbox for s in steps for r in s.regions]
    if all(v <= 1.0 for b in boxes for v in b):
        return steps, "", ""
    if size is None:
        return steps, "", "boxes have numbers above 1 (pixel coordinates?) and the image size is unknown"
    w, h = size
    fits = (min(b) >= 0 and max(b[0], b[2]) <= w * PIXEL_SLACK and max(b[1], b[3]) <= h * PIXEL_SLACK for b in boxes)
    if not all(fits):
        return steps, "", f"boxes have numbers above 1 that are not pixel coordinates of the {w}×{h} image either"

    def normalized(r: Region) -> Region:
        x1, y1, x2, y2 = to_normalized(r.bbox, w, h)
        return Region((x1, y1, x2, y2), r.depth)

    converted = tuple(Step(tuple(map(normalized, s.regions)), s.text) for s in steps)
    return converted, f"converted pixel boxes of the {w}×{h} image to normalized ones", ""


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


def check_reply(
    reply: str,
    plan: FocusPlan,
    answer: str,
    *,
    tolerance: float = DEFAULT_BOX_TOLERANCE,
    size: tuple[int, int] | None = None,
) -> ReplyCheck:
    candidate = extract_chain_text(reply)
    repairs: list[str] = []
    if candidate != reply.strip():
        repairs.append("removed text around the chain")
    format_problems = validate_chain(candidate)
    parsed = parse_chain(candidate)
    steps = parsed.chain.steps
    # What the lenient parser had to skip or guess is structural damage, not a safe repair
    # (but not a missing or unclosed <answer>: the ground truth replaces it anyway).
    problems = [f"unreadable reply: {s}" for s in parsed.skipped if not _about_answer(s)]
    if not steps:
        problems.append("no <area>/<text> step could be read from the reply")
    elif len(steps) != len(plan.steps):
        problems.append(f"the reply has {len(steps)} steps, the plan has {len(plan.steps)}")
    else:
        steps, repair, problem = _pixel_boxes(steps, size)
        repairs += [repair] if repair else []
        problems += [problem] if problem else []
    max_drift = 0.0
    new_steps: list[Step] = []
    if not problems:
        for i, (step, planned) in enumerate(zip(steps, plan.steps), start=1):
            text = step.text.strip()
            if not text:
                problems.append(f"step {i}: the text is empty")
            bad = _NOT_TEXT.search(text)
            if bad:
                problems.append(
                    f"step {i}: the text holds {bad.group(0)!r}, which is not text (a control character or undecodable bytes)"
                )
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
        return ReplyCheck(None, first_notes(problems + [str(p) for p in format_problems]), repairs, max_drift)

    given = (parsed.chain.answer or "").strip()
    chain = Chain(tuple(new_steps), given if given and answer_agrees(answer, given) else answer.strip())
    final_problems = validate_chain(render_chain(chain))
    if final_problems:  # e.g. a text that itself contains tags
        return ReplyCheck(None, [str(p) for p in final_problems], repairs, max_drift)
    if format_problems:
        more = f" (and {len(format_problems) - 5} more)" if len(format_problems) > 5 else ""
        repairs.append("fixed format: " + "; ".join(str(p) for p in format_problems[:5]) + more)
    if max_drift > 0.0005:
        repairs.append(f"snapped boxes to the plan (largest drift {max_drift:.3f})")
    got_depths = sorted(-1.0 if r.depth is None else r.depth for s in steps for r in s.regions)
    planned_depths = sorted(-1.0 if r.depth is None else r.depth for s in plan.steps for r in s)
    if not np.allclose(got_depths, planned_depths, atol=5e-4):
        repairs.append("refilled depths from the depth map")
    if chain.answer != given:
        repairs.append(f"answer {parsed.chain.answer!r} replaced by the ground truth")
    return ReplyCheck(chain, [], repairs, max_drift)
