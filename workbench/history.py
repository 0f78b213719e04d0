"""Revision history of a sample's chain as the curator reads it: a table of who changed it when
and how, and a line diff of two revisions' canonical chain text."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

HISTORY_HEADERS = ["rev", "origin", "author", "when", "valid", "steps", "run", "note"]
DIFF_COLOURS = {"added": "#2ca02c", "removed": "#d62728"}


def history_rows(revisions: Sequence) -> list[list]:
    """Newest first, one row per revision."""
    rows = []
    for r in sorted(revisions, key=lambda r: r.rev, reverse=True):
        n_steps = len(r.chain.steps) if r.chain is not None else 0
        rows.append(
            [
                r.rev,
                r.origin,
                r.author,
                str(r.created_at)[:19].replace("T", " "),
                "yes" if r.valid else "no",
                n_steps,
                r.run_id or "",
                r.note or "",
            ]
        )
    return rows


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
