"""The offline `template` teacher: step texts filled from templates, one per kind of step.

For the embedded demo, the tests and users without an API. Its chains are plain but valid and
follow the plan exactly; they are marked as template text wherever they are stored.
"""

from __future__ import annotations

from sif.chain import Chain, Region, Step, render_chain
from sif.plan import FocusPlan


def depth_word(depth: float) -> str:
    """A coarse word for a normalized depth (0 = nearest)."""
    if depth < 0.34:
        return "near the camera"
    if depth < 0.67:
        return "at middle distance"
    return "far from the camera"


def _where(regions: list[Region]) -> str:
    nearest = min(r.depth for r in regions if r.depth is not None)  # a plan gives every region its depth
    place = f"{depth_word(nearest)} (depth {nearest:.2f})"
    return place if len(regions) == 1 else f"in {len(regions)} places, the nearest {place}"


def template_text(kind: str, regions: list[Region], question: str, answer: str) -> str:
    """The text of one step of `kind` (see sif.plan.STEP_KINDS)."""
    where = _where(regions)
    if kind == "whole":
        return f"The question is: {question.strip()} I start from the whole scene to find what it refers to."
    if kind == "distractor":
        return f"This region lies {where}, but it does not show what the question is about, so I look elsewhere."
    if kind == "enclosing":
        return f"The relevant objects lie inside this area, {where}."
    if kind == "expansion":
        return f"Narrowing down, the target lies {where}."
    if kind == "gt":
        what = (
            "This region settles the question; it lies"
            if len(regions) == 1
            else f"These {len(regions)} regions settle the question; they lie"
        )
        return f"{what} {where}. The answer is {answer.strip()}."
    raise ValueError(f"unknown step kind {kind!r}")


def template_chain(plan: FocusPlan, question: str, answer: str) -> Chain:
    """The plan with template texts and the ground-truth answer."""
    steps = tuple(
        Step(tuple(regions), template_text(kind, regions, question, answer))
        for regions, kind in zip(plan.steps, plan.kinds)
    )
    return Chain(steps, answer.strip())


def template_reply(plan: FocusPlan, question: str, answer: str) -> str:
    """What the template teacher 'replies': the canonical text of its chain."""
    return render_chain(template_chain(plan, question, answer))
