"""Live feedback on a chain being edited: its strict-format problems and what the GRPO-SIF
rewards (FORMATS §5) would give it, computed with the same functions training uses."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from sif.chain import Chain, Problem, render_chain, validate_chain
from sif.geometry import hiou
from sif.rewards import bbox_reward, depth_reward, format_reward


@dataclass(frozen=True)
class RewardPreview:
    format: float
    final_hiou: float | None
    initial_hiou: float | None
    bbox: float | None
    depth: float | None
    depth_fraction: float | None
    problems: tuple[Problem, ...]

    @property
    def correction(self) -> float | None:
        """s_end − s_init: how much the chain's focus improved on its first look."""
        if self.final_hiou is None or self.initial_hiou is None:
            return None
        return self.final_hiou - self.initial_hiou


def preview(
    chain: Chain, gt_boxes: Sequence[Sequence[float]], depth_path: str | os.PathLike | None, depth_encoding: str | None
) -> RewardPreview:
    text = render_chain(chain)
    problems = tuple(validate_chain(text))
    has_steps = bool(chain.steps)
    s_end = hiou(chain.final_boxes, gt_boxes) if has_steps and gt_boxes else None
    s_init = hiou(chain.initial_boxes, gt_boxes) if has_steps and gt_boxes else None
    bbox = bbox_reward([text], gt_boxes=[gt_boxes])[0] if gt_boxes else None
    depth = frac = None
    if depth_path is not None:
        args = dict(depth_path=[str(depth_path)], depth_encoding=[depth_encoding or "auto"])
        depth = depth_reward([text], **args)[0]
        frac = depth_reward([text], fractional=True, **args)[0]
    return RewardPreview(format_reward([text])[0], s_end, s_init, bbox, depth, frac, problems)


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def preview_markdown(p: RewardPreview) -> str:
    """The feedback panel: rewards first, then every format problem."""
    lines = [
        "| reward | value |",
        "|---|---|",
        f"| format | {_fmt(p.format)} |",
        f"| final-step HIoU vs GT | {_fmt(p.final_hiou)} |",
        f"| correction (s_end − s_init) | {_fmt(p.correction, signed=True)} |",
        f"| grounding r_bbox | {_fmt(p.bbox)} |",
        f"| depth consistency | {_fmt(p.depth)} (regions passing: {_fmt(p.depth_fraction)}) |",
        "",
    ]
    if p.problems:
        lines.append(f"**{len(p.problems)} format problem(s):**")
        lines += [f"- rule {pr.rule}: {pr}" for pr in p.problems]
    else:
        lines.append("**Valid chain**: no format problems.")
    return "\n".join(lines)
