"""`sif stats` and the workbench's Stats tab: what the store holds, by dataset, review status,
validity and origin, how the current chains score (final-step HIoU, depth check) and how long
and how wide (regions per step) they are. One implementation, all in SQL on the index."""

from __future__ import annotations

from db.schema import STATUSES
from db.store import Store

HIOU_BINS = 10  # final-step HIoU in bins of 0.1 (1.0 falls in the last)
DEPTH_CHECKS = ("consistent", "inconsistent", "no depth map")


def _counts(store: Store, sql: str) -> dict:
    return {("none" if k is None else k): n for k, n in store.conn.execute(sql)}


def hiou_bin_labels() -> list[str]:
    return [f"{k / HIOU_BINS:.1f}–{(k + 1) / HIOU_BINS:.1f}" for k in range(HIOU_BINS)]


def curation_stats(store: Store) -> dict:
    """Review progress and the current chains' scores: what a curator lead watches."""
    total, reviewed, with_chain, valid = store.conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(status != 'pending'), 0), COUNT(revision_id), COALESCE(SUM(valid = 1), 0)"
        " FROM sample_index"
    ).fetchone()
    status = _counts(store, "SELECT status, COUNT(*) FROM sample_index GROUP BY status")
    bins = _counts(
        store,
        f"SELECT MIN(CAST(final_hiou * {HIOU_BINS} AS INTEGER), {HIOU_BINS - 1}), COUNT(*) FROM sample_index"
        " WHERE final_hiou IS NOT NULL GROUP BY 1",
    )
    depth = _counts(
        store,
        "SELECT CASE depth_ok WHEN 1 THEN 'consistent' WHEN 0 THEN 'inconsistent' ELSE 'no depth map' END,"
        " COUNT(*) FROM sample_index WHERE revision_id IS NOT NULL GROUP BY 1",
    )
    return {
        "samples": total,
        "reviewed": reviewed,
        "with_chain": with_chain,
        "valid": valid,
        "by_status": {s: status.get(s, 0) for s in STATUSES},
        "final_hiou": {label: bins.get(k, 0) for k, label in enumerate(hiou_bin_labels())},
        "depth_check": {k: depth.get(k, 0) for k in DEPTH_CHECKS},
        "chain_steps": _counts(
            store,
            "SELECT n_steps, COUNT(*) FROM sample_index WHERE n_steps IS NOT NULL GROUP BY n_steps ORDER BY n_steps",
        ),
    }


def store_stats(store: Store) -> dict:
    current = "SELECT revision_id FROM sample_index WHERE revision_id IS NOT NULL"
    curation = curation_stats(store)
    return {
        "db": str(store.path),
        "data_root": str(store.data_root),
        "samples": curation["samples"],
        "missing_images": store.conn.execute("SELECT COUNT(*) FROM samples WHERE missing").fetchone()[0],
        "by_dataset": _counts(store, "SELECT dataset, COUNT(*) FROM sample_index GROUP BY dataset"),
        "by_status": _counts(store, "SELECT status, COUNT(*) FROM sample_index GROUP BY status"),
        "by_validity": _counts(
            store,
            "SELECT CASE valid WHEN 1 THEN 'valid' WHEN 0 THEN 'invalid' ELSE 'no chain' END,"
            " COUNT(*) FROM sample_index GROUP BY 1",
        ),
        "by_current_origin": _counts(store, "SELECT origin, COUNT(*) FROM sample_index GROUP BY origin"),
        "revisions_by_origin": _counts(store, "SELECT origin, COUNT(*) FROM chain_revisions GROUP BY origin"),
        "final_hiou": curation["final_hiou"],
        "depth_check": curation["depth_check"],
        "chain_steps": curation["chain_steps"],
        "regions_per_step": _counts(
            store,
            "SELECT json_array_length(step.value, '$.regions') AS k, COUNT(*)"
            f" FROM chain_revisions c, json_each(c.chain, '$.steps') step"
            f" WHERE c.id IN ({current}) GROUP BY k ORDER BY k",
        ),
        "runs": _counts(store, "SELECT kind, COUNT(*) FROM runs GROUP BY kind"),
    }
