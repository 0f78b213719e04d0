"""Live feedback on a chain being edited: its strict-format problems and what the GRPO-SIF
rewards (FORMATS §5) would give it, computed with the same functions training uses, with the
plain words and the one-line help the curator reads them by."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from sif.chain import Chain, Problem, render_chain, validate_chain
from sif.geometry import hiou
from sif.rewards import chain_bbox_score, chain_depth_score

REWARD_HELP = {
    "format": "1 when the chain follows the strict format (think/area/text/answer, 3-decimal boxes), else 0.",
    "final-step HIoU": "How well the last step's boxes cover the ground-truth boxes (0 = miss, 1 = exact).",
    "grounding gain": "Final-step HIoU minus first-step HIoU: how much the chain narrowed in on the answer.",
    "box reward": "What GRPO-SIF pays for grounding: final-step HIoU plus the grounding gain.",
    "depth consistency": "1 when every region's depth is within 10% of the depth map under its box, else 0.",
    "regions with the right depth": "The share of regions whose depth matches the map (the partial-credit variant).",
}


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
        """The grounding gain: final-step HIoU minus first-step HIoU."""
        if self.final_hiou is None or self.initial_hiou is None:
            return None
        return self.final_hiou - self.initial_hiou

    def rows(self) -> list[tuple[str, str, str]]:
        """(label, value, one-line help) for each reward."""
        values = {
            "format": _fmt(self.format),
            "final-step HIoU": _fmt(self.final_hiou),
            "grounding gain": _fmt(self.correction, signed=True),
            "box reward": _fmt(self.bbox),
            "depth consistency": _fmt(self.depth),
            "regions with the right depth": _fmt(self.depth_fraction),
        }
        return [(label, values[label], help_) for label, help_ in REWARD_HELP.items()]

    def problems_by_step(self) -> dict[int | None, list[Problem]]:
        out: dict[int | None, list[Problem]] = {}
        for p in self.problems:
            out.setdefault(p.step, []).append(p)
        return out


def preview(
    chain: Chain,
    gt_boxes: Sequence[Sequence[float]],
    depth_path: str | os.PathLike | None,
    depth_encoding: str | None,
    *,
    text: str | None = None,
) -> RewardPreview:
    """The rewards training would give `chain` (format as `format_reward`, grounding as
    `bbox_reward`, depth as `depth_reward`), each computed once on the parsed chain (`text` is
    its rendering, when the caller has it)."""
    problems = tuple(validate_chain(render_chain(chain) if text is None else text))
    has_steps = bool(chain.steps)
    s_end = hiou(chain.final_boxes, gt_boxes) if has_steps and gt_boxes else None
    s_init = hiou(chain.initial_boxes, gt_boxes) if has_steps and gt_boxes else None
    bbox = chain_bbox_score(chain, gt_boxes) if gt_boxes else None
    depth = frac = None
    if depth_path is not None:
        frac = chain_depth_score(chain, str(depth_path), depth_encoding or "auto", fractional=True)
        depth = float(frac == 1.0)
    return RewardPreview(0.0 if problems else 1.0, s_end, s_init, bbox, depth, frac, problems)


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.3f}" if signed else f"{v:.3f}"
