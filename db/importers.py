"""Importers: SIF-50K JSON (released or `sif synth`), Visual-CoT (raw JSONL or LLaVA-style JSON)
and TallyQA into the store.

Every importer is idempotent (samples are keyed by a content hash; a chain already imported is
not added again), reports bad records by index and field without stopping, and keeps the good
ones: whatever goes wrong with one record (its conversion, its files, its analysis, storing it)
is that record's error. Types are strict: a box is a list of 4 numbers (never a string), a size
a whole number of pixels, a split one of `db.schema.SPLITS`. Records are converted to
`Incoming` first, then written in batches of one transaction.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

from common.processes import exit_with_parent
from db.depth_convention import settle_depth_encodings
from db.recipes import LEFT_OUT, apply_recipe
from db.store import (
    DEPTH_MAP_ENCODING_KEY,
    DEPTH_MAP_KEY,
    MAX_SIDE,
    ChainAnalysis,
    Store,
    StoreError,
    analyse_chain,
    brief,
    check_boxes,
)
from sif.errors import RecordError
from sif.geometry import four_numbers, to_normalized
from sif.records import read_records

BATCH = 500
POOL_MIN = 2000  # chains; below this, worker start-up costs more than it saves
# What one record's data can break while it is stored (text SQLite cannot encode, a number it
# cannot hold, ...): its batch is then written record by record, and the culprit reported.
RECORD_FAILURES = (ValueError, TypeError, OverflowError, RecursionError, sqlite3.IntegrityError, sqlite3.InterfaceError)


@dataclass
class Incoming:
    """One record converted to what `Store.add_sample` takes, plus its chain text if it has one.
    Paths are absolute; `size_from` lists files to read the size from when width/height are unknown."""

    sample: dict
    chain: str | None = None
    size_from: tuple[Path, ...] = ()


@dataclass
class ImportReport:
    records: int = 0
    added: int = 0
    existing: int = 0
    chains_added: int = 0
    missing_images: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the data was read: depth conventions, selections

    def summary(self) -> str:
        return (
            f"{self.records} records: {self.added} samples added, {self.existing} already present, "
            f"{self.chains_added} chains added, {self.missing_images} with missing images, "
            f"{len(self.errors)} errors"
        )


def import_records(
    store: Store,
    records: Iterable,
    convert: Callable[[dict], Incoming],
    *,
    allow_missing: bool = False,
    progress: bool = True,
    author: str = "import",
    description: str = "importing",
    workers: int | None = None,
) -> ImportReport:
    """Convert and store every record; a bad record is reported (index and field) and skipped.

    Chains are parsed, validated and scored (`analyse_chain`) in `workers` processes (default:
    the CPU count, for imports of at least POOL_MIN chains) while this process writes batches."""
    report = ImportReport()
    items: list[tuple[int, Incoming]] = []
    for index, record in enumerate(records):
        if record is LEFT_OUT:  # not selected by the recipe
            continue
        report.records += 1
        try:
            if isinstance(record, RecordError):  # unreadable in the file
                raise record
            if not isinstance(record, dict):
                raise RecordError(f"expected a JSON object, got {type(record).__name__}", field="record")
            item = convert(record)
            _check_files(store, item, allow_missing, report)
        except (RecordError, StoreError) as exc:
            report.errors.append(f"record {index}: {exc}")
            continue
        except Exception as exc:  # a record that breaks a converter is still only that record's problem
            report.errors.append(f"record {index}: cannot be imported ({type(exc).__name__}: {brief(str(exc), 120)})")
            continue
        items.append((index, item))
    report.notes += settle_depth_encodings(store, [(item.sample, item.chain) for _, item in items])
    with _analyser(store, [item for _, item in items], workers) as analyses:
        rows: Iterable[tuple[tuple[int, Incoming], ChainAnalysis | None]] = zip(items, analyses)
        if progress:
            from rich.progress import track

            rows = track(rows, total=len(items), description=description, transient=True)
        batch: list = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                _write(store, batch, author, report)
                batch = []
        _write(store, batch, author, report)
    report.errors.sort(key=lambda line: int(line.split()[1].rstrip(":")))
    return report


@contextmanager
def _analyser(store: Store, items: list[Incoming], workers: int | None) -> Iterator[Iterable[ChainAnalysis | None]]:
    """An iterator of analyses in item order: from a pool of forked processes, or None each
    (analysed inline). Forking is only safe with no other thread alive (a lock held elsewhere
    would stay locked in the child), and spawning would re-run the caller's main module, so a
    threaded caller such as the workbench analyses inline."""
    n_chains = sum(item.chain is not None for item in items)
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    forkable = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
    if workers <= 1 or n_chains < POOL_MIN or not forkable:
        yield (None for _ in items)
        return
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_worker,
        initargs=(os.getpid(), store, items),
    ) as pool:
        yield pool.map(_analyse_item, range(len(items)), chunksize=64)


_WORK: tuple = ()  # (store, items) in an analysis worker: inherited through fork, never pickled


def _start_worker(parent: int, store: Store, items: list[Incoming]) -> None:
    global _WORK
    exit_with_parent(parent)  # a killed import leaves no worker behind
    gc.freeze()  # the inherited heap is no garbage: keep the collector (and its page copies) off it
    _WORK = (store, items)


def _analyse_item(k: int) -> ChainAnalysis | None:
    """Worker side: item k's chain analysed; None without a chain or for a record the store will
    refuse anyway (bad boxes, say)."""
    store, items = _WORK
    item = items[k]
    if item.chain is None:
        return None
    s = item.sample
    depth = SimpleNamespace(meta=s.get("meta") or {}, depth=s.get("depth"), depth_encoding=s.get("depth_encoding"))
    try:
        return analyse_chain(item.chain, check_boxes(s.get("gt_boxes")), store.depth_file(depth))
    except Exception:  # the main process analyses it again and reports what goes wrong
        return None


def _check_files(store: Store, item: Incoming, allow_missing: bool, report: ImportReport) -> None:
    """Paths inside the data root first, then files present (or allowed missing), then the size.
    Each file is looked for where the store will say it is: its path is made absolute by the
    same computation that stores it, so what was checked is what later commands open."""
    sample = item.sample
    where = {}
    for key, name in (("image", "image"), ("depth", "depth_image")):
        if sample.get(key) is not None:
            try:
                where[str(sample[key])] = sample[key] = str(store.resolve(store.relative(sample[key])))
            except StoreError as exc:
                raise RecordError(str(exc), field=name) from None
    item.size_from = tuple(Path(where.get(str(p), p)) for p in item.size_from)
    image = Path(sample["image"])
    if not image.is_file():
        if not allow_missing:
            raise RecordError(
                f"file not found: {image} (use --allow-missing to import it marked as missing)", field="image"
            )
        sample["missing"] = True
        report.missing_images += 1
    if sample.get("width") is None or sample.get("height") is None:
        sample["width"], sample["height"] = _size(item.size_from or (image,))
    depth = sample.get("depth")
    if depth is not None and not Path(depth).is_file() and not allow_missing:
        raise RecordError(f"file not found: {depth} (use --allow-missing to import it anyway)", field="depth_image")


def _size(paths: Iterable[Path]) -> tuple[int, int]:
    """Width and height from the first readable image header (PIL reads no pixels for this)."""
    for p in paths:
        try:
            with Image.open(p) as img:
                return img.size
        except (OSError, ValueError):
            continue
    raise RecordError("not in the record and no image file to read the size from", field="width")


def _write(store: Store, pending: list, author: str, report: ImportReport) -> None:
    if not pending:
        return
    try:
        results = store.import_samples(
            [(item.sample, item.chain, analysis) for (_, item), analysis in pending], author=author
        )
    except RECORD_FAILURES as exc:  # one record broke the batch's transaction (rolled back): find it
        if len(pending) == 1:
            results = [StoreError(f"cannot be stored ({type(exc).__name__}: {brief(str(exc), 120)})")]
        else:
            for row in pending:
                _write(store, [row], author, report)
            return
    for ((index, _item), _analysis), result in zip(pending, results):
        if isinstance(result, StoreError):
            report.errors.append(f"record {index}: {result}")
            continue
        _sid, created, chain_added = result
        report.added += created
        report.existing += not created
        report.chains_added += chain_added


# ---------------------------------------------------------------- helpers for converters


def require(record: dict, key: str, kind: type | tuple = str):
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError("is missing or empty", field=key)
    if not isinstance(value, kind) or isinstance(value, bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise RecordError(f"expected {names}, got {type(value).__name__}", field=key)
    return value


def _optional(record: dict, key: str, kinds: tuple[type, ...], what: str):
    """A field that may be absent, null or empty (None then); a value of another kind is an error."""
    value = record.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise RecordError(f"expected {what}, got {type(value).__name__}", field=key)
    return value


def optional_text(record: dict, key: str) -> str | None:
    return _optional(record, key, (str,), "text")


def record_id(record: dict, key: str) -> str | None:
    """A record's own id (text or a whole number), or None when it has none."""
    value = _optional(record, key, (str, int), "text or a whole number")
    return None if value is None else str(value)


def split_of(record: dict) -> str:
    """The record's split (default train); the store accepts only `SPLITS`."""
    return optional_text(record, "split") or "train"


def source_key(image: str, question: str) -> str:
    """A stable source id for records that have none: the image name and a hash of the question."""
    return f"{Path(image).name}:{hashlib.sha1(question.encode()).hexdigest()[:10]}"


def pixel_to_normalized(boxes, width: int, height: int, field_name: str) -> list[list[float]]:
    """Absolute pixel boxes → boxes normalized to the image, clipped to it."""
    out = []
    for i, box in enumerate(boxes):
        nb = to_normalized(_box_numbers(box, f"{field_name}[{i}]"), width, height)
        if not (nb[0] < nb[2] and nb[1] < nb[3]):
            raise RecordError(f"{box!r} is empty inside the {width}x{height} image", field=f"{field_name}[{i}]")
        out.append(nb)
    return out


def _box_numbers(box, field_name: str) -> list[float]:
    """A box as 4 floats, or a RecordError naming the field."""
    numbers = four_numbers(box)
    if numbers is None:
        raise RecordError(f"expected 4 numbers, got {brief(repr(box))}", field=field_name)
    return numbers


def unpad_square(box, width: int, height: int) -> list[float]:
    """A box normalized to the image padded to a square (shorter side centred, the padding an
    integer number of pixels as Visual-CoT computed it) → normalized to the original image."""
    side = max(width, height)
    x1, y1, x2, y2 = (float(v) * side for v in box)
    if width > height:
        pad = (width - height) // 2
        y1, y2 = y1 - pad, y2 - pad
    else:
        pad = (height - width) // 2
        x1, x2 = x1 - pad, x2 - pad
    return [
        min(max(x1 / width, 0.0), 1.0),
        min(max(y1 / height, 0.0), 1.0),
        min(max(x2 / width, 0.0), 1.0),
        min(max(y2 / height, 0.0), 1.0),
    ]


def _positive_int(record: dict, key: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SIDE:
        raise RecordError(
            f"must be a whole number of pixels from 1 to {MAX_SIDE}, got {brief(repr(value), 40)}", field=key
        )
    return value


def _known_size(record: dict, item_size_from: tuple[Path, ...]) -> tuple[int, int]:
    """Width/height from the record, else from the first readable file's header."""
    w, h = _positive_int(record, "width"), _positive_int(record, "height")
    if w is not None and h is not None:
        return w, h
    return _size(item_size_from)


# ---------------------------------------------------------------- SIF-50K


def assistant_text(record: dict) -> str | None:
    messages = record.get("messages")
    if messages is None:
        return None
    if not isinstance(messages, list):
        raise RecordError("expected a list of chat messages", field="messages")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            content = message.get("content")
            if not isinstance(content, str):
                raise RecordError("expected text", field="messages.assistant.content")
            return content
    return None


def sif50k_converter(root: Path, *, unpad_boxes: bool = False) -> Callable[[dict], Incoming]:
    """SIF-50K records (FORMATS §3), released or from `sif synth` (which adds id, split, width,
    height, depth_map, question_kind). `unpad_boxes` treats the ground-truth boxes as normalized
    to the square-padded image (the reference generator's slip) and corrects them, recorded in meta."""
    root = Path(root)

    def convert(record: dict) -> Incoming:
        question = require(record, "problem")
        answer = record.get("response")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = str(answer)
        if not isinstance(answer, str) or not answer.strip():
            raise RecordError("is missing or empty", field="response")
        image = root / require(record, "image")
        depth_name = optional_text(record, "depth_image")
        depth = root / depth_name if depth_name else None
        solution = require(record, "normalized_solution_round", dict)
        boxes = solution.get("bbox_3d")
        if not isinstance(boxes, list):
            raise RecordError("expected a list of boxes", field="normalized_solution_round.bbox_3d")
        boxes = _four_numbers(boxes)
        meta = {k: record[k] for k in ("question_kind",) if k in record}
        if solution.get("illegal_content"):
            meta["illegal_content"] = True
        depth_map = optional_text(record, "depth_map")
        if depth_map:
            meta[DEPTH_MAP_KEY] = str(root / depth_map)
            map_encoding = optional_text(record, "depth_map_encoding")
            if map_encoding:
                meta[DEPTH_MAP_ENCODING_KEY] = map_encoding
        size_from = tuple(p for p in (image, depth) if p is not None)
        width, height = _positive_int(record, "width"), _positive_int(record, "height")
        if unpad_boxes:
            width, height = _known_size(record, size_from)
            boxes = [unpad_square(b, width, height) for b in boxes]
            meta["box_correction"] = "unpad_square"
        sample = dict(
            dataset=require(record, "dataset"),
            source_id=record_id(record, "id") or source_key(str(record["image"]), question),
            image=str(image),
            question=question,
            answer=answer.strip(),
            gt_boxes=boxes,
            width=width,
            height=height,
            depth=str(depth) if depth else None,
            depth_encoding=optional_text(record, "depth_encoding") if depth else None,  # None: settled per dataset
            split=split_of(record),
            meta=meta,
        )
        return Incoming(sample, assistant_text(record), size_from)

    return convert


def _four_numbers(boxes) -> list[list[float]]:
    return [_box_numbers(box, f"normalized_solution_round.bbox_3d[{i}]") for i, box in enumerate(boxes)]


# ---------------------------------------------------------------- Visual-CoT

_BOX_TEXT = re.compile(r"\[\s*([-\d.eE+]+)\s*,\s*([-\d.eE+]+)\s*,\s*([-\d.eE+]+)\s*,\s*([-\d.eE+]+)\s*\]")
_COT_PROMPT = re.compile(
    r"\s*Please (?:think step by step and )?provide the bounding box coordinate of the region "
    r"that can help you answer the question better\.\s*$"
)


def viscot_converter(images: Path) -> Callable[[dict], Incoming]:
    """Visual-CoT records: the raw JSONL (pixel boxes, width/height) or the LLaVA-style JSON
    (`conversations`; one enclosing box normalized to the square-padded image, undone here)."""
    images = Path(images)

    def convert(record: dict) -> Incoming:
        if "conversations" in record:
            return _viscot_llava(record, images)
        question = require(record, "question")
        answer = str(require(record, "answer", (str, int, float))).strip()
        if not answer:
            raise RecordError("is missing or empty", field="answer")
        name = require(record, "image")
        width, height = _positive_int(record, "width"), _positive_int(record, "height")
        if width is None or height is None:
            raise RecordError("is missing", field="width" if width is None else "height")
        boxes = require(record, "bboxs", list)
        if not boxes:
            raise RecordError("has no boxes", field="bboxs")
        sample = dict(
            dataset=require(record, "dataset"),
            source_id=source_key(name, question),
            image=str(images / name),
            question=question,
            answer=answer,
            gt_boxes=pixel_to_normalized(boxes, width, height, "bboxs"),
            width=width,
            height=height,
            split=split_of(record),
            meta={"source": "viscot"},
        )
        return Incoming(sample)

    return convert


def _viscot_llava(record: dict, images: Path) -> Incoming:
    conv = require(record, "conversations", list)
    turns = [t["value"] if isinstance(t, dict) and isinstance(t.get("value"), str) else "" for t in conv]
    if len(turns) < 4:
        raise RecordError(f"expected 4 turns (question, box, image, answer), got {len(turns)}", field="conversations")
    question = _COT_PROMPT.sub("", turns[0].replace("<image>", "")).strip()
    if not question:
        raise RecordError("has no question", field="conversations[0]")
    match = _BOX_TEXT.search(turns[1])
    if match is None:
        raise RecordError(f"expected a box like [x1, y1, x2, y2], got {turns[1][:40]!r}", field="conversations[1]")
    answer = turns[3].strip()
    if not answer:
        raise RecordError("answer is empty", field="conversations[3]")
    image_field = record.get("image")
    name = image_field[0] if isinstance(image_field, list) and image_field else image_field
    if not isinstance(name, str) or not name:
        raise RecordError("is missing", field="image")
    name = name.split("###")[0]
    image = images / name
    width, height = _known_size(record, (image,))
    try:
        box = unpad_square(_box_numbers([float(v) for v in match.groups()], "conversations[1]"), width, height)
    except ValueError:  # "[., -, e, +]" matches the pattern but is no number
        raise RecordError(
            f"expected a box of 4 numbers, got {match.group(0)[:40]!r}", field="conversations[1]"
        ) from None
    sample = dict(
        dataset=require(record, "dataset"),
        source_id=source_key(name, question),
        image=str(image),
        question=question,
        answer=answer,
        gt_boxes=[box],
        width=width,
        height=height,
        split=split_of(record),
        meta={"source": "viscot-llava", "box_correction": "unpad_square"},
    )
    return Incoming(sample)


# ---------------------------------------------------------------- TallyQA


def tallyqa_converter(images: Path) -> Callable[[dict], Incoming]:
    """TallyQA counting questions (`image`, `question`, `answer` a count) with the counted objects'
    pixel boxes in `boxes` (or `bboxs`); width/height from the record or the image header."""
    images = Path(images)

    def convert(record: dict) -> Incoming:
        question = require(record, "question")
        answer = record.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, (int, str)) or str(answer).strip() == "":
            raise RecordError(f"expected a count, got {answer!r}", field="answer")
        name = require(record, "image")
        image = images / name
        key = "boxes" if "boxes" in record else "bboxs"
        boxes = record.get(key)
        if not isinstance(boxes, list):
            raise RecordError("expected a list of pixel boxes [x1, y1, x2, y2]", field="boxes")
        width, height = _known_size(record, (image,))
        meta = {k: record[k] for k in ("data_source", "issimple", "image_id") if k in record}
        sample = dict(
            dataset="tallyqa",
            source_id=record_id(record, "question_id") or source_key(name, question),
            image=str(image),
            question=question,
            answer=str(answer).strip(),
            gt_boxes=pixel_to_normalized(boxes, width, height, key),
            width=width,
            height=height,
            split=split_of(record),
            meta=meta,
        )
        return Incoming(sample)

    return convert


# ---------------------------------------------------------------- files


def import_file(
    store: Store,
    path: str | os.PathLike,
    convert: Callable[[dict], Incoming],
    *,
    allow_missing: bool = False,
    progress: bool = True,
    description: str = "importing",
    recipe: str | None = None,
    seed: int = 0,
) -> ImportReport:
    """Import the records of `path`; `recipe` (db.recipes) first selects which ones, seeded."""
    records: Iterable = (record for _, record in read_records(path))
    notes: list[str] = []
    if recipe is not None:
        records, notes = apply_recipe(recipe, list(records), seed)
    report = import_records(
        store, records, convert, allow_missing=allow_missing, progress=progress, description=description
    )
    report.notes[:0] = notes
    return report


def _in_root(store: Store, folder: str | os.PathLike) -> Path:
    """`folder` made absolute against the working directory: as written when that lies in the
    data root (a data set linked into the root stays usable), else with its links resolved (a
    root recorded through a linked folder such as macOS's /tmp)."""
    lexical = os.path.abspath(folder)
    try:
        store.relative(lexical)
    except StoreError:
        return Path(os.path.realpath(folder))
    return Path(lexical)


CONVERTERS: dict[str, Callable[[Path], Callable[[dict], Incoming]]] = {
    "sif50k": sif50k_converter,
    "viscot": viscot_converter,
    "tallyqa": tallyqa_converter,
}


def import_dataset(
    db_path: str | os.PathLike,
    kind: str,
    path: str | os.PathLike,
    source_dir: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    allow_missing: bool = False,
    unpad_boxes: bool = False,
    progress: bool = True,
    recipe: str | None = None,
    seed: int = 0,
) -> tuple[Store, ImportReport]:
    """Open (or create) the store and import `path`. A new store's data root defaults to
    `source_dir`; image paths must lie under the recorded root. Relative folders are taken from
    the working directory, here, once."""
    if data_root is None and not Path(db_path).exists():
        data_root = source_dir
    store = Store.open(db_path, os.path.abspath(data_root) if data_root is not None else None)
    try:
        store.require_writable()  # before reading the file
    except StoreError:
        store.close()
        raise
    source = _in_root(store, source_dir)
    convert = sif50k_converter(source, unpad_boxes=unpad_boxes) if kind == "sif50k" else CONVERTERS[kind](source)
    return store, import_file(
        store,
        path,
        convert,
        allow_missing=allow_missing,
        progress=progress,
        description=f"importing {kind}",
        recipe=recipe,
        seed=seed,
    )
