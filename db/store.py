"""The SQLite store: the single source of truth for samples, chain revisions, reviews and runs.

One file, WAL, foreign keys on, one connection per thread (Gradio runs handlers in a thread
pool). Chains are append-only revisions; a sample's current chain is its latest curated one
(`imported`, `generated`, `edited`), tracked with its derived metrics in `sample_index` by
triggers (bulk imports build the rows of the samples they create set-based instead, see
`deferred_index`), so queries filter and sort on one narrow indexed table.

A store this process cannot write (a read-only file or folder) opens read-only: reads work and
every write raises a StoreError saying why. A store written by a newer version, or a file that
is not a SIF store, is refused with a message naming it. Untrusted text is made storable here
(lone surrogates replaced) and notes, problems and run configs are redacted (common/redact.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image
from sqlite_utils import Database

from common.redact import redact, redact_config
from db import team
from db.errors import StoreError
from db.schema import (
    CURATED_ORIGINS,
    DEFERRED_KEY,
    NULLABLE_SORT_COLUMNS,
    ORIGINS,
    RUN_ORIGINS,
    SPLITS,
    STATUSES,
    index_deferred_samples,
    migrate,
    migrations,
)
from sif.chain import (
    Chain,
    clean_text,
    first_notes,
    parse_chain,
    render_chain,
    surrogate_field,
    validate_chain,
)
from sif.depth import ENCODINGS, spectral_r_file
from sif.geometry import four_numbers, hiou
from sif.rewards import chain_depth_score

RUN_KINDS = ("generation", "training", "evaluation", "inference")
_RUN_PREFIX = {"generation": "gen", "training": "train", "evaluation": "eval", "inference": "infer"}
TERMINAL_RUN_STATUSES = ("done", "completed", "failed", "cancelled")
SORT_KEYS = {
    "id": "i.sample_id",
    "newest": "i.sample_id",  # newest first; ids grow with creation time
    "updated": "i.updated_at",
    "final_hiou": "i.final_hiou",
    "depth_ok": "i.depth_ok",
    "n_steps": "i.n_steps",
    "dataset": "i.dataset",
    "status": "i.status",
    "priority": "i.priority",  # where the model's outputs disagree most first (`db.team.refresh_priority`)
}
_HIGHEST_FIRST = ("newest", "priority")  # sorts whose natural order is descending
_NULLABLE = (*NULLABLE_SORT_COLUMNS, "priority")
DEPTH_MAP_KEY = "depth_map"  # meta key: an exact depth map, preferred for depth checks and rewards
DEPTH_MAP_ENCODING_KEY = "depth_map_encoding"  # meta key: its encoding, when not gray16_depth
MAX_SIDE = 2**31 - 1  # image width/height at most (SQLite's INTEGER holds 2**63, no picture comes near)


class ConflictError(StoreError):
    """A review or edit saved against a stale version; nothing was overwritten. `current` is what
    is stored (the Review, or the current ChainRevision for an edit)."""

    def __init__(self, message: str, current: Review | ChainRevision | None):
        super().__init__(message)
        self.current = current


@dataclass
class Sample:
    id: int
    dataset: str
    source_id: str
    image: str
    depth: str | None
    depth_encoding: str | None
    width: int
    height: int
    question: str
    answer: str
    gt_boxes: list[list[float]]
    split: str
    missing: bool
    meta: dict
    created_at: str


@dataclass
class ChainRevision:
    id: int
    sample_id: int
    rev: int
    parent: int | None
    origin: str
    author: str
    created_at: str
    chain: Chain
    text: str
    raw_text: str | None
    valid: bool
    problems: list[str]
    run_id: str | None
    note: str | None
    n_steps: int = 0
    final_hiou: float | None = None
    depth_ok: bool | None = None


@dataclass
class Review:
    sample_id: int
    status: str
    reviewer: str
    note: str
    updated_at: str
    version: int
    rev: int | None = None  # the revision the decision was made on (0: the sample had no chain)


class StaleRevisionError(ConflictError):
    """A review made on a revision that is no longer the sample's current one; nothing was saved.
    `current` is the current ChainRevision (None: the sample has no chain)."""


@dataclass
class StoredDraft:
    """A curator's unsaved edit of a sample: the editor's state as JSON, made on `base_rev`."""

    curator: str
    sample_id: int
    base_rev: int | None
    data: dict
    step: int
    updated_at: str


@dataclass
class SampleRow:
    """One line of a query result: the sample, its review status and its current chain's metrics."""

    id: int
    dataset: str
    question: str
    answer: str
    status: str
    valid: bool | None
    origin: str | None
    rev: int | None
    n_steps: int | None
    final_hiou: float | None
    depth_ok: bool | None
    created_at: str


@dataclass
class ChainAnalysis:
    """A chain parsed leniently, rendered canonically, validated and scored against its sample:
    everything a revision row stores. Pure, so importers can compute it in worker processes; the
    chain travels as its JSON, which pickles several times faster than Chain objects."""

    chain_json: str
    n_steps: int
    text: str
    raw_text: str | None
    problems: list[str]
    final_hiou: float | None
    depth_ok: int | None
    search_text: str

    @property
    def chain(self) -> Chain:
        return Chain.from_json(json.loads(self.chain_json))


def analyse_chain(
    chain: Chain | str, gt_boxes, depth_file: tuple[str, str] | None, extra_problems: list[str] | None = None
) -> ChainAnalysis:
    """`depth_file` is (path, encoding) of an existing depth map, or None (no depth check)."""
    if isinstance(chain, Chain):
        raw, source = None, clean_text(render_chain(chain))
    elif isinstance(chain, str):
        raw = source = clean_text(chain)
    else:
        raise StoreError(f"chain: expected a Chain or text, got {type(chain).__name__}")
    parsed = parse_chain(source)
    c = parsed.chain
    text = render_chain(c)
    problems = [str(p) for p in validate_chain(text)] + [f"lenient parse: {s}" for s in parsed.skipped]
    problems = [redact(clean_text(p)) for p in first_notes(problems + list(extra_problems or []))]
    final = hiou(c.final_boxes, gt_boxes) if c.steps and gt_boxes else None
    search = "\n".join([*(step.text for step in c.steps), c.answer or ""])
    canonical = c if source == text else parse_chain(text).chain  # the depth check reads the canonical text
    return ChainAnalysis(
        _dumps(c.to_json()),
        len(c.steps),
        text,
        raw if raw is not None and raw != text else None,
        problems,
        final,
        depth_check(canonical, depth_file),
        search,
    )


def depth_source(sample) -> tuple[str, str] | None:
    """(stored path, encoding) of the sample's exact depth map: `meta.depth_map` (gray16_depth
    unless `meta.depth_map_encoding` says otherwise) when there is one, else its depth image."""
    meta = sample.meta or {}
    if meta.get(DEPTH_MAP_KEY):
        return meta[DEPTH_MAP_KEY], meta.get(DEPTH_MAP_ENCODING_KEY) or "gray16_depth"
    if sample.depth:
        return sample.depth, sample.depth_encoding or "auto"
    return None


def analyse_or_keep(
    chain: Chain | str, gt_boxes, depth_file: tuple[str, str] | None, extra_problems: list[str] | None = None
) -> ChainAnalysis:
    """`analyse_chain`, or, should analysing text fail, the text kept verbatim with no steps and
    the reason among its problems: a paid reply is never lost to a bug met by hostile text."""
    try:
        return analyse_chain(chain, gt_boxes, depth_file, extra_problems)
    except Exception as exc:
        if not isinstance(chain, str):
            raise
        problems = [*(extra_problems or []), f"could not be analysed ({type(exc).__name__}: {exc})"]
        empty = Chain((), None)
        return ChainAnalysis(
            _dumps(empty.to_json()), 0, render_chain(empty), clean_text(chain), first_notes(problems), None, None, ""
        )


def depth_check(chain: Chain | str, depth_file: tuple[str, str] | None) -> int | None:
    """1/0 for the strict depth reward of `chain` (parsed, or text) against the depth map; None without a map."""
    if depth_file is None:
        return None
    if isinstance(chain, str):
        chain = parse_chain(chain).chain
    return int(chain_depth_score(chain, *depth_file) == 1.0)


@dataclass
class _Filters:
    status: str | list[str] | None = None
    dataset: str | list[str] | None = None
    valid: bool | None = None
    origin: str | None = None
    run_id: str | None = None
    text: str | None = None
    split: str | None = None
    draft_of: str | None = None
    hiou_min: float | None = None
    hiou_max: float | None = None
    depth_ok: bool | None = None
    ids: list[int] | None = None
    where: list[str] = field(default_factory=list)
    params: list = field(default_factory=list)


_dumps = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(ensure_ascii=False) builds an encoder per call


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _bool(v) -> bool | None:
    return None if v is None else bool(v)


def _one_or_many(column: str, value, f: _Filters) -> None:
    values = [value] if isinstance(value, str) else list(value)
    f.where.append(f"{column} IN ({','.join('?' * len(values))})")
    f.params.extend(values)


_FILTER_NAMES = [name for name in _Filters.__dataclass_fields__ if name not in ("where", "params")]


def _unit_number(name: str, value) -> float | None:
    """A threshold between 0 and 1 (a number, or its text), or None."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StoreError(f"{name}: {brief(repr(value))} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise StoreError(f"{name}: {number} is not between 0 and 1")
    return number


def fts_query(text: str) -> str:
    """Plain words → an FTS5 query matching all of them (quoted, so punctuation is literal)."""
    terms = [t for t in text.split() if t]
    return " ".join('"' + t.replace('"', '""') + '"' for t in terms)


def check_boxes(boxes, field_name: str = "gt_boxes") -> list[list[float]]:
    """Normalized `[x1, y1, x2, y2]` boxes with 0 ≤ x1 < x2 ≤ 1 and likewise for y: lists of 4
    numbers (a string such as "0011" is not a box, even though it has 4 characters)."""
    if not isinstance(boxes, (list, tuple)):
        raise StoreError(f"{field_name}: expected a list of [x1, y1, x2, y2] boxes, got {type(boxes).__name__}")
    out = []
    for i, box in enumerate(boxes):
        numbers = four_numbers(box)
        if numbers is None:
            raise StoreError(f"{field_name}[{i}]: expected 4 numbers, got {brief(repr(box))}")
        x1, y1, x2, y2 = numbers
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise StoreError(
                f"{field_name}[{i}]: {brief(repr(box))} is not a normalized box (0 ≤ x1 < x2 ≤ 1, 0 ≤ y1 < y2 ≤ 1)"
            )
        out.append(numbers)
    return out


def brief(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters, for messages: hostile values can be megabytes long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def content_hash(dataset: str, source_id: str, image: str, question: str, answer: str, gt_boxes) -> str:
    key = [dataset, source_id, image, question, answer, [[round(v, 6) for v in b] for b in gt_boxes]]
    return hashlib.sha256(_dumps(key).encode()).hexdigest()


class _Order:
    """The order `Store.query` sorts by: its ORDER BY, and the row value of key expressions that
    grows along it (NULLs last), so a neighbour or a position is one keyset query."""

    def __init__(self, sort: str, descending: bool):
        if sort not in SORT_KEYS:
            raise StoreError(f"sort: {sort!r} is not one of {', '.join(SORT_KEYS)}")
        self.descending = descending != (sort in _HIGHEST_FIRST)
        column = SORT_KEYS[sort]
        if column == "i.sample_id":
            self.terms, self.keys = [(column, self.descending)], [column]
        elif self.descending or sort not in _NULLABLE:  # NULLs already last in DESC: plain index
            self.terms = [(column, self.descending), ("i.sample_id", self.descending)]
            self.keys = (
                [f"{column} IS NOT NULL", f"IFNULL({column}, 0)", "i.sample_id"]
                if sort in _NULLABLE
                else [column, "i.sample_id"]
            )
        else:  # NULLs last: matches the (column IS NULL, column, sample_id) index
            self.terms = [(f"{column} IS NULL", False), (column, False), ("i.sample_id", False)]
            self.keys = [f"{column} IS NULL", f"IFNULL({column}, 0)", "i.sample_id"]

    def sql(self, *, reverse: bool = False) -> str:
        return ", ".join(f"{t} {'DESC' if desc != reverse else 'ASC'}" for t, desc in self.terms)

    def after(self, forward: bool) -> str:
        """A condition on the key row value (parameters: the reference sample's key) that holds
        for the samples after it (`forward`) or before it."""
        op = ">" if forward != self.descending else "<"
        return f"({', '.join(self.keys)}) {op} ({', '.join('?' * len(self.keys))})"


class Store:
    """Open with `Store.open(path)`; safe to share between threads (each gets its own connection)."""

    def __init__(self, path: Path, data_root: Path, *, read_only: str | None = None):
        self.path = path
        self.data_root = data_root
        self.read_only = read_only  # why this store cannot be written to, or None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------ opening and connections

    @classmethod
    def open(cls, path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Store:
        """Create or migrate the store at `path`. The data root is recorded on first open (default:
        the DB file's folder); a later open that names a different one is refused. A store this
        process cannot write opens read-only (see `read_only`)."""
        path = Path(path).absolute()
        if path.parent and not path.parent.is_dir():
            raise StoreError(f"cannot create store {path}: folder {path.parent} does not exist")
        if not path.exists() and not os.access(path.parent, os.W_OK):
            raise StoreError(f"cannot create store {path}: folder {path.parent} is read-only")
        store = cls(path, Path(), read_only=_read_only_reason(path))
        try:
            store.data_root = store._prepare(data_root)
        except sqlite3.DatabaseError as exc:  # "file is not a database", a damaged page, ...
            store.close()
            raise StoreError(f"{path} cannot be opened as a SIF store ({exc})") from None
        except BaseException:
            store.close()
            raise
        return store

    def _prepare(self, data_root) -> Path:
        """Check the schema, migrate it (when writable), and return the recorded data root."""
        conn = self.conn
        tables = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone()
        known = {m.name for m in migrations.pending(Database(memory=True))}
        done = {m.name for m in migrations.applied(self.db)}
        if tables and not done:
            raise StoreError(f"{self.path} is an SQLite database but not a SIF store; refusing to change it")
        newer = sorted(done - known)
        if newer:
            raise StoreError(
                f"{self.path} was written by a newer version of SIF Workbench (schema {', '.join(newer)}); "
                "upgrade SIF Workbench to open it"
            )
        asked = Path(data_root).expanduser().resolve() if data_root is not None else None
        if self.read_only:
            if known - done:
                raise StoreError(
                    f"{self.path} needs upgrading to this version's schema, but it is read-only ({self.read_only})"
                )
            root = self._recorded_root()
        else:
            conn.execute("PRAGMA journal_mode=WAL")
            with self.transaction():
                migrate(self.db)
                root = self._recorded_root()
                if root is None:
                    root = asked or self.path.parent.resolve()
                    conn.execute("INSERT INTO meta (key, value) VALUES ('data_root', ?)", [str(root)])
                    conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", [now()])
        if root is None:
            raise StoreError(f"{self.path} records no data root")
        if asked is not None and asked != root:
            raise StoreError(f"{self.path} records data root {root}; refusing to open it with data root {asked}")
        return root

    def _recorded_root(self) -> Path | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'data_root'").fetchone()
        return None if row is None else Path(row[0])

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit at the driver level; writes use explicit transactions)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.read_only:
                uri = f"{self.path.as_uri()}?mode=ro" + ("&immutable=1" if _frozen(self.path) else "")
                conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.db = Database(conn)
            with self._lock:
                self._conns.append(conn)
        return conn

    @property
    def db(self) -> Database:
        """This thread's sqlite-utils view of the store."""
        _ = self.conn  # opens this thread's connection (and its Database view) if need be
        return self._local.db

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def require_writable(self) -> None:
        """Raise a StoreError saying why, when this store was opened read-only."""
        if self.read_only:
            raise StoreError(f"{self.path} is read-only ({self.read_only}): nothing can be saved to it")

    @contextmanager
    def transaction(self, *, savepoint: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction (`BEGIN IMMEDIATE`, so concurrent writers queue instead of failing
        on upgrade); nested calls use savepoints, so one failed record rolls back alone
        (`savepoint=False` joins the outer transaction, for a block that writes one statement)."""
        self.require_writable()
        conn = self.conn
        if conn.in_transaction and not savepoint:
            yield conn
            return
        if conn.in_transaction:
            name = f"sp_{secrets.token_hex(6)}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield conn
            except BaseException:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            conn.execute(f"RELEASE SAVEPOINT {name}")
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def deferred_index(self) -> Iterator[sqlite3.Connection]:
        """A transaction for bulk writes: the samples created inside skip the per-row index and FTS
        triggers, and their rows are built set-based at the end, before anything commits. Inside,
        `query`/`count`/`current_chain` do not see those samples yet. Nested blocks join the outer one."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM meta WHERE key = ?", [DEFERRED_KEY]).fetchone():
                yield conn
                return
            mark = conn.execute("SELECT COALESCE(MAX(id), 0) FROM samples").fetchone()[0]
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [DEFERRED_KEY, str(mark)])
            yield conn
            conn.execute("DELETE FROM meta WHERE key = ?", [DEFERRED_KEY])
            index_deferred_samples(conn, mark)

    # ------------------------------------------------------------ paths

    def resolve(self, rel_path: str | os.PathLike) -> Path:
        """The absolute path of a stored (data-root relative) path; refuses one that escapes the root.

        The check is lexical (`..` is collapsed, symlinks are not followed), so a data set linked
        into the data root stays usable while a path that climbs out of it is refused."""
        return Path(self._absolute(rel_path))

    def relative(self, path: str | os.PathLike) -> str:
        """`path` (absolute, or relative to the data root) as stored: relative to the data root."""
        return self._absolute(path)[len(self._root_prefix) :].replace(os.sep, "/")

    def _absolute(self, path) -> str:
        p = os.path.normpath(os.path.join(self._root_str, os.fspath(path)))
        if not (p + os.sep).startswith(self._root_prefix):
            raise StoreError(f"path {os.fspath(path)!r} resolves to {p}, outside the data root {self.data_root}")
        return p

    @property
    def data_root(self) -> Path:
        return self._data_root

    @data_root.setter
    def data_root(self, root: Path) -> None:
        self._data_root = Path(root)
        self._root_str = os.path.normpath(str(root))
        self._root_prefix = self._root_str.rstrip(os.sep) + os.sep

    # ------------------------------------------------------------ samples

    def add_sample(
        self,
        *,
        dataset: str,
        source_id: str,
        image: str,
        question: str,
        answer: str,
        gt_boxes,
        width: int,
        height: int,
        depth: str | None = None,
        depth_encoding: str | None = None,
        split: str = "train",
        missing: bool = False,
        meta: dict | None = None,
    ) -> int:
        """Add a sample and return its id; the same content added again returns the existing id."""
        return self.import_sample(
            None,
            author="",
            dataset=dataset,
            source_id=source_id,
            image=image,
            question=question,
            answer=answer,
            gt_boxes=gt_boxes,
            width=width,
            height=height,
            depth=depth,
            depth_encoding=depth_encoding,
            split=split,
            missing=missing,
            meta=meta,
        )[0]

    def _new_sample(
        self,
        *,
        dataset: str,
        source_id: str,
        image: str,
        question: str,
        answer: str,
        gt_boxes,
        width: int,
        height: int,
        depth: str | None = None,
        depth_encoding: str | None = None,
        split: str = "train",
        missing: bool = False,
        meta: dict | None = None,
    ) -> tuple[Sample, str]:
        """The checked sample as it would be stored (id 0) and its content hash."""
        for name, value in (("dataset", dataset), ("question", question), ("answer", answer)):
            if not isinstance(value, str) or not value.strip():
                raise StoreError(f"{name}: must be a non-empty string")
        for name, pixels in (("width", width), ("height", height)):
            if not isinstance(pixels, int) or isinstance(pixels, bool) or not 0 < pixels <= MAX_SIDE:
                raise StoreError(
                    f"{name}: must be a whole number of pixels from 1 to {MAX_SIDE}, got {brief(repr(pixels))}"
                )
        if split not in SPLITS:
            raise StoreError(f"split: {brief(repr(split))} is not one of {', '.join(SPLITS)}")
        if meta is not None and not isinstance(meta, dict):
            raise StoreError(f"meta: expected an object, got {type(meta).__name__}")
        fields = {"dataset": dataset, "source_id": source_id, "question": question, "answer": answer}
        where = surrogate_field({**fields, "image": image, "depth": depth, "meta": meta})
        if where is not None:
            raise StoreError(f"{where}: contains a lone surrogate (\\ud800-\\udfff), which is not text")
        if depth_encoding is not None and depth_encoding not in ENCODINGS:
            raise StoreError(f"depth_encoding: {depth_encoding!r} is not one of {', '.join(ENCODINGS)}")
        if depth is not None and depth_encoding is None:
            raise StoreError("depth_encoding: required when a depth image is given")
        boxes = check_boxes(gt_boxes)
        image_rel = self._stored_path(image, "image")
        depth_rel = self._stored_path(depth, "depth") if depth is not None else None
        meta = dict(meta or {})
        if meta.get(DEPTH_MAP_KEY):
            meta[DEPTH_MAP_KEY] = self._stored_path(meta[DEPTH_MAP_KEY], f"meta.{DEPTH_MAP_KEY}")
        if meta.get(DEPTH_MAP_ENCODING_KEY, "gray16_depth") not in ENCODINGS:
            raise StoreError(
                f"meta.{DEPTH_MAP_ENCODING_KEY}: {meta[DEPTH_MAP_ENCODING_KEY]!r} is not one of {', '.join(ENCODINGS)}"
            )
        sample = Sample(
            0,
            dataset,
            str(source_id),
            image_rel,
            depth_rel,
            depth_encoding,
            width,
            height,
            question,
            answer,
            boxes,
            split,
            bool(missing),
            meta,
            "",
        )
        return sample, content_hash(dataset, str(source_id), image_rel, question, answer, boxes)

    def import_sample(
        self, chain: str | None, *, author: str, analysis: ChainAnalysis | None = None, **sample
    ) -> tuple[int, bool, bool]:
        """Add a sample (kwargs of `add_sample`) and its chain as an `imported` revision, idempotently:
        returns (id, sample created, chain added); a chain already imported for it is not added again.
        `analysis` is the chain's `analyse_chain` result when the caller computed it already."""
        [result] = self.import_samples([(sample, chain, analysis)], author=author)
        if isinstance(result, StoreError):
            raise result
        return result

    def import_samples(
        self, records: list[tuple[dict, str | None, ChainAnalysis | None]], *, author: str
    ) -> list[tuple[int, bool, bool] | StoreError]:
        """`import_sample` for many (sample kwargs, chain, analysis) records in one transaction with
        the index deferred: new samples and their first revisions go in with one statement each,
        their index and FTS rows with one more each.
        Returns each record's result, or the StoreError that refused it (nothing of it stored)."""
        results: list = [None] * len(records)
        checked = []
        for k, (fields, chain, analysis) in enumerate(records):
            try:
                checked.append((k, *self._new_sample(**fields), chain, analysis))
            except StoreError as exc:
                results[k] = exc
        with self.deferred_index() if len(checked) > 1 else self.transaction() as conn:  # one: triggers are cheaper
            ids = self._ids_by_hash([digest for _, _, digest, _, _ in checked])
            next_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM samples").fetchone()[0]
            samples, revisions, known = [], [], []
            created_at = now()  # one time for the batch: it is one transaction
            for k, sample, digest, chain, analysis in checked:
                if digest in ids:
                    known.append((k, ids[digest], chain))
                    continue
                try:
                    if chain is not None and analysis is None:
                        analysis = analyse_or_keep(chain, sample.gt_boxes, self.depth_file(sample))
                except StoreError as exc:
                    results[k] = exc
                    continue
                sample.id = ids[digest] = next_id
                sample.created_at = created_at
                next_id += 1
                samples.append(_sample_row(sample, digest))
                if chain is not None and analysis is not None:  # a chain is always analysed above
                    revisions.append(
                        _revision_row(
                            sample.id,
                            analysis,
                            rev=1,
                            parent=None,
                            origin="imported",
                            author=author,
                            run_id=None,
                            note=None,
                            created_at=created_at,
                        )
                    )
                results[k] = (sample.id, True, chain is not None)
            conn.executemany(_INSERT_SAMPLE, samples)
            conn.executemany(_INSERT_REVISION, revisions)
            for k, sample_id, chain in known:  # stored before (or earlier in this batch): add a new chain only
                try:
                    added = chain is not None and self._add_imported_chain(sample_id, chain, author)
                except StoreError as exc:
                    results[k] = exc
                    continue
                results[k] = (sample_id, False, added)
        return results

    def _ids_by_hash(self, digests: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for start in range(0, len(digests), 500):
            part = digests[start : start + 500]
            out.update(
                self.conn.execute(
                    f"SELECT content_hash, id FROM samples WHERE content_hash IN ({','.join('?' * len(part))})", part
                )
            )
        return out

    def _add_imported_chain(self, sample_id: int, chain: str, author: str) -> bool:
        """Add `chain` to a stored sample unless it was imported for it already; True when added."""
        known = self.conn.execute(
            "SELECT 1 FROM chain_revisions WHERE sample_id = ? AND origin = 'imported' AND (raw_text = ? OR text = ?)",
            [sample_id, chain, chain],
        ).fetchone()
        if not known:
            self.add_revision(sample_id, chain, origin="imported", author=author)
        return not known

    def _stored_path(self, path, field_name: str) -> str:
        if not isinstance(path, (str, os.PathLike)):
            raise StoreError(f"{field_name}: expected a path, got {type(path).__name__}")
        try:
            return self.relative(path)
        except StoreError as exc:
            raise StoreError(f"{field_name}: {exc}") from None

    def get_sample(self, sample_id: int) -> Sample:
        row = self.conn.execute("SELECT * FROM samples WHERE id = ?", [sample_id]).fetchone()
        if row is None:
            raise StoreError(f"no sample with id {sample_id}")
        return sample_from_row(row)

    def update_sample_depth(self, sample_id: int, depth: str, depth_encoding: str) -> None:
        """Record an estimated depth map (the one in-place update samples allow) and refresh the
        cached depth check of the sample's revisions. A map whose size is not the sample's is refused."""
        if depth_encoding not in ENCODINGS:
            raise StoreError(f"depth_encoding: {depth_encoding!r} is not one of {', '.join(ENCODINGS)}")
        depth_rel = self._stored_path(depth, "depth")
        with self.transaction() as conn:
            current = self.get_sample(sample_id)
            try:
                with Image.open(self.resolve(depth_rel)) as img:
                    size = img.size
            except OSError as exc:
                raise StoreError(f"depth: {depth_rel} is not a readable image ({exc})") from None
            if size != (current.width, current.height):
                raise StoreError(
                    f"depth: {depth_rel} is {size[0]}×{size[1]}, sample {sample_id} is "
                    f"{current.width}×{current.height}; a map of another size is refused"
                )
            conn.execute(
                "UPDATE samples SET depth = ?, depth_encoding = ? WHERE id = ?", [depth_rel, depth_encoding, sample_id]
            )
            sample = self.get_sample(sample_id)
            for rev in self.history(sample_id):
                conn.execute(
                    "UPDATE chain_revisions SET depth_ok = ? WHERE id = ?",
                    [depth_check(rev.text, self.depth_file(sample)), rev.id],
                )
            conn.execute(
                "UPDATE sample_index SET depth_ok = (SELECT depth_ok FROM chain_revisions c"
                " WHERE c.id = sample_index.revision_id) WHERE sample_id = ?",
                [sample_id],
            )

    def datasets(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT dataset FROM sample_index ORDER BY dataset")]

    # ------------------------------------------------------------ chain revisions

    def add_revision(
        self,
        sample_id: int,
        chain: Chain | str,
        *,
        origin: str,
        author: str,
        run_id: str | None = None,
        parent: int | None = None,
        note: str | None = None,
        expected_rev: int | None = None,
        extra_problems: list[str] | None = None,
        analysis: ChainAnalysis | None = None,
    ) -> ChainRevision:
        """Append a revision. Raw text is parsed leniently and kept beside its canonical text; the
        revision is valid when the canonical text passes `validate_chain` and nothing was skipped.
        With `expected_rev` (an edit made against that current revision; 0 for a sample that had
        no chain) a sample whose current revision changed meanwhile raises ConflictError.
        `extra_problems` (found by the caller, e.g. a generator's plan check) make it invalid too.
        `analysis` is `analyse_chain(chain, …, extra_problems)` when the caller computed it
        already (in a worker process, say)."""
        if origin not in ORIGINS:
            raise StoreError(f"origin: {origin!r} is not one of {', '.join(ORIGINS)}")
        if origin in RUN_ORIGINS and not run_id:
            raise StoreError(f"origin: a {origin} revision belongs to a run; pass run_id")
        if not author:
            raise StoreError("author: must not be empty")
        if analysis is None:
            sample = self.get_sample(sample_id)
            analysis = analyse_or_keep(chain, sample.gt_boxes, self.depth_file(sample), extra_problems)
        if note is not None:
            note = redact(clean_text(note))
        with self.transaction() as conn:
            sample = self.get_sample(sample_id)
            if run_id is not None and conn.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone() is None:
                raise StoreError(f"run_id: no run {run_id!r}")
            last = conn.execute(
                "SELECT COALESCE(MAX(rev), 0) FROM chain_revisions WHERE sample_id = ?", [sample_id]
            ).fetchone()[0]
            if expected_rev is not None and (self._current_rev(sample_id) or 0) != expected_rev:
                theirs = self.current_chain(sample_id)
                if theirs is None:  # an edit of a revision the sample never had
                    raise StoreError(
                        f"chain of sample {sample_id}: you edited revision {expected_rev}, but the sample has no "
                        "current chain; nothing was saved"
                    )
                raise ConflictError(
                    f"chain of sample {sample_id} was changed by someone else: you edited revision {expected_rev}, "
                    f"the current one is {theirs.rev} ({theirs.origin} by {theirs.author} at {theirs.created_at}); "
                    "nothing was saved",
                    theirs,
                )
            if parent is None and origin in CURATED_ORIGINS:
                parent = self._current_rev(sample_id)
            return self._insert_revision(
                sample, analysis, rev=last + 1, parent=parent, origin=origin, author=author, run_id=run_id, note=note
            )

    def _insert_revision(
        self,
        sample: Sample,
        a: ChainAnalysis,
        *,
        rev: int,
        parent: int | None,
        origin: str,
        author: str,
        run_id: str | None,
        note: str | None,
    ) -> ChainRevision:
        created_at = now()
        cur = self.conn.execute(
            _INSERT_REVISION,
            _revision_row(
                sample.id,
                a,
                rev=rev,
                parent=parent,
                origin=origin,
                author=author,
                run_id=run_id,
                note=note,
                created_at=created_at,
            ),
        )
        assert cur.lastrowid is not None  # set by every INSERT
        return ChainRevision(
            cur.lastrowid,
            sample.id,
            rev,
            parent,
            origin,
            author,
            created_at,
            a.chain,
            a.text,
            a.raw_text,
            not a.problems,
            a.problems,
            run_id,
            note,
            a.n_steps,
            a.final_hiou,
            _bool(a.depth_ok),
        )

    def _current_rev(self, sample_id: int) -> int | None:
        """From the revisions themselves, so that it holds inside `deferred_index` too."""
        curated = ",".join("?" * len(CURATED_ORIGINS))
        return self.conn.execute(
            f"SELECT MAX(rev) FROM chain_revisions WHERE sample_id = ? AND origin IN ({curated})",
            [sample_id, *CURATED_ORIGINS],
        ).fetchone()[0]

    def depth_file(self, sample: Sample) -> tuple[str, str] | None:
        """(absolute path, encoding) of the sample's exact depth map if the file exists: the one
        rule for depth checks and rewards. `meta.depth_map` when there is one, else the depth image."""
        source = depth_source(sample)
        if source is None:
            return None
        path = self._absolute(source[0])
        return (path, source[1]) if os.path.isfile(path) else None

    def model_depth_image(self, sample: Sample) -> Path:
        """The depth picture a model is shown for `sample` (FORMATS §2), for every origin: its
        depth image when that is a `spectral_r` picture, else the `spectral_r` rendering of its
        exact map, written once beside the map (`sif.depth.spectral_r_file`) and reused.
        StoreError when the sample has no depth map on disk; OSError when the rendering cannot
        be written."""
        if sample.depth and sample.depth_encoding == "spectral_r":
            own = Path(self._absolute(sample.depth))
            if own.is_file():
                return own
        exact = self.depth_file(sample)
        if exact is None:
            what = "has no depth map" if depth_source(sample) is None else "has no depth map on disk"
            raise StoreError(f"sample {sample.id} {what}")
        return spectral_r_file(*exact)

    def depth_convention(self, dataset: str) -> dict | None:
        """How the dataset's gray depth pictures are read (`encoding`) and the evidence, if recorded."""
        row = self.conn.execute("SELECT * FROM depth_conventions WHERE dataset = ?", [dataset]).fetchone()
        return None if row is None else {**dict(row), "evidence": json.loads(row["evidence"])}

    def record_depth_convention(self, dataset: str, encoding: str, evidence: dict) -> None:
        if encoding not in ENCODINGS:
            raise StoreError(f"depth_encoding: {encoding!r} is not one of {', '.join(ENCODINGS)}")
        with self.transaction(savepoint=False) as conn:
            conn.execute(
                "INSERT INTO depth_conventions (dataset, encoding, evidence, decided_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (dataset) DO UPDATE SET encoding = excluded.encoding, evidence = excluded.evidence,"
                " decided_at = excluded.decided_at",
                [dataset, encoding, _dumps(evidence), now()],
            )

    @staticmethod
    def _revision(row) -> ChainRevision:
        return ChainRevision(
            id=row["id"],
            sample_id=row["sample_id"],
            rev=row["rev"],
            parent=row["parent"],
            origin=row["origin"],
            author=row["author"],
            created_at=row["created_at"],
            chain=Chain.from_json(json.loads(row["chain"])),
            text=row["text"],
            raw_text=row["raw_text"],
            valid=bool(row["valid"]),
            problems=json.loads(row["problems"]),
            run_id=row["run_id"],
            note=row["note"],
            n_steps=row["n_steps"],
            final_hiou=row["final_hiou"],
            depth_ok=_bool(row["depth_ok"]),
        )

    def current_chain(self, sample_id: int) -> ChainRevision | None:
        """The latest `imported`/`generated`/`edited` revision: the chain under curation."""
        row = self.conn.execute(
            "SELECT c.* FROM sample_index i JOIN chain_revisions c ON c.id = i.revision_id WHERE i.sample_id = ?",
            [sample_id],
        ).fetchone()
        return None if row is None else self._revision(row)

    def get_revision(self, sample_id: int, rev: int) -> ChainRevision | None:
        row = self.conn.execute(
            "SELECT * FROM chain_revisions WHERE sample_id = ? AND rev = ?", [sample_id, rev]
        ).fetchone()
        return None if row is None else self._revision(row)

    def history(self, sample_id: int) -> list[ChainRevision]:
        """Every revision of every origin, oldest first."""
        rows = self.conn.execute("SELECT * FROM chain_revisions WHERE sample_id = ? ORDER BY rev", [sample_id])
        return [self._revision(r) for r in rows]

    def run_revisions(self, sample_id: int, run_id: str | None = None) -> list[ChainRevision]:
        """The sample's rollout/prediction revisions (of one run, if given), oldest first."""
        sql = "SELECT * FROM chain_revisions WHERE sample_id = ? AND origin IN ('rollout', 'prediction')"
        params: list = [sample_id]
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        return [self._revision(r) for r in self.conn.execute(sql + " ORDER BY rev", params)]

    def run_predictions(self, run_id: str) -> dict[int, str]:
        """sample id -> the latest prediction text of run `run_id`, as the model wrote it (one
        query for a whole eval run: what resume skips and what scoring reads)."""
        rows = self.conn.execute(
            "SELECT sample_id, COALESCE(raw_text, text) FROM chain_revisions"
            " WHERE run_id = ? AND origin = 'prediction' ORDER BY sample_id, rev",
            [run_id],
        )
        return {int(sid): text for sid, text in rows}

    def revert(self, sample_id: int, rev: int, *, author: str, expected_rev: int | None = None) -> ChainRevision:
        """Make revision `rev` current again, as a new `edited` revision (history is never rewritten);
        with `expected_rev`, refused (ConflictError) when the current revision is another one."""
        old = self.get_revision(sample_id, rev)
        if old is None:
            raise StoreError(f"sample {sample_id} has no revision {rev}")
        return self.add_revision(
            sample_id,
            old.raw_text if old.raw_text is not None else old.text,
            origin="edited",
            author=author,
            parent=rev,
            note=f"revert to revision {rev}",
            expected_rev=expected_rev,
        )

    # ------------------------------------------------------------ reviews

    def get_review(self, sample_id: int) -> Review:
        """The sample's review; version 0 and status pending when it was never reviewed."""
        row = self.conn.execute("SELECT * FROM reviews WHERE sample_id = ?", [sample_id]).fetchone()
        if row is None:
            self.get_sample(sample_id)
            return Review(sample_id, "pending", "", "", "", 0)
        return _review(row)

    def review_log(self, sample_id: int) -> list[Review]:
        """Every review the sample had (decisions and reopenings), oldest first."""
        rows = self.conn.execute("SELECT * FROM review_log WHERE sample_id = ? ORDER BY id", [sample_id])
        return [_review(r) for r in rows]

    def set_review(
        self,
        sample_id: int,
        status: str,
        *,
        reviewer: str,
        note: str = "",
        expected_version: int,
        rev: int | None = None,
    ) -> Review:
        """Save a review made against `expected_version` of the review and revision `rev` of the
        chain (0: the sample has no chain; None: whatever is current, for scripts). A stale
        version raises ConflictError, a `rev` that is not the current revision
        StaleRevisionError; nothing is saved then."""
        if status not in STATUSES:
            raise StoreError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        if not reviewer:
            raise StoreError("reviewer: must not be empty")
        with self.transaction() as conn:
            current = self.get_review(sample_id)
            if current.version != expected_version:
                who = f" ({current.status} by {current.reviewer} at {current.updated_at})" if current.version else ""
                raise ConflictError(
                    f"review of sample {sample_id} was changed by someone else: you edited version "
                    f"{expected_version}, the store holds version {current.version}{who}; reload and try again",
                    current,
                )
            current_rev = self._current_rev(sample_id) or 0
            if rev is not None and rev != current_rev:
                chain = self.current_chain(sample_id)
                now_is = f"{chain.rev} ({chain.origin} by {chain.author})" if chain else "none"
                raise StaleRevisionError(
                    f"sample {sample_id}: you reviewed revision {rev}, but the current revision is {now_is}; "
                    "nothing was saved",
                    chain,
                )
            review = Review(sample_id, status, reviewer, note or "", now(), current.version + 1, current_rev)
            conn.execute(
                "INSERT INTO reviews (sample_id, status, reviewer, note, updated_at, version, rev)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sample_id) DO UPDATE SET status = excluded.status,"
                " reviewer = excluded.reviewer, note = excluded.note, updated_at = excluded.updated_at,"
                " version = excluded.version, rev = excluded.rev",
                [sample_id, status, reviewer, review.note, review.updated_at, review.version, current_rev],
            )
        return review

    # ------------------------------------------------------------ drafts

    def get_draft(self, curator: str, sample_id: int) -> StoredDraft | None:
        row = self.conn.execute(
            "SELECT * FROM drafts WHERE curator = ? AND sample_id = ?", [curator, sample_id]
        ).fetchone()
        if row is None:
            return None
        return StoredDraft(
            row["curator"], row["sample_id"], row["base_rev"], json.loads(row["draft"]), row["step"], row["updated_at"]
        )

    def put_draft(self, curator: str, sample_id: int, *, base_rev: int | None, data: dict, step: int = 0) -> None:
        """Keep `curator`'s unsaved edit of the sample (one per curator and sample; replaces the last)."""
        if not curator:
            raise StoreError("curator: must not be empty")
        with self.transaction(savepoint=False) as conn:
            conn.execute(
                "INSERT INTO drafts (curator, sample_id, base_rev, draft, step, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (curator, sample_id) DO UPDATE SET base_rev = excluded.base_rev,"
                " draft = excluded.draft, step = excluded.step, updated_at = excluded.updated_at",
                [curator, sample_id, base_rev, _dumps(data), int(step), now()],
            )

    def drop_draft(self, curator: str, sample_id: int) -> None:
        with self.transaction(savepoint=False) as conn:
            conn.execute("DELETE FROM drafts WHERE curator = ? AND sample_id = ?", [curator, sample_id])

    def drafted(self, curator: str, sample_ids: list[int]) -> set[int]:
        """Which of `sample_ids` `curator` has an unsaved draft of."""
        if not sample_ids:
            return set()
        marks = ",".join("?" * len(sample_ids))
        rows = self.conn.execute(
            f"SELECT sample_id FROM drafts WHERE curator = ? AND sample_id IN ({marks})", [curator, *sample_ids]
        )
        return {r[0] for r in rows}

    # ------------------------------------------------------------ queries

    def _filters(self, **kw) -> _Filters:
        """The WHERE terms of the filters; a bad value raises a StoreError naming its filter."""
        unknown = sorted(set(kw) - set(_FILTER_NAMES))
        if unknown:
            raise StoreError(f"{unknown[0]}: not a filter (filters: {', '.join(_FILTER_NAMES)})")
        f = _Filters(**kw)
        if f.status is not None:
            for status in [f.status] if isinstance(f.status, str) else f.status:
                if status not in STATUSES:
                    raise StoreError(f"status: {brief(repr(status))} is not one of {', '.join(STATUSES)}")
            _one_or_many("i.status", f.status, f)
        if f.dataset is not None:
            _one_or_many("i.dataset", f.dataset, f)
        if f.split is not None:
            if f.split not in SPLITS:
                raise StoreError(f"split: {brief(repr(f.split))} is not one of {', '.join(SPLITS)}")
            f.where.append("i.split = ?")
            f.params.append(f.split)
        if f.valid is not None:
            f.where.append("i.valid = ?")
            f.params.append(int(bool(f.valid)))
        if f.origin is not None:
            if f.origin == "none":
                f.where.append("i.origin IS NULL")
            elif f.origin in CURATED_ORIGINS:
                f.where.append("i.origin = ?")
                f.params.append(f.origin)
            elif f.origin in RUN_ORIGINS:
                f.where.append(
                    "EXISTS (SELECT 1 FROM chain_revisions c WHERE c.origin = ? AND c.sample_id = i.sample_id)"
                )
                f.params.append(f.origin)
            else:
                raise StoreError(f"origin: {f.origin!r} is not one of none, {', '.join(ORIGINS)}")
        if f.run_id is not None:
            if self.conn.execute("SELECT 1 FROM runs WHERE id = ?", [f.run_id]).fetchone() is None:
                raise StoreError(f"run: no run {brief(repr(f.run_id))}")
            f.where.append("EXISTS (SELECT 1 FROM chain_revisions c WHERE c.run_id = ? AND c.sample_id = i.sample_id)")
            f.params.append(f.run_id)
        if f.text:
            f.where.append(
                "(i.sample_id IN (SELECT rowid FROM samples_fts WHERE samples_fts MATCH ?)"
                " OR i.sample_id IN (SELECT id FROM samples WHERE source_id = ?))"
            )
            f.params.extend([fts_query(f.text), f.text.strip()])
        bounds = {name: _unit_number(name, getattr(f, name)) for name in ("hiou_min", "hiou_max")}
        if None not in bounds.values() and bounds["hiou_min"] > bounds["hiou_max"]:  # type: ignore[operator]
            raise StoreError(f"hiou_min: {bounds['hiou_min']} is above hiou_max {bounds['hiou_max']}")
        for name, op in (("hiou_min", ">="), ("hiou_max", "<=")):
            if bounds[name] is not None:
                f.where.append(f"i.final_hiou {op} ?")
                f.params.append(bounds[name])
        if f.depth_ok is not None:
            f.where.append("i.depth_ok = ?")
            f.params.append(int(bool(f.depth_ok)))
        if f.ids is not None:
            bad = [v for v in f.ids if not isinstance(v, int) or isinstance(v, bool)]
            if bad:
                raise StoreError(f"ids: {brief(repr(bad[0]))} is not a sample id")
            f.where.append("i.sample_id IN (SELECT value FROM json_each(?))")
            f.params.append(_dumps(list(f.ids)))
        if f.draft_of is not None:
            f.where.append("i.sample_id IN (SELECT sample_id FROM drafts WHERE curator = ?)")
            f.params.append(f.draft_of)
        return f

    @staticmethod
    def _where(f: _Filters) -> str:
        return (" WHERE " + " AND ".join(f.where)) if f.where else ""

    def query(
        self, *, sort: str = "id", descending: bool = False, limit: int = 50, offset: int = 0, **filters
    ) -> list[SampleRow]:
        """Samples matching every given filter, sorted (NULLs last) and paged.

        Filters (all optional): `status`, `dataset` (one or a list), `valid`, `split`, `origin` (the
        current chain's origin, "none": no chain yet; `rollout`/`prediction` match samples that
        have such revisions), `run_id`, `text` (full-text search over question, answer and chain),
        `draft_of` (the samples that curator has an unsaved draft of), `hiou_min`/`hiou_max` (the
        final-step HIoU between 0 and 1), `depth_ok`, `ids` (these sample ids). `text` also matches
        a source id exactly (`synth-000007`). A bad value raises a StoreError naming its filter.
        Sort `priority` (`db.team.refresh_priority`) puts the samples the model gets most wrong first."""
        order = _Order(sort, descending)
        f = self._filters(**filters)
        if sort == "priority" and not self.read_only:
            team.refresh_priority(self)
        sql = (
            "SELECT i.sample_id, i.dataset, s.question, s.answer, i.status, i.valid, i.origin, i.rev, i.n_steps,"
            " i.final_hiou, i.depth_ok, i.created_at FROM sample_index i JOIN samples s ON s.id = i.sample_id"
            f"{self._where(f)} ORDER BY {order.sql()} LIMIT ? OFFSET ?"
        )
        rows = self.conn.execute(sql, [*f.params, int(limit), int(offset)])
        return [
            SampleRow(r[0], r[1], r[2], r[3], r[4], _bool(r[5]), r[6], r[7], r[8], r[9], _bool(r[10]), r[11])
            for r in rows
        ]

    def neighbour(self, sample_id: int, delta: int, *, sort: str = "id", descending: bool = False, **filters):
        """The id of the matching sample `delta` places after (or, negative, before) `sample_id` in
        the order `query` gives, or None past the ends. `sample_id` itself need not match the
        filters (a sample just reviewed out of a status filter still marks the position)."""
        if delta == 0:
            return sample_id
        order, f = self._from(sample_id, sort, descending, forward=delta > 0, **filters)
        sql = (
            f"SELECT i.sample_id FROM sample_index i{self._where(f)} ORDER BY {order.sql(reverse=delta < 0)}"
            " LIMIT 1 OFFSET ?"
        )
        row = self.conn.execute(sql, [*f.params, abs(delta) - 1]).fetchone()
        return None if row is None else row[0]

    def position(self, sample_id: int, *, sort: str = "id", descending: bool = False, **filters) -> int:
        """How many matching samples come before `sample_id` in the order `query` gives."""
        _, f = self._from(sample_id, sort, descending, forward=False, **filters)
        return int(self.conn.execute(f"SELECT COUNT(*) FROM sample_index i{self._where(f)}", f.params).fetchone()[0])

    def _from(self, sample_id: int, sort: str, descending: bool, *, forward: bool, **filters):
        """The order, and the filters plus "after (or before) `sample_id` in that order"."""
        order = _Order(sort, descending)
        key = self.conn.execute(
            f"SELECT {', '.join(order.keys)} FROM sample_index i WHERE i.sample_id = ?", [sample_id]
        ).fetchone()
        if key is None:
            raise StoreError(f"no sample with id {sample_id}")
        f = self._filters(**filters)
        f.where.append(order.after(forward))
        f.params.extend(key)
        return order, f

    def count(self, **filters) -> int:
        """How many samples match the filters (those of `query`)."""
        f = self._filters(**filters)
        return int(self.conn.execute(f"SELECT COUNT(*) FROM sample_index i{self._where(f)}", f.params).fetchone()[0])

    def samples_without_chain(
        self, *, dataset=None, exclude_run: str | None = None, retry_invalid: bool = False, limit: int | None = None
    ) -> list[int]:
        """Ids of present samples with ground-truth boxes and no current chain (or, with
        `retry_invalid`, an invalid generated one), none of which has a revision or a recorded
        failure in `exclude_run`."""
        f = self._filters(dataset=dataset)
        f.where.append(
            "(i.origin IS NULL OR (i.origin = 'generated' AND i.valid = 0))" if retry_invalid else "i.origin IS NULL"
        )
        f.where.append("s.missing = 0 AND s.gt_boxes != '[]'")
        if exclude_run is not None:
            f.where.append(
                "NOT EXISTS (SELECT 1 FROM chain_revisions c WHERE c.run_id = ? AND c.sample_id = i.sample_id)"
                " AND NOT EXISTS (SELECT 1 FROM run_failures f WHERE f.run_id = ? AND f.sample_id = i.sample_id)"
            )
            f.params.extend([exclude_run, exclude_run])
        sql = (
            f"SELECT i.sample_id FROM sample_index i JOIN samples s ON s.id = i.sample_id{self._where(f)}"
            " ORDER BY i.sample_id LIMIT ?"
        )
        return [r[0] for r in self.conn.execute(sql, [*f.params, -1 if limit is None else int(limit)])]

    # ------------------------------------------------------------ the team (db/team.py)

    def claim(self, sample_id: int, curator: str, ttl_s: float = 300.0) -> str | None:
        return team.claim(self, sample_id, curator, ttl_s)

    def release_claim(self, sample_id: int, curator: str) -> None:
        team.release_claim(self, sample_id, curator)

    def claimed_by_others(self, curator: str) -> set[int]:
        return team.claimed_by_others(self, curator)

    def decided_since(self, ts: float) -> set[int]:
        return team.decided_since(self, ts)

    def decide_many(
        self, status: str, reviewer: str, /, *, ids: list[int] | None = None, note: str = "", **filters
    ) -> team.Batch:
        """`status` and `reviewer` are positional: a `status=` keyword is the filter."""
        return team.decide_many(self, status, reviewer, ids=ids, note=note, **filters)

    def undo_batch(self, batch_id: int, reviewer: str = "undo") -> int:
        return team.undo_batch(self, batch_id, reviewer)

    def batches(self) -> list[dict]:
        return team.batches(self)

    def assign(self, curator: str, n: int, *, by: str = "", **filters) -> int:
        return team.assign(self, curator, n, by=by, **filters)

    def queue(self, curator: str, limit: int | None = None) -> list[int]:
        return team.queue(self, curator, limit)

    def qa_sample(
        self, fraction: float, seed: int, reviewers: list[str] | None = None, statuses: tuple[str, ...] = ("accepted",)
    ) -> list[tuple[int, str]]:
        return team.qa_sample(self, fraction, seed, reviewers, statuses=statuses)

    def blind_review(self, sample_id: int, curator: str) -> bool:
        return team.blind_review(self, sample_id, curator)

    def second_review(self, sample_id: int, curator: str, status: str, *, note: str = "", chain=None) -> None:
        team.second_review(self, sample_id, curator, status, note=note, chain=chain)

    def mark_gold(self, ids: list[int], status: str, chain=None) -> int:
        return team.mark_gold(self, ids, status, chain)

    def qa_report(self) -> dict[str, dict]:
        return team.qa_report(self)

    def refresh_priority(self, *, everything: bool = False) -> int:
        return team.refresh_priority(self, everything=everything)

    def add_user(self, name: str, role: str, password: str) -> None:
        team.StoreAccounts(self).add_user(name, role, password)

    def verify_user(self, name: str, password: str) -> str | None:
        return team.StoreAccounts(self).verify_user(name, password)

    def users(self) -> list[tuple[str, str]]:
        return team.StoreAccounts(self).users()

    # ------------------------------------------------------------ runs

    def create_run(self, kind: str, config: dict, *, name: str | None = None) -> str:
        """Record a generation/evaluation/inference run; returns its id."""
        if kind not in RUN_KINDS:
            raise StoreError(f"kind: {kind!r} is not one of {', '.join(RUN_KINDS)}")
        stamp = now()
        run_id = f"{_RUN_PREFIX[kind]}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, kind, name, config, status, created_at, updated_at, metrics)"
                " VALUES (?, ?, ?, ?, 'created', ?, ?, '{}')",
                [run_id, kind, name and clean_text(name), _config_json(config), stamp, stamp],
            )
        return run_id

    def update_run(
        self, run_id: str, *, status: str | None = None, metrics: dict | None = None, config: dict | None = None
    ) -> None:
        """Set the status, merge `metrics` into the run's metrics and/or replace its config (a
        resumed run that was allowed to change a setting records the one it now runs with)."""
        with self.transaction() as conn:
            run = self.get_run(run_id)
            merged = {**run["metrics"], **(metrics or {})}
            status = status or run["status"]
            stamp = now()
            finished = stamp if status in TERMINAL_RUN_STATUSES else run["finished_at"]
            conn.execute(
                "UPDATE runs SET status = ?, metrics = ?, config = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                [
                    status,
                    _config_json(merged),
                    _config_json(run["config"] if config is None else config),
                    stamp,
                    finished,
                    run_id,
                ],
            )

    def record_failure(self, run_id: str, sample_id: int, stage: str, error: str) -> None:
        """Record that run `run_id` could not process sample `sample_id` (at `stage`, why): the
        failure stays with the sample, and a resumed run does not retry it."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO run_failures (run_id, sample_id, stage, error, created_at) VALUES (?, ?, ?, ?, ?)",
                [run_id, sample_id, stage, redact(clean_text(error)), now()],
            )

    def run_failures(self, run_id: str) -> dict[int, str]:
        """sample id -> why run `run_id` could not process it."""
        rows = self.conn.execute("SELECT sample_id, stage, error FROM run_failures WHERE run_id = ?", [run_id])
        return {int(sid): f"{stage}: {error}" for sid, stage, error in rows}

    def get_run(self, run_id: str) -> dict:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r}")
        return _run(row)

    def list_runs(self, kind: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM runs", []
        if kind is not None:
            sql, params = sql + " WHERE kind = ?", [kind]
        return [_run(r) for r in self.conn.execute(sql + " ORDER BY created_at DESC, id DESC", params)]

    # ------------------------------------------------------------ eval records

    def set_eval_records(self, run_id: str, rows: list[dict]) -> None:
        """Replace the per-record scores of eval run `run_id`; each row has `sample_id`, `id`
        (the benchmark record id), `category`, `failed`, `correct` (None: no verdict) and its scores."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM eval_records WHERE run_id = ?", [run_id])
            conn.executemany(
                "INSERT INTO eval_records (run_id, sample_id, record_id, category, failed, correct, scores)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        run_id,
                        r["sample_id"],
                        r["id"],
                        r.get("category") or "",
                        int(bool(r.get("failed"))),
                        None if r.get("correct") is None else int(bool(r["correct"])),
                        json.dumps(r, ensure_ascii=False, default=str),
                    ]
                    for r in rows
                ],
            )

    def eval_records(
        self, run_id: str, *, wrong_only: bool = False, category: str | None = None, limit: int | None = None
    ) -> list[dict]:
        """The per-record scores of eval run `run_id` in sample order (`wrong_only`: those judged
        wrong, failed ones included), as `set_eval_records` stored them."""
        sql, params = "SELECT scores FROM eval_records WHERE run_id = ?", [run_id]
        if wrong_only:
            sql += " AND correct = 0"
        if category is not None:
            sql, params = sql + " AND category = ?", [*params, category]
        sql += " ORDER BY sample_id LIMIT ?"
        return [json.loads(r[0]) for r in self.conn.execute(sql, [*params, -1 if limit is None else int(limit)])]


def _read_only_reason(path: Path) -> str | None:
    """Why this process cannot write the store at `path`, or None. SQLite in WAL mode writes
    `-wal` and `-shm` files beside the store, so its folder must be writable too (unless both
    exist and are writable)."""
    if not path.exists():
        return None
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    sidecars = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    if not os.access(path.parent, os.W_OK) and not all(os.access(p, os.W_OK) for p in sidecars):
        return f"its folder {path.parent} is read-only"
    return None


def _frozen(path: Path) -> bool:
    """True when nothing can change the store: its folder is read-only and no `-wal` file can be
    written. SQLite then reads it without the shared-memory file it could not create."""
    wal = Path(f"{path}-wal")
    return not os.access(path.parent, os.W_OK) and not (wal.exists() and os.access(wal, os.W_OK))


_INSERT_SAMPLE = (
    "INSERT INTO samples (id, dataset, source_id, image, depth, depth_encoding, width, height, question,"
    " answer, gt_boxes, split, missing, meta, content_hash, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_REVISION = (
    "INSERT INTO chain_revisions (sample_id, rev, parent, origin, author, created_at, chain, text,"
    " raw_text, valid, problems, run_id, note, n_steps, final_hiou, depth_ok, search_text)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _sample_row(s: Sample, digest: str) -> list:
    return [
        s.id,
        s.dataset,
        s.source_id,
        s.image,
        s.depth,
        s.depth_encoding,
        s.width,
        s.height,
        s.question,
        s.answer,
        json.dumps(s.gt_boxes),
        s.split,
        int(s.missing),
        _dumps(s.meta),
        digest,
        s.created_at,
    ]


def _revision_row(
    sample_id: int,
    a: ChainAnalysis,
    *,
    rev: int,
    parent: int | None,
    origin: str,
    author: str,
    run_id: str | None,
    note: str | None,
    created_at: str,
) -> list:
    """The `_INSERT_REVISION` values of a revision with its derived metrics (final-step HIoU, depth check, steps)."""
    return [
        sample_id,
        rev,
        parent,
        origin,
        author,
        created_at,
        a.chain_json,
        a.text,
        a.raw_text,
        int(not a.problems),
        _dumps(a.problems),
        run_id,
        note,
        a.n_steps,
        a.final_hiou,
        a.depth_ok,
        a.search_text,
    ]


def sample_from_row(row) -> Sample:
    return Sample(
        id=row["id"],
        dataset=row["dataset"],
        source_id=row["source_id"],
        image=row["image"],
        depth=row["depth"],
        depth_encoding=row["depth_encoding"],
        width=row["width"],
        height=row["height"],
        question=row["question"],
        answer=row["answer"],
        gt_boxes=json.loads(row["gt_boxes"]),
        split=row["split"],
        missing=bool(row["missing"]),
        meta=json.loads(row["meta"]),
        created_at=row["created_at"],
    )


def _config_json(config: dict) -> str:
    """A run's config or metrics as stored: redacted, and ASCII JSON (text of any kind round-trips)."""
    return json.dumps(redact_config(config), default=str)


def _review(row) -> Review:
    return Review(
        row["sample_id"], row["status"], row["reviewer"], row["note"], row["updated_at"], row["version"], row["rev"]
    )


def _run(row) -> dict:
    out = dict(row)
    out["config"] = json.loads(out["config"])
    out["metrics"] = json.loads(out["metrics"])
    return out
