"""Curating as a team, over the store: claims on open samples, batches of decisions that can be
undone, per-curator queues, blind second reviews and gold samples with agreement figures, the
model-disagreement priority, and accounts. `Store` exposes each as a method; these functions
take the store so that the SQL stays in one place.

Everything here is set-based SQL where it touches many samples: a batch decision of 50,000
samples is a handful of statements (see `bench/review.py`).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from db.errors import StoreError
from db.schema import DECISIONS_SQL

if TYPE_CHECKING:
    from db.store import Store

DECISIONS = ("accepted", "rejected", "needs_fix")
ROLES = ("curator", "admin")
GOLD_SHARE = 0.05  # gold samples mixed into each assignment, as a share of its size
TIMING_GAP_S = 600.0  # a longer gap between two decisions is a break, not time spent on a sample


def _iso(ts: float | None = None) -> str:
    """A time as the store writes it (`db.store.now`): ISO UTC with microseconds."""
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="microseconds")


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _decision(status: str, field_name: str = "status") -> str:
    if status not in DECISIONS:
        raise StoreError(f"{field_name}: {status!r} is not one of {', '.join(DECISIONS)}")
    return status


def _name(value: str, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"{field_name}: must not be empty")
    return value.strip()


ANY = "any"
VALIDITY = {"valid": True, "invalid": False}
DEPTH_CHECK = {"ok": True, "yes": True, "bad": False, "no": False}


@dataclass
class SampleFilter:
    """The filters a curator chooses (CLI options, workbench widgets) as words and numbers;
    `kwargs()` gives `Store.query`/`count`/`decide_many`/`assign` keywords ("any" and blanks do
    not filter). The store checks the values: a bad one raises a StoreError naming its filter."""

    dataset: str | None = None
    status: str | None = None
    validity: str | None = None  # valid | invalid
    origin: str | None = None
    run: str | None = None
    text: str | None = None
    hiou_min: float | str | None = None
    hiou_max: float | str | None = None
    depth: str | None = None  # ok | bad: the final chain's depth check
    split: str | None = None

    def kwargs(self) -> dict:
        def pick(value):
            value = value.strip() if isinstance(value, str) else value
            return None if value in (None, "", ANY) else value

        validity, depth = pick(self.validity), pick(self.depth)
        if validity is not None and validity not in VALIDITY:
            raise StoreError(f"validity: {validity!r} is not one of {', '.join(VALIDITY)}")
        if depth is not None and depth not in DEPTH_CHECK:
            raise StoreError(f"depth: {depth!r} is not one of ok, bad")
        chosen = dict(
            dataset=pick(self.dataset),
            status=pick(self.status),
            valid=None if validity is None else VALIDITY[validity],
            origin=pick(self.origin),
            run_id=pick(self.run),
            text=pick(self.text),
            hiou_min=pick(self.hiou_min),
            hiou_max=pick(self.hiou_max),
            depth_ok=None if depth is None else DEPTH_CHECK[depth],
            split=pick(self.split),
        )
        return {k: v for k, v in chosen.items() if v is not None}


# ------------------------------------------------------------ claims


def claim(store: Store, sample_id: int, curator: str, ttl_s: float = 300.0) -> str | None:
    """Claim (or renew) the sample for `curator` for `ttl_s` seconds. Returns the other curator
    holding a live claim on it (nothing changes then), else None. Expired claims are dropped."""
    curator = _name(curator, "curator")
    t = time.time()
    with store.transaction() as conn:
        conn.execute("DELETE FROM claims WHERE expires_at <= ? AND sample_id != ?", [t, sample_id])
        row = conn.execute("SELECT curator, expires_at FROM claims WHERE sample_id = ?", [sample_id]).fetchone()
        if row is not None and row[0] != curator and row[1] > t:
            return str(row[0])
        if row is None:
            store.get_sample(sample_id)
        conn.execute(
            "INSERT INTO claims (sample_id, curator, expires_at) VALUES (?, ?, ?) ON CONFLICT (sample_id)"
            " DO UPDATE SET curator = excluded.curator, expires_at = excluded.expires_at",
            [sample_id, curator, t + float(ttl_s)],
        )
    return None


def release_claim(store: Store, sample_id: int, curator: str) -> None:
    with store.transaction(savepoint=False) as conn:
        conn.execute("DELETE FROM claims WHERE sample_id = ? AND curator = ?", [sample_id, curator])


def claimed_by_others(store: Store, curator: str) -> set[int]:
    rows = store.conn.execute(
        "SELECT sample_id FROM claims WHERE expires_at > ? AND curator != ?", [time.time(), curator]
    )
    return {r[0] for r in rows}


def decided_since(store: Store, ts: float) -> set[int]:
    """Samples whose review changed (by anyone) after time `ts` (seconds since the epoch)."""
    rows = store.conn.execute("SELECT sample_id FROM reviews WHERE updated_at > ?", [_iso(ts)])
    return {r[0] for r in rows}


# ------------------------------------------------------------ batches


@dataclass
class Batch:
    id: int
    count: int


def decide_many(
    store: Store, status: str, reviewer: str, /, *, ids: list[int] | None = None, note: str = "", **filters
) -> Batch:
    """Decide every sample of `ids` (all must exist) or of the filters, as one batch: each review
    is pinned to the sample's current revision, and the previous review is kept with the batch
    for `undo_batch`. An empty selection is refused (nothing to decide)."""
    _decision(status)
    reviewer = _name(reviewer, "reviewer")
    if ids is not None:
        if filters:
            raise StoreError(f"ids: give sample ids or filters ({', '.join(sorted(filters))}), not both")
        ids = sorted(set(ids))
        if not ids:
            raise StoreError("ids: no sample ids given")
        filters = {"ids": ids}
    f = store._filters(**filters)
    where = store._where(f)
    with store.transaction() as conn:
        if ids is not None:
            found = {r[0] for r in conn.execute(f"SELECT i.sample_id FROM sample_index i{where}", f.params)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise StoreError(f"ids: no sample with id {', '.join(map(str, missing[:5]))}; nothing was decided")
        stamp = _iso()
        cur = conn.execute(
            "INSERT INTO review_batches (status, reviewer, note, filters, count, created_at) VALUES (?, ?, ?, ?, 0, ?)",
            [status, reviewer, note or "", json.dumps(filters, default=str), stamp],
        )
        batch_id = int(cur.lastrowid or 0)
        conn.execute(
            "INSERT INTO review_batch_items (batch_id, sample_id, prev_status, prev_reviewer, prev_note,"
            " prev_updated_at, prev_rev, version)"
            " SELECT ?, i.sample_id, r.status, r.reviewer, r.note, r.updated_at, r.rev, COALESCE(r.version, 0) + 1"
            f" FROM sample_index i LEFT JOIN reviews r ON r.sample_id = i.sample_id{where}",
            [batch_id, *f.params],
        )
        count = conn.execute("SELECT COUNT(*) FROM review_batch_items WHERE batch_id = ?", [batch_id]).fetchone()[0]
        if count == 0:
            raise StoreError("the filters match no sample; nothing was decided")
        conn.execute(
            "INSERT INTO reviews (sample_id, status, reviewer, note, updated_at, version, rev)"
            " SELECT b.sample_id, ?, ?, ?, ?, b.version, COALESCE(i.rev, 0)"
            " FROM review_batch_items b JOIN sample_index i ON i.sample_id = b.sample_id WHERE b.batch_id = ?"
            " ON CONFLICT (sample_id) DO UPDATE SET status = excluded.status, reviewer = excluded.reviewer,"
            " note = excluded.note, updated_at = excluded.updated_at, version = excluded.version, rev = excluded.rev",
            [status, reviewer, note or "", stamp, batch_id],
        )
        conn.execute("UPDATE review_batches SET count = ? WHERE id = ?", [count, batch_id])
    return Batch(batch_id, count)


def undo_batch(store: Store, batch_id: int, reviewer: str = "undo") -> int:
    """Give every sample of the batch its review from before the batch again (status, reviewer,
    note, revision; a new version, so open editors see the change). Refused, with nothing
    changed, when the batch was undone already or one of its samples was decided (or reopened by
    a new revision) after it. Returns how many samples were restored."""
    with store.transaction() as conn:
        batch = conn.execute("SELECT * FROM review_batches WHERE id = ?", [batch_id]).fetchone()
        if batch is None:
            raise StoreError(f"batch: no batch {batch_id}")
        if batch["undone_at"] is not None:
            raise StoreError(f"batch {batch_id} was undone already (at {batch['undone_at']} by {batch['undone_by']})")
        changed = conn.execute(
            "SELECT b.sample_id, r.status, r.reviewer FROM review_batch_items b JOIN reviews r"
            " ON r.sample_id = b.sample_id WHERE b.batch_id = ? AND r.version != b.version ORDER BY b.sample_id",
            [batch_id],
        ).fetchall()
        if changed:
            first = changed[0]
            raise StoreError(
                f"batch {batch_id}: {len(changed)} of its samples changed after it (sample {first[0]} is now "
                f"{first[1]} by {first[2]}); nothing was undone"
            )
        stamp = _iso()
        conn.execute(
            "UPDATE reviews SET status = COALESCE(b.prev_status, 'pending'), reviewer = COALESCE(b.prev_reviewer, ?),"
            " note = COALESCE(b.prev_note, ?), rev = b.prev_rev, version = reviews.version + 1, updated_at = ?"
            " FROM review_batch_items b WHERE b.batch_id = ? AND b.sample_id = reviews.sample_id",
            [reviewer, f"undo of batch {batch_id}", stamp, batch_id],
        )
        conn.execute("UPDATE review_batches SET undone_at = ?, undone_by = ? WHERE id = ?", [stamp, reviewer, batch_id])
        return int(batch["count"])


def batches(store: Store) -> list[dict]:
    """Every batch, newest first."""
    return [dict(r) for r in store.conn.execute("SELECT * FROM review_batches ORDER BY id DESC")]


# ------------------------------------------------------------ queues


def assign(store: Store, curator: str, n: int, *, by: str = "", gold_share: float = GOLD_SHARE, **filters) -> int:
    """Put `n` pending samples of the filters that are in nobody's queue (and not gold) into `curator`'s queue
    (in the filters' id order), with gold samples the curator has not had mixed in at random
    places (`gold_share` of `n`, rounded up). Returns how many samples were assigned (gold not
    counted)."""
    curator = _name(curator, "curator")
    if not isinstance(n, int) or n < 1:
        raise StoreError(f"n: must be a positive number of samples, got {n!r}")
    status = filters.pop("status", None) or "pending"
    if status != "pending":
        raise StoreError(f"status: only pending samples are assigned, not {status!r}")
    f = store._filters(status="pending", **filters)
    f.where.append(
        "i.sample_id NOT IN (SELECT sample_id FROM assignments WHERE kind = 'queue')"
        " AND i.sample_id NOT IN (SELECT sample_id FROM gold)"
    )
    stamp = _iso()
    with store.transaction() as conn:
        start = _last_position(conn, curator)
        conn.execute(
            "INSERT INTO assignments (curator, sample_id, kind, position, assigned_at, assigned_by)"
            f" SELECT ?, sample_id, 'queue', ? + ROW_NUMBER() OVER (ORDER BY sample_id), ?, ? FROM ("
            f"SELECT i.sample_id FROM sample_index i{store._where(f)} ORDER BY i.sample_id LIMIT ?)",
            [curator, start, stamp, by, *f.params, n],
        )
        added = conn.execute("SELECT changes()").fetchone()[0]
        golds = [
            r[0]
            for r in conn.execute(
                "SELECT sample_id FROM gold WHERE sample_id NOT IN"
                " (SELECT sample_id FROM assignments WHERE curator = ?) ORDER BY sample_id",
                [curator],
            )
        ]
        rng = random.Random(f"{curator}:{start}")
        for sample_id in rng.sample(golds, min(len(golds), math.ceil(added * gold_share))) if added else []:
            _blind_item(conn, sample_id, curator, "gold", start + rng.uniform(0, added), stamp, by)
    return int(added)


def _last_position(conn, curator: str) -> float:
    return float(
        conn.execute("SELECT COALESCE(MAX(position), 0) FROM assignments WHERE curator = ?", [curator]).fetchone()[0]
    )


def _blind_item(conn, sample_id: int, curator: str, kind: str, position: float, stamp: str, by: str) -> None:
    """A blind second review of the sample for `curator` (QA of the first decision, or a gold
    check), in their queue at `position`."""
    first = conn.execute(
        "SELECT r.status, r.reviewer, r.rev, g.status AS gold FROM samples s"
        " LEFT JOIN reviews r ON r.sample_id = s.id LEFT JOIN gold g ON g.sample_id = s.id WHERE s.id = ?",
        [sample_id],
    ).fetchone()
    reference = first["gold"] if kind == "gold" else first["status"]
    conn.execute(
        "INSERT INTO second_reviews (sample_id, curator, kind, first_status, first_reviewer, first_rev, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [sample_id, curator, kind, reference, "gold" if kind == "gold" else first["reviewer"], first["rev"], stamp],
    )
    conn.execute(
        "INSERT INTO assignments (curator, sample_id, kind, position, assigned_at, assigned_by)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (curator, sample_id) DO UPDATE SET kind = excluded.kind,"
        " position = excluded.position, assigned_at = excluded.assigned_at",
        [curator, sample_id, kind, position, stamp, by],
    )


def queue(store: Store, curator: str, limit: int | None = None) -> list[int]:
    """`curator`'s queue in order: assigned samples they have not decided since, and their open
    second reviews (QA and gold), which look like any other item. With `limit`, its first items
    only (a page: the scan stops there)."""
    rows = store.conn.execute(
        "SELECT a.sample_id FROM assignments a WHERE a.curator = ? AND CASE a.kind"
        " WHEN 'queue' THEN NOT EXISTS (SELECT 1 FROM review_log l WHERE l.sample_id = a.sample_id"
        f"  AND l.reviewer = a.curator AND l.status IN {DECISIONS_SQL} AND l.updated_at >= a.assigned_at)"
        " ELSE EXISTS (SELECT 1 FROM second_reviews q WHERE q.sample_id = a.sample_id AND q.curator = a.curator"
        "  AND q.status IS NULL) END ORDER BY a.position LIMIT ?",
        [curator, -1 if limit is None else int(limit)],
    )
    return [r[0] for r in rows]


# ------------------------------------------------------------ second reviews, gold, agreement


def qa_sample(
    store: Store,
    fraction: float,
    seed: int,
    reviewers: list[str] | None = None,
    *,
    statuses: tuple[str, ...] = ("accepted",),
    by: str = "",
) -> list[tuple[int, str]]:
    """Pick `fraction` of the samples decided `statuses` (accepted, by default) not sampled
    before (seeded) for a blind second review, each by a curator other than its first reviewer
    (from `reviewers`; default: the store's curator accounts, else everyone who has a queue or
    made a decision), put into that curator's queue. Samples with no other curator available
    are left out. (κ needs both decisions to vary: with accepted samples only, the first
    rater's labels are constant and κ is 0 or undefined, so sample rejected ones too.)"""
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        raise StoreError(f"fraction: {fraction!r} is not a number") from None
    if not 0.0 < fraction <= 1.0:
        raise StoreError(f"fraction: {fraction} is not in (0, 1]")
    for status in statuses:
        _decision(status, "statuses")
    conn = store.conn
    pool = sorted(set(reviewers)) if reviewers else _curators(store)
    if not pool:
        raise StoreError("reviewers: no curator to give second reviews to (add users or assign queues first)")
    candidates = [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT sample_id, reviewer FROM reviews WHERE status IN (SELECT value FROM json_each(?)) AND sample_id"
            " NOT IN (SELECT sample_id FROM second_reviews WHERE kind = 'qa') ORDER BY sample_id",
            [json.dumps(list(statuses))],
        )
    ]
    had = {(r[0], r[1]) for r in conn.execute("SELECT sample_id, curator FROM second_reviews")}  # gold checks
    rng = random.Random(seed)
    k = min(len(candidates), math.ceil(fraction * len(candidates)))
    picked = sorted(rng.sample(candidates, k))
    out: list[tuple[int, str]] = []
    stamp = _iso()
    with store.transaction():
        for sample_id, first in picked:
            others = [c for c in pool if c != first and (sample_id, c) not in had]
            if not others:
                continue
            second = rng.choice(others)
            top = _last_position(conn, second)
            _blind_item(conn, sample_id, second, "qa", rng.uniform(0, top + 1), stamp, by)
            out.append((sample_id, second))
    return out


def _curators(store: Store) -> list[str]:
    users = [r[0] for r in store.conn.execute("SELECT name FROM users WHERE role = 'curator' ORDER BY name")]
    if users:
        return users
    rows = store.conn.execute(
        f"SELECT curator FROM assignments UNION SELECT reviewer FROM reviews WHERE status IN {DECISIONS_SQL}"
    )
    return sorted({r[0] for r in rows if r[0]})


def blind_review(store: Store, sample_id: int, curator: str) -> bool:
    """True when `curator` has an open blind second review of the sample: the UI hides the first
    decision and records theirs with `second_review` (it leaves the sample's status alone)."""
    row = store.conn.execute(
        "SELECT 1 FROM second_reviews WHERE sample_id = ? AND curator = ? AND status IS NULL", [sample_id, curator]
    ).fetchone()
    return row is not None


def second_review(store: Store, sample_id: int, curator: str, status: str, *, note: str = "", chain=None) -> None:
    """Record `curator`'s blind decision on the sample (and, when they edited it, their chain:
    a Chain or chain text), apart from the sample's own review."""
    from db.store import analyse_or_keep

    _decision(status)
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT first_rev FROM second_reviews WHERE sample_id = ? AND curator = ? AND status IS NULL",
            [sample_id, curator],
        ).fetchone()
        if row is None:
            raise StoreError(f"sample {sample_id}: {curator} has no open second review of it")
        edited, text_changed = None, 0
        if chain is not None:
            sample = store.get_sample(sample_id)
            analysis = analyse_or_keep(chain, sample.gt_boxes, None)
            edited = analysis.chain_json
            base = store.get_revision(sample_id, row[0]) if row[0] else None
            text_changed = int(base is None or _texts(base.chain.to_json()) != _texts(json.loads(edited)))
        conn.execute(
            "UPDATE second_reviews SET status = ?, note = ?, chain = ?, text_changed = ?, decided_at = ?"
            " WHERE sample_id = ? AND curator = ?",
            [status, note or "", edited, text_changed, _iso(), sample_id, curator],
        )


def _texts(chain_json: dict) -> list[str]:
    return [s["text"] for s in chain_json["steps"]] + [chain_json.get("answer") or ""]


def _final_boxes(chain_json: dict) -> list[list[float]]:
    steps = chain_json["steps"]
    return [r["bbox_2d"] for r in steps[-1]["regions"]] if steps else []


def mark_gold(store: Store, ids: list[int], status: str, chain=None, *, by: str = "") -> int:
    """Mark samples as gold with the right decision (and, optionally, the right chain)."""
    _decision(status)
    ids = sorted(set(ids))
    if not ids:
        raise StoreError("ids: no sample ids given")
    chain_json = None
    with store.transaction() as conn:
        for sample_id in ids:
            sample = store.get_sample(sample_id)
            if chain is not None:
                from db.store import analyse_or_keep

                chain_json = analyse_or_keep(chain, sample.gt_boxes, None).chain_json
            conn.execute(
                "INSERT INTO gold (sample_id, status, chain, marked_by, marked_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (sample_id) DO UPDATE SET status = excluded.status, chain = excluded.chain,"
                " marked_by = excluded.marked_by, marked_at = excluded.marked_at",
                [sample_id, status, chain_json, by, _iso()],
            )
    return len(ids)


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's κ of two raters' labels: κ = (p_o − p_e) / (1 − p_e), with p_o the share of pairs
    that agree and p_e = Σ_k p₁(k)·p₂(k) the agreement expected from each rater's own label
    frequencies. None without pairs, or when p_e = 1 (both always gave the same one label)."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first: dict[str, int] = defaultdict(int)
    second: dict[str, int] = defaultdict(int)
    for a, b in pairs:
        first[a] += 1
        second[b] += 1
    expected = sum(first[k] * second[k] for k in first) / (n * n)
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def matched_iou(a: list[list[float]], b: list[list[float]]) -> float:
    """Mean IoU of two box sets under the one-to-one matching that maximises it (Hungarian);
    a box left unmatched counts 0, so the mean is over the larger set."""
    from scipy.optimize import linear_sum_assignment

    from sif.geometry import iou_matrix

    if not a or not b:
        return float(not a and not b)
    ious = iou_matrix(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    rows, cols = linear_sum_assignment(ious, maximize=True)
    return float(ious[rows, cols].sum() / max(len(a), len(b)))


def qa_report(store: Store) -> dict[str, dict]:
    """Per curator: progress (`done` decisions that stand, `accepted`, `rejected`, `needs_fix`,
    `median_s` between consecutive single decisions, breaks over 10 minutes left out), and
    agreement from second reviews: `kappa` (Cohen's κ on status over the QA pairs they were
    part of, `pairs`), `box_iou` (mean matched IoU of the final-step boxes when both curators
    edited them, over `box_pairs`), `text_change_rate` (share of their decisions on a chain
    whose step texts or answer they changed), `gold_accuracy` over `gold_n` gold checks."""
    conn = store.conn
    report: dict[str, dict] = defaultdict(
        lambda: {
            "done": 0,
            "accepted": 0,
            "rejected": 0,
            "needs_fix": 0,
            "median_s": None,
            "pairs": 0,
            "kappa": None,
            "box_pairs": 0,
            "box_iou": None,
            "decisions": 0,
            "text_changes": 0,
            "text_change_rate": None,
            "gold_n": 0,
            "gold_accuracy": None,
        }
    )
    for reviewer, status, n in conn.execute(
        f"SELECT reviewer, status, COUNT(*) FROM reviews WHERE status IN {DECISIONS_SQL} GROUP BY reviewer, status"
    ):
        report[reviewer][status] += n
        report[reviewer]["done"] += n
        report[reviewer]["decisions"] += n
    for reviewer, n in conn.execute(
        "SELECT r.reviewer, COUNT(*) FROM reviews r JOIN chain_revisions c ON c.sample_id = r.sample_id"
        " AND c.rev = r.rev JOIN chain_revisions p ON p.sample_id = c.sample_id AND p.rev = c.parent"
        f" WHERE r.status IN {DECISIONS_SQL} AND c.origin = 'edited' AND c.author = r.reviewer"
        " AND c.search_text IS NOT p.search_text GROUP BY r.reviewer"
    ):
        report[reviewer]["text_changes"] += n
    moments: dict[str, list[float]] = defaultdict(list)
    for reviewer, at in conn.execute(
        f"SELECT l.reviewer, l.updated_at FROM review_log l WHERE l.status IN {DECISIONS_SQL} AND NOT EXISTS"
        " (SELECT 1 FROM review_batch_items b WHERE b.sample_id = l.sample_id AND b.version = l.version)"
    ):
        moments[reviewer].append(_seconds(at))
    pairs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    boxes: dict[str, list[float]] = defaultdict(list)
    gold_hits: dict[str, list[bool]] = defaultdict(list)
    rows = conn.execute(
        "SELECT q.*, c.chain AS first_chain, c.origin AS first_origin, c.author AS first_author"
        " FROM second_reviews q LEFT JOIN chain_revisions c ON c.sample_id = q.sample_id AND c.rev = q.first_rev"
        " WHERE q.status IS NOT NULL"
    ).fetchall()
    for q in rows:
        curator = q["curator"]
        moments[curator].append(_seconds(q["decided_at"]))
        report[curator]["done"] += 1
        report[curator]["decisions"] += 1
        report[curator]["text_changes"] += q["text_changed"] or 0
        if q["kind"] == "gold":
            gold_hits[curator].append(q["status"] == q["first_status"])
            continue
        pair = (q["first_status"], q["status"])
        for who in {curator, q["first_reviewer"]}:
            pairs[who].append(pair)
        first_edited = q["first_origin"] == "edited" and q["first_author"] == q["first_reviewer"]
        if first_edited and q["chain"] is not None:
            iou = matched_iou(_final_boxes(json.loads(q["first_chain"])), _final_boxes(json.loads(q["chain"])))
            for who in {curator, q["first_reviewer"]}:
                boxes[who].append(iou)
    for reviewer, hit in conn.execute(
        f"SELECT r.reviewer, r.status = g.status FROM reviews r JOIN gold g ON g.sample_id = r.sample_id"
        f" WHERE r.status IN {DECISIONS_SQL}"
    ):
        gold_hits[reviewer].append(bool(hit))
    for who, labels in pairs.items():
        report[who]["pairs"] = len(labels)
        report[who]["kappa"] = cohen_kappa(labels)
    for who, ious in boxes.items():
        report[who]["box_pairs"] = len(ious)
        report[who]["box_iou"] = sum(ious) / len(ious)
    for who, hits in gold_hits.items():
        report[who]["gold_n"] = len(hits)
        report[who]["gold_accuracy"] = sum(hits) / len(hits)
    for who, times in moments.items():
        times.sort()
        gaps = [b - a for a, b in zip(times, times[1:]) if 0 < b - a <= TIMING_GAP_S]
        report[who]["median_s"] = statistics.median(gaps) if gaps else None
    for figures in report.values():
        if figures["decisions"]:
            figures["text_change_rate"] = figures["text_changes"] / figures["decisions"]
    return dict(sorted(report.items()))


# ------------------------------------------------------------ priority from the model

_REWARD_TOTAL = re.compile(r"total=(-?\d+(?:\.\d+)?)")


def refresh_priority(store: Store, *, everything: bool = False) -> int:
    """Recompute the priority of the samples whose model outputs (or curated chain) changed
    since the last refresh (`everything`: of every sample with outputs). For a sample's run
    outputs (rollouts, predictions) with HIoU a_k of each output's final boxes against the
    curated chain's final boxes (the ground truth when it has no chain):
        priority = (1 − mean a) + (max a − min a) + share of invalid outputs
                   + share judged wrong in eval runs + std of the GRPO rewards of its rollouts.
    Samples without outputs have none (they sort last). Returns how many were recomputed."""
    from sif.geometry import hiou

    conn = store.conn
    if everything:
        targets = [
            r[0] for r in conn.execute("SELECT DISTINCT sample_id FROM chain_revisions WHERE run_id IS NOT NULL")
        ]
        targets += [r[0] for r in conn.execute("SELECT sample_id FROM eval_records")]
    else:
        targets = [r[0] for r in conn.execute("SELECT sample_id FROM priority_stale")]
    targets = sorted(set(targets))
    if not targets:
        return 0  # nothing changed: no write (the priority sort asks on every page)
    values: list[tuple[float | None, int]] = []
    for start in range(0, len(targets), 500):
        part = targets[start : start + 500]
        marks = ",".join("?" * len(part))
        reference = {
            sid: _final_boxes(json.loads(chain)) if chain else json.loads(gt)
            for sid, chain, gt in conn.execute(
                "SELECT s.id, c.chain, s.gt_boxes FROM samples s JOIN sample_index i ON i.sample_id = s.id"
                f" LEFT JOIN chain_revisions c ON c.id = i.revision_id WHERE s.id IN ({marks})",
                part,
            )
        }
        outputs: dict[int, list] = defaultdict(list)
        for sid, chain, valid, note in conn.execute(
            "SELECT sample_id, chain, valid, note FROM chain_revisions WHERE origin IN ('rollout', 'prediction')"
            f" AND sample_id IN ({marks})",
            part,
        ):
            outputs[sid].append((_final_boxes(json.loads(chain)), valid, note))
        wrong = dict(
            conn.execute(
                "SELECT sample_id, AVG(1 - correct) FROM eval_records WHERE correct IS NOT NULL"
                f" AND sample_id IN ({marks}) GROUP BY sample_id",
                part,
            ).fetchall()
        )
        for sid in part:
            values.append((_priority(outputs.get(sid, []), reference.get(sid) or [], wrong.get(sid), hiou), sid))
    with store.transaction() as tx:
        tx.executemany("UPDATE sample_index SET priority = ? WHERE sample_id = ?", values)
        tx.execute("DELETE FROM priority_stale")
    return len(values)


def _priority(outputs: list, reference: list, wrong: float | None, hiou) -> float | None:
    if not outputs and wrong is None:
        return None
    score = 0.0 if wrong is None else float(wrong)
    if outputs:
        agreement = [hiou(boxes, reference) if boxes and reference else 0.0 for boxes, _, _ in outputs]
        score += (1.0 - sum(agreement) / len(agreement)) + (max(agreement) - min(agreement))
        score += sum(1 for _, valid, _ in outputs if not valid) / len(outputs)
        rewards = [float(m.group(1)) for _, _, note in outputs if note and (m := _REWARD_TOTAL.search(note))]
        if len(rewards) > 1:
            score += statistics.pstdev(rewards)
    return round(score, 6)


# ------------------------------------------------------------ accounts


class Accounts:
    """Curator and admin accounts with argon2 password hashes (salted, by argon2-cffi); where
    they are kept is the subclass's business (the store's `users` table, or an auth file)."""

    def add_user(self, name: str, role: str, password: str) -> None:
        from argon2 import PasswordHasher

        name = _name(name, "name")
        if role not in ROLES:
            raise StoreError(f"role: {role!r} is not one of {', '.join(ROLES)}")
        if not password:
            raise StoreError("password: must not be empty")
        self._put(name, role, PasswordHasher().hash(password))

    def verify_user(self, name: str, password: str) -> str | None:
        """The user's role when `password` is theirs, else None."""
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        found = self._get(name)
        if found is None or not password:
            return None
        role, digest = found
        try:
            PasswordHasher().verify(digest, password)
        except (VerificationError, InvalidHashError):
            return None
        return role

    def users(self) -> list[tuple[str, str]]:
        """(name, role) of every account, by name."""
        raise NotImplementedError

    def _get(self, name: str) -> tuple[str, str] | None:
        raise NotImplementedError

    def _put(self, name: str, role: str, digest: str) -> None:
        raise NotImplementedError


class StoreAccounts(Accounts):
    def __init__(self, store: Store):
        self.store = store

    def users(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.store.conn.execute("SELECT name, role FROM users ORDER BY name")]

    def _get(self, name: str) -> tuple[str, str] | None:
        row = self.store.conn.execute("SELECT role, password_hash FROM users WHERE name = ?", [name]).fetchone()
        return None if row is None else (row[0], row[1])

    def _put(self, name: str, role: str, digest: str) -> None:
        with self.store.transaction(savepoint=False) as conn:
            conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name)"
                " DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash",
                [name, role, digest, _iso()],
            )


class AuthFile(Accounts):
    """Accounts in a file, `{"users": {name: {"role": …, "hash": …}}}`: YAML when it is named
    `.yaml`/`.yml`, else JSON; written atomically, readable by its owner only."""

    def __init__(self, path):
        self.path = Path(path)
        self.yaml = self.path.suffix.lower() in (".yaml", ".yml")

    def _load(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            text = self.path.read_text(encoding="utf-8")
            data = yaml.safe_load(text) if self.yaml else json.loads(text)
            users = data["users"]
            if not isinstance(users, dict):
                raise TypeError("users is not a mapping")
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise StoreError(f"{self.path}: not an auth file ({exc})") from None
        return users

    def users(self) -> list[tuple[str, str]]:
        return sorted((name, str(entry.get("role"))) for name, entry in self._load().items())

    def _get(self, name: str) -> tuple[str, str] | None:
        entry = self._load().get(name)
        return None if not isinstance(entry, dict) else (str(entry.get("role")), str(entry.get("hash")))

    def _put(self, name: str, role: str, digest: str) -> None:
        users = self._load()
        users[name] = {"role": role, "hash": digest}
        data = {"users": users}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(data) if self.yaml else json.dumps(data, indent=2), encoding="utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
