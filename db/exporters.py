"""Exporters: SFT data (LLaMA-Factory sharegpt JSON or TRL prompt/completion JSONL) and the RL
subset, each with a manifest saying what went in, what was skipped and why.

Only valid current chains are exported for SFT; image paths are written absolute, so the files
work from any folder (and `sif import sif50k` reads the LLaMA-Factory file back unchanged). The
second image is always the `spectral_r` picture models see (`Store.model_depth_image`), whatever
the sample's origin; the exact map travels beside it (`depth_map`) for rewards and depth checks.

An export replaces the previous one whole or not at all: every file is streamed to a temporary
file beside it, fsynced, and only when all are complete renamed over the old ones, the manifest
last. A kill, a full disk or a file-size limit leaves the previous export as it was (at worst
a hidden `.NAME.PID.tmp` file beside it).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from db.store import Sample, Store, StoreError, now, sample_from_row
from sif.errors import ConfigError
from sif.prompts import sif_user_message, sif_user_prompt

SFT_FORMATS = ("llamafactory", "trl")
SFT_NAME = "sif_sft"


@dataclass
class ExportReport:
    files: list[Path]
    exported: int
    per_dataset: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return f"exported {self.exported} samples to {', '.join(map(str, self.files))}; skipped: {skipped}"

    def nothing_exported(self) -> str | None:
        """Why an export that wrote no sample is useless (None when it wrote some)."""
        if self.exported:
            return None
        if not self.skipped:
            return "nothing exported: no sample matches the filters"
        return (
            "nothing exported: every sample was skipped ("
            + ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            + ")"
        )


class _Sink:
    """A temporary file being written: text in, UTF-8 out, its sha256 kept as it goes."""

    def __init__(self, file):
        self.file = file
        self.sha256 = hashlib.sha256()

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.sha256.update(data)
        self.file.write(data)


class _ExportFiles:
    """The files of one export: each written to a temporary file beside its target, then all
    renamed over their targets, in the order written (the manifest last), once every one is
    complete and on disk. Leaving the block by an exception removes the temporary files."""

    def __init__(self) -> None:
        self._written: list[tuple[Path, Path]] = []

    def __enter__(self) -> _ExportFiles:
        return self

    @contextmanager
    def open(self, path: Path) -> Iterator[_Sink]:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._written.append((tmp, path))
        with open(tmp, "wb", buffering=1 << 20) as f:
            sink = _Sink(f)
            yield sink
            f.flush()
            os.fsync(f.fileno())

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:
            for tmp, _ in self._written:
                tmp.unlink(missing_ok=True)
            return
        for tmp, path in self._written:
            os.replace(tmp, path)
        for folder in {path.parent for _, path in self._written}:
            _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_list(sink: _Sink, records: Iterable[dict]) -> None:
    """`json.dumps(records, ensure_ascii=False, indent=1)`, written one record at a time."""
    first = True
    for record in records:
        body = json.dumps(record, ensure_ascii=False, indent=1).replace("\n", "\n ")
        sink.write(("[\n " if first else ",\n ") + body)
        first = False
    sink.write("[]" if first else "\n]")


def _select(store: Store, statuses, split: str | None):
    """(sample, chain text or None, valid) for the samples that pass the filters: the revision a
    decision was made on (the one accepted, say), else the current chain."""
    where, params = [], []
    if statuses:
        where.append(f"i.status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    else:
        where.append("i.status != 'rejected'")
    if split:
        where.append("i.split = ?")
        params.append(split)
    sql = (
        "SELECT s.*, c.text AS chain_text, c.valid AS chain_valid FROM sample_index i"
        " JOIN samples s ON s.id = i.sample_id LEFT JOIN reviews r ON r.sample_id = i.sample_id"
        " LEFT JOIN chain_revisions c ON c.id = CASE WHEN i.status != 'pending' AND r.rev IS NOT NULL"
        " THEN (SELECT id FROM chain_revisions WHERE sample_id = i.sample_id AND rev = r.rev) ELSE i.revision_id END"
        f" WHERE {' AND '.join(where)} ORDER BY s.id"
    )
    for row in store.conn.execute(sql, params):
        yield sample_from_row(row), row["chain_text"], bool(row["chain_valid"])


@dataclass
class _Files:
    """The absolute files of one exported sample: picture, the depth picture the model sees
    (`spectral_r`), and the exact depth map with its encoding."""

    image: str
    depth_image: str
    depth_map: str
    depth_map_encoding: str


def _files(store: Store, sample: Sample) -> _Files | str:
    """The sample's files, or why it cannot be exported."""
    image = store.resolve(sample.image)
    if sample.missing or not image.is_file():
        return "image file missing"
    exact = store.depth_file(sample)
    if exact is None:
        return "depth image file missing" if (sample.depth or sample.meta.get("depth_map")) else "no depth image"
    try:
        picture = store.model_depth_image(sample)
    except (OSError, ValueError, StoreError):
        return "depth rendering could not be written"
    return _Files(str(image), str(picture), *exact)


def _sft_record(sample: Sample, text: str, files: _Files, fmt: str) -> dict:
    images = [files.image, files.depth_image]
    if fmt == "trl":
        return {
            "sample_id": sample.id,
            "prompt": [sif_user_message(sample.question)],
            "completion": [{"role": "assistant", "content": text}],
            "images": images,
            "depth_encoding": "spectral_r",
        }
    record = {
        "id": sample.source_id,
        "sample_id": sample.id,
        "dataset": sample.dataset,
        "image": files.image,
        "depth_image": files.depth_image,
        "depth_encoding": "spectral_r",
        "problem": sample.question,
        "normalized_solution_round": {"bbox_3d": sample.gt_boxes, "illegal_content": False},
        "response": sample.answer,
        "messages": [
            {"role": "user", "content": sif_user_prompt(sample.question)},
            {"role": "assistant", "content": text},
        ],
        "images": images,
        "split": sample.split,
        "width": sample.width,
        "height": sample.height,
    }
    if files.depth_map != files.depth_image:
        record["depth_map"] = files.depth_map
        if files.depth_map_encoding != "gray16_depth":
            record["depth_map_encoding"] = files.depth_map_encoding
    return record


def export_sft(
    store: Store,
    out: Path,
    *,
    statuses: list[str] | None = None,
    fmt: str = "llamafactory",
    split: str | None = "train",
) -> ExportReport:
    """Write the SFT set of valid current chains in `fmt`, plus `manifest.json`, into `out`."""
    if fmt not in SFT_FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(SFT_FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    skipped: Counter = Counter()
    per_dataset: Counter = Counter()

    def records() -> Iterator[dict]:
        for sample, text, valid in _select(store, statuses, split):
            found = "no chain" if text is None else _files(store, sample) if valid else "invalid chain"
            if isinstance(found, str):
                skipped[found] += 1
                continue
            per_dataset[sample.dataset] += 1
            yield _sft_record(sample, text, found, fmt)

    data = out / (f"{SFT_NAME}.jsonl" if fmt == "trl" else f"{SFT_NAME}.json")
    files = [data]
    with _ExportFiles() as export:
        with export.open(data) as sink:
            if fmt == "trl":
                for record in records():
                    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                _json_list(sink, records())
        _refuse_empty(ExportReport(files, 0, dict(per_dataset), dict(skipped)))
        digest = sink.sha256.hexdigest()
        if fmt != "trl":
            info = {
                SFT_NAME: {
                    "file_name": data.name,
                    "formatting": "sharegpt",
                    "columns": {"messages": "messages", "images": "images"},
                    "tags": {
                        "role_tag": "role",
                        "content_tag": "content",
                        "user_tag": "user",
                        "assistant_tag": "assistant",
                    },
                }
            }
            files.append(out / "dataset_info.json")
            with export.open(files[-1]) as info_sink:
                info_sink.write(json.dumps(info, indent=2))
        report = ExportReport(files, sum(per_dataset.values()), dict(sorted(per_dataset.items())), dict(skipped))
        filters = {"status": statuses or "all but rejected", "split": split or "all", "chains": "valid only"}
        _write_manifest(export, store, out / "manifest.json", f"sft-{fmt}", data, digest, report, filters)
    report.files.append(out / "manifest.json")
    return report


def _refuse_empty(report: ExportReport) -> None:
    """An export without a sample is an error, and the previous export stays as it was."""
    if not report.per_dataset and not report.exported:
        raise StoreError(f"{report.nothing_exported()}; the previous export (if any) is left as it was")


def _write_manifest(
    export: _ExportFiles,
    store: Store,
    path: Path,
    kind: str,
    data: Path,
    digest: str,
    report: ExportReport,
    filters: dict,
    **extra,
) -> None:
    manifest = {
        "kind": kind,
        "file": str(data),
        "created_at": now(),
        "db": str(store.path),
        "data_root": str(store.data_root),
        "filters": filters,
        "exported": report.exported,
        "per_dataset": report.per_dataset,
        "skipped": report.skipped,
        "content_hash": "sha256:" + digest,
        **extra,
    }
    with export.open(path) as sink:
        sink.write(json.dumps(manifest, indent=2))


def stratified_quotas(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Split `n` over groups in proportion to their sizes (largest remainder), never beyond a
    group's size; what a small group cannot take goes to the others. When `n` allows, every
    group gets at least one."""
    sizes = {k: v for k, v in sizes.items() if v > 0}
    floor = 1 if n >= len(sizes) else 0
    quotas = {k: floor for k in sizes}
    left = min(n, sum(sizes.values())) - floor * len(sizes)
    while left > 0:
        open_groups = {k: sizes[k] - quotas[k] for k in sizes if sizes[k] > quotas[k]}
        total = sum(open_groups.values())
        shares = {k: left * room / total for k, room in open_groups.items()}
        give = {k: min(int(s), open_groups[k]) for k, s in shares.items()}
        rest = left - sum(give.values())
        for k in sorted(shares, key=lambda k: (-(shares[k] - int(shares[k])), k)):
            if rest <= 0:
                break
            if give[k] < open_groups[k]:
                give[k] += 1
                rest -= 1
        for k, g in give.items():
            quotas[k] += g
        left -= sum(give.values())
    return quotas


def export_rl(
    store: Store,
    out: Path,
    *,
    n: int = 200,
    seed: int = 42,
    statuses: list[str] | None = None,
    split: str | None = "train",
) -> ExportReport:
    """Write the RL subset (ground truth, not chains), stratified by source dataset, as JSONL."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pool: dict[str, list[tuple[Sample, _Files]]] = {}
    skipped: Counter[str] = Counter()
    for sample, _text, _valid in _select(store, statuses, split):
        found = "no ground-truth boxes" if not sample.gt_boxes else _files(store, sample)
        if isinstance(found, str):
            skipped[found] += 1
            continue
        pool.setdefault(sample.dataset, []).append((sample, found))
    quotas = stratified_quotas({k: len(v) for k, v in pool.items()}, n)
    rng = random.Random(seed)
    chosen = [s for k in sorted(pool) for s in rng.sample(pool[k], quotas[k])]
    rng.shuffle(chosen)
    rows = (
        {
            "sample_id": s.id,
            "question": s.question,
            "answer": s.answer,
            "gt_boxes": s.gt_boxes,
            "image": f.image,
            "depth_image": f.depth_image,  # what the model sees
            "depth_encoding": "spectral_r",
            "depth_map": f.depth_map,  # what the depth reward measures against
            "depth_map_encoding": f.depth_map_encoding,
        }
        for s, f in chosen
    )
    per_dataset = dict(sorted(Counter(s.dataset for s, _ in chosen).items()))
    report = ExportReport([out], len(chosen), per_dataset, dict(skipped))
    _refuse_empty(report)
    manifest = out.with_name(out.stem + ".manifest.json")
    filters = {"status": statuses or "all but rejected", "split": split or "all", "n": n, "seed": seed}
    with _ExportFiles() as export:
        with export.open(out) as sink:
            for row in rows:
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        _write_manifest(export, store, manifest, "rl", out, sink.sha256.hexdigest(), report, filters)
    report.files.append(manifest)
    return report
