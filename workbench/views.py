"""The workbench's text panels as HTML built here, where every string that comes from data, a
model or a curator (questions, answers, step texts, notes, names, ids) is escaped: it is shown
as text and never becomes markup. Pure functions, tested without a browser."""

from __future__ import annotations

import html
from collections.abc import Sequence, Set

from db.store import ChainRevision, Review, Sample, SampleRow
from sif.draw import step_colour
from workbench.draft import Draft
from workbench.preview import RewardPreview

STATUS_LABELS = {"pending": "pending", "accepted": "accepted", "rejected": "rejected", "needs_fix": "needs fix"}


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _box(bbox: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in bbox) + "]"


def _when(stamp: str | None) -> str:
    return (stamp or "")[:19].replace("T", " ")


def message(text: str, kind: str = "info") -> str:
    """A line the curator must see: what happened, or why nothing did (kind: ok, info, warn, error)."""
    return f'<div class="wb-msg wb-msg-{esc(kind)}" role="status">{esc(text)}</div>' if text else ""


def empty_info(text: str) -> str:
    return f'<div class="wb-info wb-empty">{esc(text)}</div>'


def info(
    sample: Sample,
    revision: ChainRevision | None,
    review: Review,
    draft: Draft,
    *,
    earlier: Review | None = None,
    blind: bool = False,
) -> str:
    """The sample's header: question, ground truth, the chain's answer, the revision on screen and its
    review (`blind`: a second review, where the first decision is not shown)."""
    gt = ", ".join(_box(b) for b in sample.gt_boxes) or "none"
    if revision is None:
        rev = "none yet"
    else:
        validity = "valid" if revision.valid else f"invalid ({len(revision.problems)} problem(s))"
        rev = f"{revision.rev} · origin {revision.origin} · by {revision.author} · {_when(revision.created_at)} · {validity}"
    if blind:
        rv = "yours to decide"
    elif review.status == "pending":
        rv = (
            "pending (never reviewed)"
            if not review.version
            else "pending" + (f" — {review.note}" if review.note else "")
        )
    else:
        on = "" if review.rev is None else f" on revision {review.rev}"
        rv = f"{STATUS_LABELS.get(review.status, review.status)} by {review.reviewer}{on} · {_when(review.updated_at)}"
        if review.note:
            rv += f" — {review.note}"
    lines = [
        f'<div class="wb-head">Sample {sample.id} · {esc(sample.dataset)} · {esc(sample.source_id)} · {esc(sample.split)}'
        + (' · <span class="wb-bad">files missing at import</span>' if sample.missing else "")
        + "</div>",
        f'<div class="wb-q"><b>Question:</b> {esc(sample.question)}</div>',
        f"<div><b>Ground truth:</b> {esc(sample.answer)} · boxes {esc(gt)}</div>",
        f"<div><b>Chain answer:</b> {esc(draft.answer or '—')}</div>",
        f"<div><b>Revision:</b> {esc(rev)}</div>",
        f'<div class="wb-review wb-status-{esc("pending" if blind else review.status)}"><b>Review:</b> {esc(rv)}</div>',
    ]
    if earlier is not None:
        on = "" if earlier.rev is None else f" on revision {earlier.rev}"
        note = f" — {earlier.note}" if earlier.note else ""
        lines.append(
            f'<div class="wb-earlier">Earlier: {esc(STATUS_LABELS.get(earlier.status, earlier.status))} by '
            f"{esc(earlier.reviewer)}{esc(on)} · {esc(_when(earlier.updated_at))}{esc(note)}</div>"
        )
    return (
        f'<div class="wb-info" data-sample="{sample.id}" data-rev="{revision.rev if revision else 0}">'
        + "".join(lines)
        + "</div>"
    )


def chain(draft: Draft, selected: int, shown: range, preview: RewardPreview, *, dirty: bool) -> str:
    """The chain as a list a curator reads top to bottom: per step its colour, number, boxes with
    depth, text and problems, the selected step highlighted; `shown` is the window of steps
    listed (a long chain is read a window at a time)."""
    problems = preview.problems_by_step()
    n = len(draft.steps)
    parts = [f'<div class="wb-chain" data-sample="{draft.sample_id}" data-steps="{n}">']
    if dirty:
        parts.append('<div class="wb-unsaved">Edited, not saved: save it (Ctrl+S) or discard it.</div>')
    if not n:
        parts.append('<div class="wb-empty">No steps yet. Add one with “+ step”.</div>')
    if shown.start > 0:
        parts.append(f'<div class="wb-more">{shown.start} earlier step(s) — [ or the strip shows them</div>')
    for i in shown:
        s = draft.steps[i]
        r, g, b = step_colour(i)
        regions = (
            "".join(
                f'<span class="wb-region">{_box(reg.bbox)} depth {esc("—" if reg.depth is None else f"{reg.depth:.3f}")}'
                + (" (typed)" if reg.manual else "")
                + "</span>"
                for reg in s.regions
            )
            or '<span class="wb-bad">no boxes</span>'
        )
        found = "".join(f'<div class="wb-problem">{esc(f"rule {p.rule}: {p}")}</div>' for p in problems.get(i, []))
        parts.append(
            f'<div class="wb-step{" wb-selected" if i == selected else ""}" data-step="{i}" '
            f'style="--step-colour: rgb({r}, {g}, {b})">'
            f'<div class="wb-step-head"><span class="wb-swatch"></span><b>{i + 1}</b> {regions}</div>'
            f'<div class="wb-text">{esc(s.text) or "<i>(no text)</i>"}</div>{found}</div>'
        )
    if shown.stop < n:
        parts.append(f'<div class="wb-more">{n - shown.stop} later step(s) — ] or the strip shows them</div>')
    chain_level = "".join(f'<div class="wb-problem">{esc(f"rule {p.rule}: {p}")}</div>' for p in problems.get(None, []))
    parts.append(f'<div class="wb-final"><b>Answer:</b> {esc(draft.answer or "—")}{chain_level}</div></div>')
    return "".join(parts)


def checks_line(preview: RewardPreview) -> str:
    """One line under the chain: validity and the rewards, each with its help on hover."""
    state = (
        '<span class="wb-good">format OK</span>'
        if not preview.problems
        else f'<span class="wb-bad">{len(preview.problems)} format problem(s)</span>'
    )
    items = [state] + [
        f'<span title="{esc(help_)}">{esc(label)} <b>{esc(value)}</b></span>'
        for label, value, help_ in preview.rows()[1:5]
    ]
    return '<div class="wb-checks">' + " · ".join(items) + "</div>"


def feedback(preview: RewardPreview, stored_problems: Sequence[str] = (), *, dirty: bool = False) -> str:
    """The rewards with a one-line help each, then every format problem of the chain on screen."""
    rows = "".join(
        f'<tr><td>{esc(label)}</td><td class="wb-num">{esc(value)}</td><td class="wb-help">{esc(help_)}</td></tr>'
        for label, value, help_ in preview.rows()
    )
    parts = [f'<table class="wb-feedback"><tr><th>reward</th><th>value</th><th>what it means</th></tr>{rows}</table>']
    if preview.problems:
        parts.append(
            f"<div class='wb-bad'><b>{len(preview.problems)} format problem(s) in the chain on screen:</b></div>"
        )
        parts += [f'<div class="wb-problem">{esc(f"rule {p.rule}: {p}")}</div>' for p in preview.problems]
    else:
        parts.append('<div class="wb-good">The chain on screen follows the strict format.</div>')
    if stored_problems and not dirty:
        parts.append(
            "<div class='wb-bad'><b>The stored revision itself is invalid</b>: the editor shows what could be "
            "recovered from its text; saving stores that recovered chain.</div>"
        )
        parts += [f'<div class="wb-problem">{esc(p)}</div>' for p in stored_problems]
    return '<div class="wb-feedback-panel">' + "".join(parts) + "</div>"


def sample_list(
    rows: Sequence[SampleRow], current: int | None, drafted: set[int], blind: Set[int] = frozenset()
) -> str:
    """A page of the filtered list: each sample's id, status, checks and its question, readable;
    the samples in `blind` (the curator's second reviews) show no status."""
    if not rows:
        return '<div class="wb-list wb-empty">No sample matches these filters.</div>'
    items = []
    for r in rows:
        status = "pending" if r.id in blind else r.status
        valid = {True: "valid", False: "invalid", None: "no chain"}[r.valid]
        facts = [f"{r.n_steps} steps" if r.n_steps is not None else ""]
        if r.final_hiou is not None:
            facts.append(f"HIoU {r.final_hiou:.2f}")
        if r.depth_ok is not None:
            facts.append("depth ok" if r.depth_ok else "depth off")
        items.append(
            f'<div class="wb-row{" wb-current" if r.id == current else ""}" data-sample="{r.id}">'
            f'<div class="wb-row-head"><b>{r.id}</b> <span class="wb-pill wb-status-{esc(status)}">'
            f"{esc(STATUS_LABELS.get(status, status))}</span> "
            f'<span class="wb-{"good" if r.valid else "bad"}">{valid}</span> {esc(" · ".join(f for f in facts if f))}'
            + (' <span class="wb-draft" title="your unsaved edit">✎ draft</span>' if r.id in drafted else "")
            + f'</div><div class="wb-row-q" title="{esc(r.question)}">{esc(r.question)}</div></div>'
        )
    return '<div class="wb-list">' + "".join(items) + "</div>"
