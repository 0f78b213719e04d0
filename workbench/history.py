"""Revision history of a sample's chain as the curator reads it: a list of who changed it when
and how (escaped HTML, a row per revision to click), and a line diff of two revisions'
canonical chain text."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from workbench.views import esc

DIFF_COLOURS = {"added": "#2ca02c", "removed": "#d62728"}


def history_html(revisions: Sequence, selected: int | None = None) -> str:
    """Newest first, one row per revision (rev, origin, author, time, validity, steps, run, note)."""
    rows = []
    for r in sorted(revisions, key=lambda r: r.rev, reverse=True):
        facts = [
            r.origin,
            f"by {r.author}",
            str(r.created_at)[:19].replace("T", " "),
            "valid" if r.valid else "invalid",
            f"{r.n_steps} steps",
        ]
        if r.run_id:
            facts.append(f"run {r.run_id}")
        note = f'<div class="wb-row-q">{esc(r.note)}</div>' if r.note else ""
        rows.append(
            f'<div class="wb-row{" wb-current" if r.rev == selected else ""}" data-rev="{r.rev}">'
            f'<div class="wb-row-head"><b>rev {r.rev}</b> {esc(" · ".join(facts))}</div>{note}</div>'
        )
    return '<div class="wb-list wb-history">' + "".join(rows) + "</div>"


def chain_diff(old_text: str, new_text: str) -> list[tuple[str, str | None]]:
    """Line diff of two chain texts as (text, 'added' | 'removed' | None) segments."""
    out: list[tuple[str, str | None]] = []
    old_lines, new_lines = old_text.splitlines(), new_text.splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            out += [("  " + line + "\n", None) for line in old_lines[i1:i2]]
            continue
        out += [("- " + line + "\n", "removed") for line in old_lines[i1:i2]]
        out += [("+ " + line + "\n", "added") for line in new_lines[j1:j2]]
    return out
