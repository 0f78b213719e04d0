"""Exporters: SFT data (LLaMA-Factory sharegpt JSON or TRL prompt/completion JSONL) and the RL
subset, each with a manifest saying what went in, what was skipped and why.

Only valid current chains are exported for SFT; image paths are written absolute, so the files
work from any folder (and `sif import sif50k` reads the LLaMA-Factory file back unchanged).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from db.store import DEPTH_MAP_KEY, Sample, Store, now, sample_from_row
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


def _files_reason(store: Store, sample: Sample) -> str | None:
    if sample.missing or not store.resolve(sample.image).is_file():
        return "image file missing"
    if not sample.depth:
        return "no depth image"
    if not store.resolve(sample.depth).is_file():
        return "depth image file missing"
    return None


def _sft_record(store: Store, sample: Sample, text: str, fmt: str) -> dict:
    image, depth = str(store.resolve(sample.image)), str(store.resolve(sample.depth))
    if fmt == "trl":
        return {
            "sample_id": sample.id,
            "prompt": [sif_user_message(sample.question)],
            "completion": [{"role": "assistant", "content": text}],
            "images": [image, depth],
        }
    record = {
        "id": sample.source_id,
        "sample_id": sample.id,
        "dataset": sample.dataset,
        "image": image,
        "depth_image": depth,
        "depth_encoding": sample.depth_encoding,
        "problem": sample.question,
        "normalized_solution_round": {"bbox_3d": sample.gt_boxes, "illegal_content": False},
        "response": sample.answer,
        "messages": [
            {"role": "user", "content": sif_user_prompt(sample.question)},
            {"role": "assistant", "content": text},
        ],
        "images": [image, depth],
        "split": sample.split,
        "width": sample.width,
        "height": sample.height,
    }
    if sample.meta.get(DEPTH_MAP_KEY):
        record["depth_map"] = str(store.resolve(sample.meta[DEPTH_MAP_KEY]))
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
        raise ValueError(f"--format: {fmt!r} is not one of {', '.join(SFT_FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, skipped, per_dataset = [], Counter(), Counter()
    for sample, text, valid in _select(store, statuses, split):
        reason = "no chain" if text is None else None if valid else "invalid chain"
        reason = reason or _files_reason(store, sample)
        if reason:
            skipped[reason] += 1
            continue
        records.append(_sft_record(store, sample, text, fmt))
        per_dataset[sample.dataset] += 1
    files = []
    if fmt == "trl":
        data = out / f"{SFT_NAME}.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    else:
        data = out / f"{SFT_NAME}.json"
        data.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
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
        (out / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        files.append(out / "dataset_info.json")
    files.insert(0, data)
    report = ExportReport(files, len(records), dict(sorted(per_dataset.items())), dict(skipped))
    filters = {"status": statuses or "all but rejected", "split": split or "all", "chains": "valid only"}
    _write_manifest(store, out / "manifest.json", f"sft-{fmt}", data, report, filters)
    report.files.append(out / "manifest.json")
    return report


def _write_manifest(
    store: Store, path: Path, kind: str, data: Path, report: ExportReport, filters: dict, **extra
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
        "content_hash": "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest(),
        **extra,
    }
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")


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
    pool: dict[str, list[Sample]] = {}
    skipped = Counter()
    for sample, _text, _valid in _select(store, statuses, split):
        reason = "no ground-truth boxes" if not sample.gt_boxes else _files_reason(store, sample)
        if reason:
            skipped[reason] += 1
            continue
        pool.setdefault(sample.dataset, []).append(sample)
    quotas = stratified_quotas({k: len(v) for k, v in pool.items()}, n)
    rng = random.Random(seed)
    chosen = [s for k in sorted(pool) for s in rng.sample(pool[k], quotas[k])]
    rng.shuffle(chosen)
    lines = [
        json.dumps(
            {
                "sample_id": s.id,
                "question": s.question,
                "answer": s.answer,
                "gt_boxes": s.gt_boxes,
                "image": str(store.resolve(s.image)),
                "depth_image": str(store.resolve(s.depth)),
                "depth_encoding": s.depth_encoding,
            },
            ensure_ascii=False,
        )
        + "\n"
        for s in chosen
    ]
    out.write_text("".join(lines), encoding="utf-8")
    per_dataset = dict(sorted(Counter(s.dataset for s in chosen).items()))
    report = ExportReport([out], len(chosen), per_dataset, dict(skipped))
    manifest = out.with_name(out.stem + ".manifest.json")
    filters = {"status": statuses or "all but rejected", "split": split or "all", "n": n, "seed": seed}
    _write_manifest(store, manifest, "rl", out, report, filters)
    report.files.append(manifest)
    return report
