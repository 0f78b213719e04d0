"""The Stats tab: curation progress, validity rate and the distributions of the current chains'
final-step HIoU, depth check and length, from `db.stats.curation_stats` (SQL on the index), as
bar-plot data (Gradio's plot payload, so no data-frame library is needed)."""

from __future__ import annotations

from dataclasses import dataclass

from db.stats import curation_stats
from db.store import Store


@dataclass
class Bars:
    """One bar plot: a label and a count per bar."""

    x: str
    counts: dict[str, int]

    def count(self, label: str) -> int:
        return self.counts.get(label, 0)

    def total(self) -> int:
        return sum(self.counts.values())

    def plot(self) -> dict:
        """The value a `gr.BarPlot(x=self.x, y="samples")` draws."""
        return {
            "columns": [self.x, "samples"],
            "data": [[label, n] for label, n in self.counts.items()],
            "datatypes": {self.x: "nominal", "samples": "quantitative"},
            "mark": "bar",
        }


@dataclass
class Stats:
    total: int
    reviewed: int
    valid: int
    with_chain: int
    status: Bars
    hiou: Bars
    depth: Bars
    length: Bars

    def summary(self) -> str:
        def pct(a, b):
            return f"{100 * a / b:.1f}%" if b else "—"

        return (
            f"{self.total} samples · reviewed {self.reviewed} ({pct(self.reviewed, self.total)}) · "
            f"with a chain {self.with_chain} · valid {self.valid} (validity rate {pct(self.valid, self.with_chain)})"
        )


def compute_stats(store: Store) -> Stats:
    s = curation_stats(store)
    lengths = s["chain_steps"]
    span = range(min(lengths, default=0), max(lengths, default=0) + 1)
    return Stats(
        total=s["samples"],
        reviewed=s["reviewed"],
        valid=s["valid"],
        with_chain=s["with_chain"],
        status=Bars("status", s["by_status"]),
        hiou=Bars("final-step HIoU", s["final_hiou"]),
        depth=Bars("depth", s["depth_check"]),
        length=Bars("steps", {str(n): lengths.get(n, 0) for n in span}),
    )
