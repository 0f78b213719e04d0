"""Persistent state of the progressive answer reward (FORMATS §5.2).

Every process appends, per (sample, training step, process), the sum and count of the judge
scores of its share of the sample's group. The previous group mean of a sample is read over all
processes at the latest earlier step, so every process sees the same baseline however the
group's completions were spread, and the SQLite file in the run's output folder survives a
restart. On resume, rows from steps at or after the checkpoint are dropped (they belong to the
work being redone).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

PROGRESS_FILE = "answer_progress.sqlite"


class SqliteProgressStore:
    """`sif.rewards.ProgressStore` backed by SQLite; set `.step` to the current training step."""

    def __init__(self, path: str | Path, process_index: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.process_index = process_index
        self.step = 0
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=60, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS answer_progress (sample_id TEXT NOT NULL, step INTEGER NOT NULL,"
            " process INTEGER NOT NULL, total REAL NOT NULL, n INTEGER NOT NULL,"
            " PRIMARY KEY (sample_id, step, process))"
        )

    def previous_mean(self, sample_id: str) -> float | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT SUM(total), SUM(n) FROM answer_progress WHERE sample_id = ? AND step = ("
                " SELECT MAX(step) FROM answer_progress WHERE sample_id = ? AND step < ?)",
                [str(sample_id), str(sample_id), self.step],
            ).fetchone()
        return None if row is None or not row[1] else row[0] / row[1]

    def record(self, sample_id: str, scores: Sequence[float]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO answer_progress (sample_id, step, process, total, n) VALUES (?, ?, ?, ?, ?)",
                [str(sample_id), self.step, self.process_index, float(sum(scores)), len(scores)],
            )

    def drop_from(self, step: int) -> int:
        """Forget rows of `step` and later (work redone after resuming from that step)."""
        with self._lock:
            return self._conn.execute("DELETE FROM answer_progress WHERE step >= ?", [step]).rowcount

    def snapshot(self) -> dict[str, dict]:
        """Each sample's latest group mean and step (for the run record in the store)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT sample_id, step, SUM(total) / SUM(n) FROM answer_progress a WHERE step ="
                " (SELECT MAX(step) FROM answer_progress b WHERE b.sample_id = a.sample_id)"
                " GROUP BY sample_id, step ORDER BY sample_id"
            ).fetchall()
        return {sid: {"step": step, "mean": round(mean, 6)} for sid, step, mean in rows}

    def close(self) -> None:
        self._conn.close()
