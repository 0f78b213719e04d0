"""The store's schema as sqlite-utils migrations, applied in order when a store is opened.

Migration 1 is the original schema; migration 2 adds the per-sample index (current chain
pointer, review status and the derived metrics that `Store.query` filters and sorts on),
maintained by triggers so that every write updates it in the same transaction, and backfills
it from the rows already there. Chain revisions are append-only: triggers refuse UPDATE/DELETE (only the cached
`depth_ok`, derived from the sample's depth map, may be refreshed). Migration 4 lets a bulk
writer defer those triggers for the samples it creates and build their rows set-based
(`index_deferred_samples`) before it commits. Migration 5 binds a review to the revision it
was made on (a curated revision added later reopens the sample, the decision stays in the log)
and keeps each curator's unsaved edits (`drafts`); 6 records each dataset's reading of its gray
depth pictures; 7 keeps the samples a run could not process; 8 each eval record's scores; 9 the
team's claims, batches, queues, second reviews, gold samples, accounts and priorities (`db/team.py`).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("sif")

CURATED_ORIGINS = ("imported", "generated", "edited")
RUN_ORIGINS = ("rollout", "prediction")
ORIGINS = CURATED_ORIGINS + RUN_ORIGINS
STATUSES = ("pending", "accepted", "rejected", "needs_fix")
SPLITS = ("train", "val", "validation", "dev", "test", "eval")
_CURATED_SQL = "('imported', 'generated', 'edited')"
NULLABLE_SORT_COLUMNS = ("final_hiou", "depth_ok", "n_steps")


@migrations(name="m001_initial")
def m001_initial(db: Database) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE samples (
            id INTEGER PRIMARY KEY,
            dataset TEXT NOT NULL,
            source_id TEXT NOT NULL,
            image TEXT NOT NULL,
            depth TEXT,
            depth_encoding TEXT,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            gt_boxes TEXT NOT NULL,
            split TEXT NOT NULL DEFAULT 'train',
            missing INTEGER NOT NULL DEFAULT 0,
            meta TEXT NOT NULL DEFAULT '{}',
            content_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL
        );
        CREATE INDEX samples_dataset ON samples(dataset);
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT,
            config TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT,
            metrics TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE chain_revisions (
            id INTEGER PRIMARY KEY,
            sample_id INTEGER NOT NULL REFERENCES samples(id),
            rev INTEGER NOT NULL,
            parent INTEGER,
            origin TEXT NOT NULL CHECK (origin IN ('imported', 'generated', 'edited', 'rollout', 'prediction')),
            author TEXT NOT NULL,
            created_at TEXT NOT NULL,
            chain TEXT NOT NULL,
            text TEXT NOT NULL,
            raw_text TEXT,
            valid INTEGER NOT NULL,
            problems TEXT NOT NULL DEFAULT '[]',
            run_id TEXT REFERENCES runs(id),
            note TEXT,
            n_steps INTEGER NOT NULL,
            final_hiou REAL,
            depth_ok INTEGER,
            UNIQUE (sample_id, rev)
        );
        CREATE INDEX chain_revisions_run ON chain_revisions(run_id, sample_id);
        CREATE INDEX chain_revisions_origin ON chain_revisions(origin, sample_id);
        CREATE TRIGGER chain_revisions_append_only_update BEFORE UPDATE OF
            id, sample_id, rev, parent, origin, author, created_at, chain, text, raw_text, valid, problems,
            run_id, note, n_steps, final_hiou ON chain_revisions
        BEGIN SELECT RAISE(ABORT, 'chain revisions are append-only: add a new revision instead'); END;
        CREATE TRIGGER chain_revisions_append_only_delete BEFORE DELETE ON chain_revisions
        BEGIN SELECT RAISE(ABORT, 'chain revisions are append-only: add a new revision instead'); END;
        CREATE TABLE reviews (
            sample_id INTEGER PRIMARY KEY REFERENCES samples(id),
            status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected', 'needs_fix')),
            reviewer TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL,
            version INTEGER NOT NULL
        );
        CREATE TABLE review_log (
            id INTEGER PRIMARY KEY,
            sample_id INTEGER NOT NULL REFERENCES samples(id),
            status TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            note TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            version INTEGER NOT NULL
        );
        CREATE TRIGGER reviews_log_insert AFTER INSERT ON reviews BEGIN
            INSERT INTO review_log (sample_id, status, reviewer, note, updated_at, version)
            VALUES (NEW.sample_id, NEW.status, NEW.reviewer, NEW.note, NEW.updated_at, NEW.version);
        END;
        CREATE TRIGGER reviews_log_update AFTER UPDATE ON reviews BEGIN
            INSERT INTO review_log (sample_id, status, reviewer, note, updated_at, version)
            VALUES (NEW.sample_id, NEW.status, NEW.reviewer, NEW.note, NEW.updated_at, NEW.version);
        END;
        """,
    )


@migrations(name="m002_sample_index_fts")
def m002_sample_index_fts(db: Database) -> None:
    _execute_script(
        db,
        f"""
        CREATE TABLE sample_index (
            sample_id INTEGER PRIMARY KEY REFERENCES samples(id),
            dataset TEXT NOT NULL,
            split TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            revision_id INTEGER REFERENCES chain_revisions(id),
            rev INTEGER,
            origin TEXT,
            valid INTEGER,
            n_steps INTEGER,
            final_hiou REAL,
            depth_ok INTEGER,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX sample_index_dataset ON sample_index(dataset, sample_id);
        CREATE INDEX sample_index_status ON sample_index(status, sample_id);
        CREATE INDEX sample_index_valid ON sample_index(valid, sample_id);
        CREATE INDEX sample_index_origin ON sample_index(origin, sample_id);
        CREATE INDEX sample_index_hiou ON sample_index(final_hiou, sample_id);
        CREATE INDEX sample_index_depth ON sample_index(depth_ok, sample_id);
        CREATE INDEX sample_index_steps ON sample_index(n_steps, sample_id);
        CREATE INDEX sample_index_updated ON sample_index(updated_at, sample_id);

        ALTER TABLE chain_revisions ADD COLUMN search_text TEXT;  -- the step texts and answer, for FTS
        DROP TRIGGER chain_revisions_append_only_update;
        CREATE TRIGGER chain_revisions_append_only_update BEFORE UPDATE OF
            id, sample_id, rev, parent, origin, author, created_at, chain, text, raw_text, valid, problems,
            run_id, note, n_steps, final_hiou, search_text ON chain_revisions
        BEGIN SELECT RAISE(ABORT, 'chain revisions are append-only: add a new revision instead'); END;
        CREATE VIRTUAL TABLE samples_fts USING fts5(question, answer, chain, tokenize='unicode61');

        CREATE TRIGGER samples_index_insert AFTER INSERT ON samples BEGIN
            INSERT INTO sample_index (sample_id, dataset, split, created_at, updated_at)
            VALUES (NEW.id, NEW.dataset, NEW.split, NEW.created_at, NEW.created_at);
            INSERT INTO samples_fts (rowid, question, answer, chain) VALUES (NEW.id, NEW.question, NEW.answer, '');
        END;
        CREATE TRIGGER chain_revisions_current AFTER INSERT ON chain_revisions
        WHEN NEW.origin IN {_CURATED_SQL} BEGIN
            UPDATE sample_index SET revision_id = NEW.id, rev = NEW.rev, origin = NEW.origin, valid = NEW.valid,
                n_steps = NEW.n_steps, final_hiou = NEW.final_hiou, depth_ok = NEW.depth_ok,
                updated_at = NEW.created_at
            WHERE sample_id = NEW.sample_id;
            UPDATE samples_fts SET chain = COALESCE(NEW.search_text, NEW.text) WHERE rowid = NEW.sample_id;
        END;
        CREATE TRIGGER reviews_index_insert AFTER INSERT ON reviews BEGIN
            UPDATE sample_index SET status = NEW.status, updated_at = NEW.updated_at WHERE sample_id = NEW.sample_id;
        END;
        CREATE TRIGGER reviews_index_update AFTER UPDATE ON reviews BEGIN
            UPDATE sample_index SET status = NEW.status, updated_at = NEW.updated_at WHERE sample_id = NEW.sample_id;
        END;

        -- Backfill from a store made with migration 1.
        INSERT INTO sample_index (sample_id, dataset, split, created_at, updated_at)
            SELECT id, dataset, split, created_at, created_at FROM samples;
        UPDATE sample_index SET (revision_id, rev, origin, valid, n_steps, final_hiou, depth_ok, updated_at) = (
            SELECT id, rev, origin, valid, n_steps, final_hiou, depth_ok, created_at FROM chain_revisions c
            WHERE c.sample_id = sample_index.sample_id AND c.origin IN {_CURATED_SQL}
            ORDER BY c.rev DESC LIMIT 1)
        WHERE EXISTS (SELECT 1 FROM chain_revisions c
                      WHERE c.sample_id = sample_index.sample_id AND c.origin IN {_CURATED_SQL});
        UPDATE sample_index SET status = (SELECT status FROM reviews r WHERE r.sample_id = sample_index.sample_id)
        WHERE sample_id IN (SELECT sample_id FROM reviews);
        INSERT INTO samples_fts (rowid, question, answer, chain)
            SELECT s.id, s.question, s.answer, COALESCE(
                (SELECT COALESCE(search_text, text) FROM chain_revisions c WHERE c.sample_id = s.id AND c.origin IN {_CURATED_SQL}
                 ORDER BY c.rev DESC LIMIT 1), '')
            FROM samples s;
        """,
    )


@migrations(name="m003_sort_indexes")
def m003_sort_indexes(db: Database) -> None:
    """Ascending sorts put NULLs (no chain, no depth map) last: index that order too."""
    for column in NULLABLE_SORT_COLUMNS:
        db.execute(
            f"CREATE INDEX sample_index_{column}_nulls_last ON sample_index ({column} IS NULL, {column}, sample_id)"
        )


DEFERRED_KEY = "index_deferred_after"  # meta key, present only inside a bulk writer's transaction


def _not_deferred(sample_id: str) -> str:
    """SQL that is true unless `sample_id` is above the deferral mark (no mark: nothing deferred)."""
    return (
        f"{sample_id} <= COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{DEFERRED_KEY}'), {sample_id})"
    )


@migrations(name="m004_deferrable_index_triggers")
def m004_deferrable_index_triggers(db: Database) -> None:
    """The index/FTS triggers skip samples whose id is above meta `index_deferred_after`. A bulk
    writer sets that key inside its own transaction (so no other connection ever sees it),
    inserts, then removes it and calls `index_deferred_samples` before committing: one FTS
    insert and one index insert per sample instead of an insert and an update of each."""
    _execute_script(
        db,
        f"""
        DROP TRIGGER samples_index_insert;
        CREATE TRIGGER samples_index_insert AFTER INSERT ON samples
        WHEN {_not_deferred("NEW.id")} BEGIN
            INSERT INTO sample_index (sample_id, dataset, split, created_at, updated_at)
            VALUES (NEW.id, NEW.dataset, NEW.split, NEW.created_at, NEW.created_at);
            INSERT INTO samples_fts (rowid, question, answer, chain) VALUES (NEW.id, NEW.question, NEW.answer, '');
        END;
        DROP TRIGGER chain_revisions_current;
        CREATE TRIGGER chain_revisions_current AFTER INSERT ON chain_revisions
        WHEN NEW.origin IN {_CURATED_SQL} AND {_not_deferred("NEW.sample_id")} BEGIN
            UPDATE sample_index SET revision_id = NEW.id, rev = NEW.rev, origin = NEW.origin, valid = NEW.valid,
                n_steps = NEW.n_steps, final_hiou = NEW.final_hiou, depth_ok = NEW.depth_ok,
                updated_at = NEW.created_at
            WHERE sample_id = NEW.sample_id;
            UPDATE samples_fts SET chain = COALESCE(NEW.search_text, NEW.text) WHERE rowid = NEW.sample_id;
        END;
        """,
    )


REVIEW_COLUMNS = "sample_id, status, reviewer, note, updated_at, version, rev"
DECISIONS_SQL = "('accepted', 'rejected', 'needs_fix')"


@migrations(name="m005_reviews_pinned_to_revisions")
def m005_reviews_pinned_to_revisions(db: Database) -> None:
    """A review records the revision it was made on (`rev`; 0 when the sample had no chain), in
    `reviews` and `review_log`. A curated revision added after a decision sets the review back
    to pending (signed by the revision's author, saying why), so a decision never carries over
    to a chain nobody reviewed; the decision itself stays in the log. Existing reviews are
    bound to the revision that was current when they were saved, and one that a later
    revision overtook is reopened the same way. `drafts` keeps each curator's unsaved edit of
    a sample (the editor's state as JSON, and the revision it started from)."""
    reopen = (
        "UPDATE reviews SET status = 'pending', reviewer = {author},"
        " note = 'reopened: revision ' || {rev} || ' (' || {origin} || ') came after the ' || status"
        " || ' decision on revision ' || COALESCE(rev, 0), updated_at = {at}, version = version + 1, rev = {rev}"
    )
    reviewed_rev = (
        "COALESCE((SELECT MAX(c.rev) FROM chain_revisions c WHERE c.sample_id = {t}.sample_id"
        f" AND c.origin IN {_CURATED_SQL} AND c.created_at <= {{t}}.updated_at), 0)"
    )
    _execute_script(
        db,
        f"""
        ALTER TABLE reviews ADD COLUMN rev INTEGER;
        ALTER TABLE review_log ADD COLUMN rev INTEGER;
        DROP TRIGGER reviews_log_insert;
        DROP TRIGGER reviews_log_update;
        UPDATE reviews SET rev = {reviewed_rev.format(t="reviews")};
        UPDATE review_log SET rev = {reviewed_rev.format(t="review_log")};
        CREATE TRIGGER reviews_log_insert AFTER INSERT ON reviews BEGIN
            INSERT INTO review_log ({REVIEW_COLUMNS})
            VALUES (NEW.sample_id, NEW.status, NEW.reviewer, NEW.note, NEW.updated_at, NEW.version, NEW.rev);
        END;
        CREATE TRIGGER reviews_log_update AFTER UPDATE ON reviews BEGIN
            INSERT INTO review_log ({REVIEW_COLUMNS})
            VALUES (NEW.sample_id, NEW.status, NEW.reviewer, NEW.note, NEW.updated_at, NEW.version, NEW.rev);
        END;
        CREATE INDEX review_log_sample ON review_log(sample_id, id);
        {
            reopen.format(
                author="'migration'",
                rev="(SELECT MAX(c.rev) FROM chain_revisions c WHERE c.sample_id = reviews.sample_id"
                f" AND c.origin IN {_CURATED_SQL})",
                origin="'later'",
                at=f"'{datetime.now(UTC).isoformat(timespec='microseconds')}'",
            )
        }
        WHERE status IN {DECISIONS_SQL} AND rev < (SELECT MAX(c.rev) FROM chain_revisions c
            WHERE c.sample_id = reviews.sample_id AND c.origin IN {_CURATED_SQL});
        CREATE TRIGGER chain_revisions_reopen_review AFTER INSERT ON chain_revisions
        WHEN NEW.origin IN {_CURATED_SQL} BEGIN
            {reopen.format(author="NEW.author", rev="NEW.rev", origin="NEW.origin", at="NEW.created_at")}
            WHERE sample_id = NEW.sample_id AND status IN {DECISIONS_SQL};
        END;
        CREATE TABLE drafts (
            curator TEXT NOT NULL,
            sample_id INTEGER NOT NULL REFERENCES samples(id),
            base_rev INTEGER,
            draft TEXT NOT NULL,
            step INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (curator, sample_id)
        );
        CREATE INDEX drafts_sample ON drafts(sample_id);
        """,
    )


@migrations(name="m006_depth_conventions")
def m006_depth_conventions(db: Database) -> None:
    """Per dataset, how its gray depth pictures are read (`gray_disparity`, FORMATS §2, or
    `gray_depth`, the reference code's v/255), decided at import from the chains' recorded
    depths, with the evidence, so that depth checks and the depth reward read the maps the way
    the data was made."""
    db.execute(
        "CREATE TABLE depth_conventions (dataset TEXT PRIMARY KEY, encoding TEXT NOT NULL,"
        " evidence TEXT NOT NULL DEFAULT '{}', decided_at TEXT NOT NULL)"
    )


@migrations(name="m007_run_failures")
def m007_run_failures(db: Database) -> None:
    """Samples a run could not process, with the reason: kept with the sample (the workbench and
    reports can show them), and what a resumed run does not retry."""
    _execute_script(
        db,
        """
        CREATE TABLE run_failures (
            run_id TEXT NOT NULL REFERENCES runs(id),
            sample_id INTEGER NOT NULL REFERENCES samples(id),
            stage TEXT NOT NULL,
            error TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, sample_id)
        );
        CREATE INDEX run_failures_sample ON run_failures(sample_id);
        """,
    )


@migrations(name="m008_eval_records")
def m008_eval_records(db: Database) -> None:
    """Each eval record's scores, kept with the run (the workbench lists a run's wrong predictions,
    `sif eval merge` reads a shard's scores); rewritten whenever the run is scored."""
    _execute_script(
        db,
        """
        CREATE TABLE eval_records (
            run_id TEXT NOT NULL REFERENCES runs(id),
            sample_id INTEGER NOT NULL REFERENCES samples(id),
            record_id TEXT NOT NULL,
            category TEXT NOT NULL,
            failed INTEGER NOT NULL,
            correct INTEGER,
            scores TEXT NOT NULL,
            PRIMARY KEY (run_id, sample_id)
        );
        CREATE INDEX eval_records_wrong ON eval_records(run_id, correct, sample_id);
        """,
    )


@migrations(name="m009_team")
def m009_team(db: Database) -> None:
    """Curating as a team (`db/team.py`): short claims on open samples; batches of decisions
    with each sample's previous review (so a batch can be undone); per-curator queues; blind
    second reviews (QA and gold checks) kept apart from the sample's own review; gold samples;
    accounts; the model-disagreement `priority` of each sample, with the samples whose outputs
    or curated chain changed since it was computed (`priority_stale`, filled by triggers)."""
    _execute_script(
        db,
        f"""
        CREATE TABLE claims (
            sample_id INTEGER PRIMARY KEY REFERENCES samples(id),
            curator TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX claims_expiry ON claims(expires_at);
        CREATE INDEX reviews_updated ON reviews(updated_at);
        CREATE INDEX samples_source_id ON samples(source_id);
        CREATE TABLE review_batches (
            id INTEGER PRIMARY KEY,
            status TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            note TEXT NOT NULL,
            filters TEXT NOT NULL,
            count INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            undone_at TEXT,
            undone_by TEXT
        );
        CREATE TABLE review_batch_items (
            batch_id INTEGER NOT NULL REFERENCES review_batches(id),
            sample_id INTEGER NOT NULL REFERENCES samples(id),
            prev_status TEXT,
            prev_reviewer TEXT,
            prev_note TEXT,
            prev_updated_at TEXT,
            prev_rev INTEGER,
            version INTEGER NOT NULL,
            PRIMARY KEY (batch_id, sample_id)
        ) WITHOUT ROWID;
        CREATE INDEX review_batch_items_sample ON review_batch_items(sample_id, version);
        CREATE TABLE assignments (
            curator TEXT NOT NULL,
            sample_id INTEGER NOT NULL REFERENCES samples(id),
            kind TEXT NOT NULL CHECK (kind IN ('queue', 'qa', 'gold')),
            position REAL NOT NULL,
            assigned_at TEXT NOT NULL,
            assigned_by TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (curator, sample_id)
        );
        CREATE INDEX assignments_sample ON assignments(sample_id, kind);
        CREATE INDEX assignments_queue ON assignments(curator, position);
        CREATE TABLE second_reviews (
            sample_id INTEGER NOT NULL REFERENCES samples(id),
            curator TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('qa', 'gold')),
            first_status TEXT,
            first_reviewer TEXT,
            first_rev INTEGER,
            status TEXT CHECK (status IS NULL OR status IN {DECISIONS_SQL}),
            note TEXT NOT NULL DEFAULT '',
            chain TEXT,
            text_changed INTEGER,
            created_at TEXT NOT NULL,
            decided_at TEXT,
            PRIMARY KEY (sample_id, curator)
        );
        CREATE TABLE gold (
            sample_id INTEGER PRIMARY KEY REFERENCES samples(id),
            status TEXT NOT NULL CHECK (status IN {DECISIONS_SQL}),
            chain TEXT,
            marked_by TEXT NOT NULL DEFAULT '',
            marked_at TEXT NOT NULL
        );
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('curator', 'admin')),
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        ALTER TABLE sample_index ADD COLUMN priority REAL;
        CREATE INDEX sample_index_priority ON sample_index(priority, sample_id);
        CREATE INDEX sample_index_priority_nulls_last ON sample_index(priority IS NULL, priority, sample_id);
        CREATE TABLE priority_stale (sample_id INTEGER PRIMARY KEY);
        CREATE TRIGGER chain_revisions_priority_output AFTER INSERT ON chain_revisions
        WHEN NEW.origin IN ('rollout', 'prediction') BEGIN
            INSERT OR IGNORE INTO priority_stale (sample_id) VALUES (NEW.sample_id);
        END;
        CREATE TRIGGER chain_revisions_priority_curated AFTER INSERT ON chain_revisions
        WHEN NEW.origin IN {_CURATED_SQL}
            AND EXISTS (SELECT 1 FROM sample_index WHERE sample_id = NEW.sample_id AND priority IS NOT NULL) BEGIN
            INSERT OR IGNORE INTO priority_stale (sample_id) VALUES (NEW.sample_id);
        END;
        CREATE TRIGGER eval_records_priority AFTER INSERT ON eval_records BEGIN
            INSERT OR IGNORE INTO priority_stale (sample_id) VALUES (NEW.sample_id);
        END;
        INSERT OR IGNORE INTO priority_stale (sample_id)
            SELECT sample_id FROM chain_revisions WHERE origin IN ('rollout', 'prediction')
            UNION SELECT sample_id FROM eval_records;
        """,
    )


def index_deferred_samples(conn: sqlite3.Connection, after: int) -> None:
    """Build the index and FTS rows of the samples with id > `after` (written with the triggers
    deferred) as the triggers would have: the latest curated revision, the review status, and
    the time of the latest of these writes."""
    conn.execute(
        f"""
        INSERT INTO sample_index (sample_id, dataset, split, status, revision_id, rev, origin, valid, n_steps,
                                  final_hiou, depth_ok, created_at, updated_at)
        SELECT s.id, s.dataset, s.split, COALESCE(r.status, 'pending'), c.id, c.rev, c.origin, c.valid, c.n_steps,
               c.final_hiou, c.depth_ok, s.created_at,
               MAX(s.created_at, COALESCE(c.created_at, ''), COALESCE(r.updated_at, ''))
        FROM samples s
        LEFT JOIN chain_revisions c ON c.id = (SELECT id FROM chain_revisions
            WHERE sample_id = s.id AND origin IN {_CURATED_SQL} ORDER BY rev DESC LIMIT 1)
        LEFT JOIN reviews r ON r.sample_id = s.id
        WHERE s.id > ?""",
        [after],
    )
    conn.execute(
        """
        INSERT INTO samples_fts (rowid, question, answer, chain)
        SELECT s.id, s.question, s.answer, COALESCE(c.search_text, c.text, '')
        FROM sample_index i JOIN samples s ON s.id = i.sample_id LEFT JOIN chain_revisions c ON c.id = i.revision_id
        WHERE i.sample_id > ?""",
        [after],
    )


def _execute_script(db: Database, script: str) -> None:
    """Run each statement of `script` inside the migration's transaction (executescript would commit)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:80]}")


def migrate(db: Database, *, stop_before: str | None = None) -> None:
    """Bring `db` up to the current schema (or up to just before `stop_before`, for tests)."""
    migrations.apply(db, stop_before=stop_before)
