"""What admins do for the team from the workbench, as plain Python (no browser): fill queues,
decide a whole filter as one batch (counted, confirmed, undoable), export the filter with the
same exporters as `sif export`, and the per-curator progress and agreement report.

Every action checks the signed-in user's role here, on the server: hiding the Team tab from
curators is only a courtesy.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from db.exporters import export_rl, export_sft
from db.store import StoreError
from sif.errors import SifError
from workbench import views
from workbench.service import Filters, Workbench
from workbench.serving import ADMIN, SignIn

DECISION_LABELS = {"accepted": "accept", "rejected": "reject", "needs_fix": "mark as needing a fix"}
REPORT_COLUMNS = (  # report key, column title, digits (None: a count)
    ("done", "done", None),
    ("accepted", "accepted", None),
    ("rejected", "rejected", None),
    ("needs_fix", "needs fix", None),
    ("median_s", "s / sample", 1),
    ("pairs", "QA pairs", None),
    ("kappa", "κ", 3),
    ("box_pairs", "box pairs", None),
    ("box_iou", "box IoU", 3),
    ("text_change_rate", "text changed", 3),
    ("gold_n", "gold", None),
    ("gold_accuracy", "gold accuracy", 3),
)


@dataclass
class PendingBatch:
    """A bulk decision counted and shown, waiting for the admin's confirmation."""

    status: str
    filters: dict
    count: int


def _msg(text: str, kind: str = "info") -> str:
    return views.message(text, kind)


class TeamActions:
    def __init__(self, wb: Workbench, signin: SignIn, exports: Path):
        self.wb = wb
        self.store = wb.store
        self.signin = signin
        self.exports = Path(exports)

    def is_admin(self, user: str) -> bool:
        return self.signin.role(user) == ADMIN

    def _refused(self, user: str) -> str | None:
        if self.is_admin(user):
            return None
        return _msg(f"Refused: {user} is not an admin; only admins assign, decide in bulk and export.", "error")

    def curators(self) -> list[str]:
        """Who can be given a queue: the accounts, else everyone who decided something."""
        accounts = self.signin.accounts
        if accounts is not None:
            return [name for name, _ in accounts.users()]
        return sorted(self.signin.pairs) or sorted(self.store.qa_report())

    # ------------------------------------------------------------ queues

    def assign(self, user: str, filters: Filters, curator: str, n) -> str:
        refused = self._refused(user)
        if refused:
            return refused
        try:
            added = self.store.assign((curator or "").strip(), int(n or 0), by=user, **self._kw(filters))
        except (StoreError, ValueError, TypeError) as exc:
            return _msg(f"Not assigned: {exc}", "error")
        if not added:
            return _msg("Nothing assigned: every pending sample of this filter is already in a queue.", "warn")
        return _msg(f"Assigned {added} sample(s) of this filter to {curator}.", "ok")

    # ------------------------------------------------------------ bulk decisions

    def bulk_count(self, user: str, filters: Filters, status: str) -> tuple[str, PendingBatch | None]:
        """Count what a bulk decision would change and ask for confirmation."""
        refused = self._refused(user)
        if refused:
            return refused, None
        if status not in DECISION_LABELS:
            return _msg(f"Pick a decision ({', '.join(DECISION_LABELS)}).", "warn"), None
        kw = self._kw(filters)
        count = self.store.count(**kw)
        if not count:
            return _msg("No sample matches this filter: nothing to decide.", "warn"), None
        pending = PendingBatch(status, kw, count)
        return _msg(
            f"This will {DECISION_LABELS[status]} all {count} sample(s) of the current filter, as one batch "
            "you can undo. Press Confirm to go ahead.",
            "warn",
        ), pending

    def bulk_apply(self, user: str, pending: PendingBatch | None) -> tuple[str, int | None]:
        refused = self._refused(user)
        if refused:
            return refused, None
        if pending is None:
            return _msg("Count the filter first: nothing was decided.", "warn"), None
        now = self.store.count(**pending.filters)
        if now != pending.count:
            return _msg(
                f"Not decided: the filter matches {now} sample(s) now, not the {pending.count} you confirmed. "
                "Count it again.",
                "warn",
            ), None
        try:
            batch = self.store.decide_many(pending.status, user, **pending.filters)
        except StoreError as exc:
            return _msg(f"Not decided: {exc}", "error"), None
        return _msg(
            f"Batch {batch.id}: {batch.count} sample(s) {views.STATUS_LABELS[pending.status]} by {user}. "
            f"Undo batch {batch.id} restores every earlier status.",
            "ok",
        ), batch.id

    def undo(self, user: str, batch_id: int | None) -> str:
        refused = self._refused(user)
        if refused:
            return refused
        if batch_id is None:
            return _msg("No batch to undo.", "warn")
        try:
            n = self.store.undo_batch(int(batch_id), user)
        except StoreError as exc:
            return _msg(f"Not undone: {exc}", "error")
        return _msg(f"Batch {batch_id} undone: {n} sample(s) have their earlier status back.", "ok")

    # ------------------------------------------------------------ export

    def export(self, user: str, filters: Filters, kind: str, n=200, seed=42) -> tuple[str, str, str | None]:
        """Run `sif export sft|rl`'s exporter on the filter's statuses; returns (message,
        manifest as JSON, the zip of every file written)."""
        refused = self._refused(user)
        if refused:
            return refused, "", None
        kw = self._kw(filters)
        status = kw.pop("status", None)
        if kw:  # the exporters select by status (and split) only: never export more than the filter shows
            return (
                _msg(
                    f"Not exported: the exporter selects by status only, and this filter also sets "
                    f"{', '.join(sorted(kw))}. Clear those filters (or use `sif export`).",
                    "warn",
                ),
                "",
                None,
            )
        statuses = [status] if status else None
        self.exports.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"export-{kind}-", dir=self.exports))
        try:
            if kind == "rl":
                report = export_rl(
                    self.store, work / "rl.jsonl", n=int(n or 200), seed=int(seed or 0), statuses=statuses, split=None
                )
            else:
                report = export_sft(self.store, work / "sft", statuses=statuses, split=None)
        except (SifError, OSError, ValueError) as exc:
            shutil.rmtree(work, ignore_errors=True)
            return _msg(f"Not exported: {exc}", "error"), "", None
        manifest = next(work.rglob("*manifest.json"), None)
        archive = work.with_suffix(".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(work.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(work))
        shutil.rmtree(work, ignore_errors=True)
        text = (
            json.dumps(json.loads(zipfile.Path(archive, str(manifest.relative_to(work))).read_text()), indent=2)
            if manifest
            else ""
        )
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items())) or "none"
        done = f"Exported {report.exported} sample(s) ({kind}); skipped: {skipped}. The files are in the zip below."
        return _msg(done, "ok"), text, str(archive)

    # ------------------------------------------------------------ report

    def report_html(self) -> str:
        """Per curator: progress and agreement (`Store.qa_report`), one row each."""
        report = self.store.qa_report()
        if not report:
            return '<div class="wb-empty">No decisions yet.</div>'
        head = "".join(f"<th>{views.esc(title)}</th>" for _, title, _ in REPORT_COLUMNS)
        rows = []
        for curator, figures in report.items():
            cells = "".join(
                f'<td class="wb-num" data-key="{key}">{views.esc(_figure(figures.get(key), digits))}</td>'
                for key, _, digits in REPORT_COLUMNS
            )
            rows.append(f'<tr data-curator="{views.esc(curator)}"><td>{views.esc(curator)}</td>{cells}</tr>')
        return f'<table class="wb-team-report"><tr><th>curator</th>{head}</tr>{"".join(rows)}</table>'

    def _kw(self, filters: Filters) -> dict:
        return self.wb.kwargs(filters)


def _figure(value, digits: int | None) -> str:
    if value is None:
        return "—"
    return str(value) if digits is None else f"{value:.{digits}f}"
