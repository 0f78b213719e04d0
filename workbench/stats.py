"""The Stats tab's numbers: curation progress, validity rate and the distributions of the current
chains' final-step HIoU, depth consistency and length, as small tables ready for bar plots."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from db.schema import STATUSES
from db.store import Store

HIOU_BINS = np.linspace(0.0, 1.0, 11)


@dataclass
class Stats:
    total: int
    reviewed: int
    valid: int
    with_chain: int
    status: pd.DataFrame
    hiou: pd.DataFrame
    depth: pd.DataFrame
    length: pd.DataFrame

    def summary_markdown(self) -> str:
        def pct(a, b):
            return f"{100 * a / b:.1f}%" if b else "—"

        return (
            f"**{self.total}** samples · reviewed **{self.reviewed}** ({pct(self.reviewed, self.total)}) · "
            f"with a chain **{self.with_chain}** · valid **{self.valid}** "
            f"(validity rate {pct(self.valid, self.with_chain)})"
        )


def _bars(labels: list[str], counts: list[int], x: str) -> pd.DataFrame:
    return pd.DataFrame({x: labels, "samples": counts})


def compute_stats(store: Store, **filters) -> Stats:
    """Stats over the samples matching `filters` (the store's query filters)."""
    rows = store.query(**filters, limit=-1)
    status = Counter(r.status for r in rows)
    hious = np.array([r.final_hiou for r in rows if r.final_hiou is not None], dtype=float)
    hist, _ = np.histogram(hious, bins=HIOU_BINS)
    hiou_labels = [f"{a:.1f}–{b:.1f}" for a, b in zip(HIOU_BINS[:-1], HIOU_BINS[1:])]
    depth = Counter(
        {True: "consistent", False: "inconsistent", None: "no depth map"}[r.depth_ok] for r in rows if r.rev is not None
    )
    lengths = Counter(r.n_steps for r in rows if r.n_steps is not None)
    span = range(min(lengths, default=0), max(lengths, default=0) + 1)
    return Stats(
        total=len(rows),
        reviewed=sum(n for s, n in status.items() if s != "pending"),
        valid=sum(1 for r in rows if r.valid),
        with_chain=sum(1 for r in rows if r.rev is not None),
        status=_bars(list(STATUSES), [status.get(s, 0) for s in STATUSES], "status"),
        hiou=_bars(hiou_labels, hist.tolist(), "final-step HIoU"),
        depth=_bars(
            ["consistent", "inconsistent", "no depth map"],
            [depth.get(k, 0) for k in ("consistent", "inconsistent", "no depth map")],
            "depth",
        ),
        length=_bars([str(n) for n in span], [lengths.get(n, 0) for n in span], "steps"),
    )
