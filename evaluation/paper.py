"""The SIFThinker paper's published numbers (PAPER.md), for `sif eval report --paper`.

Quoted, never measured here. Each entry names the benchmark and the metric key of our report
it sits beside; percentages are stored as fractions so they line up with our numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quoted:
    benchmark: str
    category: str  # "overall" or a sub-task key of our metrics
    metric: str
    value: float | None  # None: the paper reports it but PAPER.md does not give the figure
    setting: str


PAPER_RESULTS: tuple[Quoted, ...] = (
    Quoted("spatialbench", "overall", "accuracy", 0.745, "SIFThinker, Qwen2.5-VL-7B"),
    Quoted("spatialbench", "overall", "accuracy", 0.643, "SIFThinker, Bunny-LLaMA3-8B"),
    Quoted("sat", "overall", "accuracy", 0.728, "SIFThinker (SAT static)"),
    Quoted("cvbench", "overall", "accuracy", 0.759, "SIFThinker"),
    Quoted("viscot", "overall", "mean_of_subtasks", 0.760, "SIFThinker, Qwen2.5-VL-7B"),
    Quoted("viscot", "overall", "mean_of_subtasks", 0.751, "SIFThinker, LLaVA-1.5-7B"),
    Quoted("vstar", "direct_attributes", "score", 0.791, "SIFThinker, attribute"),
    Quoted("vstar", "relative_position", "score", 0.776, "SIFThinker, spatial"),
    Quoted("ovd", "overall", "nms_ap", 0.378, "SIFThinker (OVDEval NMS-AP)"),
    Quoted("mmbench", "overall", "accuracy", 0.834, "SIFThinker, Qwen2.5-VL-7B (MMBench test; ours: dev)"),
    Quoted("mmbench", "overall", "accuracy", 0.768, "SIFThinker, Bunny-8B (MMBench test; ours: dev)"),
    Quoted("rec", "overall", "acc@0.5", None, "SIFThinker: RefCOCO/+/g Top-1 Acc@0.5 (figures not in PAPER.md)"),
)


def quoted_for(benchmark: str) -> list[Quoted]:
    return [q for q in PAPER_RESULTS if q.benchmark == benchmark]
