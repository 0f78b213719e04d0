"""`sif stats`: what the store holds, by dataset, review status, validity and origin, and how long
and how wide (regions per step) the current chains are."""

from __future__ import annotations

from db.store import Store


def _counts(store: Store, sql: str) -> dict:
    return {("none" if k is None else k): n for k, n in store.conn.execute(sql)}


def store_stats(store: Store) -> dict:
    current = "SELECT revision_id FROM sample_index WHERE revision_id IS NOT NULL"
    return {
        "db": str(store.path),
        "data_root": str(store.data_root),
        "samples": store.count(),
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
        "chain_steps": _counts(
            store,
            "SELECT n_steps, COUNT(*) FROM sample_index WHERE n_steps IS NOT NULL GROUP BY n_steps ORDER BY n_steps",
        ),
        "regions_per_step": _counts(
            store,
            "SELECT json_array_length(step.value, '$.regions') AS k, COUNT(*)"
            f" FROM chain_revisions c, json_each(c.chain, '$.steps') step"
            f" WHERE c.id IN ({current}) GROUP BY k ORDER BY k",
        ),
        "runs": _counts(store, "SELECT kind, COUNT(*) FROM runs GROUP BY kind"),
    }
