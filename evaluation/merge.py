"""`sif eval merge`: one eval run and report from the shards of a benchmark run anywhere.

A shard is an eval run made with `shard="i/n"`: a run id in this store, or the report folder a
run wrote on another machine (`report.json` with every record's scores, `predictions.jsonl`
with its texts). The shards must be all n of one split of the same data (the same file, by
sha256) with the same settings; the merged run holds their predictions (curators open them in
the workbench) and their per-record scores, aggregated as one run over the whole benchmark, so
it equals the unsharded run record for record. Nothing is asked of a model or a judge again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from evaluation.adapters import load_benchmark
from evaluation.report import PREDICTIONS_FILE, eval_run
from evaluation.runner import (
    RESUMABLE,
    EvalConfig,
    RunResult,
    data_fingerprint,
    finish_run,
    missing_images,
    parse_shard,
    register_samples,
    select_records,
)
from sif.errors import ConfigError

# Settings shards may differ in: where and how fast each was run, and which part it was.
PER_SHARD = {*RESUMABLE, "shard", "data", "images"}


@dataclass
class Shard:
    source: str  # the run id or report folder it was read from
    config: EvalConfig
    entries: dict[str, dict]  # record id -> its scores
    texts: dict[str, str]  # record id -> its prediction
    data_sha256: str | None


def read_shard(store, source: str) -> Shard:
    """A shard from a report folder (or its report.json), else from the run `source` in the store."""
    path = Path(source)
    if path.exists():
        folder = path if path.is_dir() else path.parent
        try:
            report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"shard {source}: no readable report.json ({exc})") from None
        texts = {}
        lines = (folder / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines()
        for line in filter(str.strip, lines):
            row = json.loads(line)
            texts[row["id"]] = row["text"]
        entries = {e["id"]: e for e in report.get("records", [])}
        summary = report.get("summary") or {}
        return Shard(source, EvalConfig.from_json(report["config"]), entries, texts, summary.get("data_sha256"))
    run = eval_run(store, source)
    if run["status"] == "running" or not run["metrics"].get("summary"):
        raise ConfigError(f"shard {source} has not finished (status {run['status']}); resume it to the end first")
    entries = {e["id"]: e for e in store.eval_records(source)}
    predictions = store.run_predictions(source)
    texts = {rid: predictions[e["sample_id"]] for rid, e in entries.items() if e["sample_id"] in predictions}
    return Shard(
        source, EvalConfig.from_json(run["config"]), entries, texts, run["metrics"]["summary"].get("data_sha256")
    )


def check_shards(shards: list[Shard]) -> None:
    """All n shards of one split, of the same data and settings, each once; else a ValueError."""
    if not shards:
        raise ConfigError("name the shard runs (or report folders) to merge")
    unsharded = [s.source for s in shards if not s.config.shard]
    if unsharded:
        raise ConfigError(f"{', '.join(unsharded)}: not shard runs (made without --shard i/n)")
    first = shards[0]
    labels = [str(s.config.shard) for s in shards]
    parts = [parse_shard(label) for label in labels]
    counts = {n for _, n in parts}
    if len(counts) > 1:
        raise ConfigError(f"the shards split the benchmark differently: {sorted(labels)}")
    (n,) = counts
    seen = [i for i, _ in parts]
    twice = sorted({i for i in seen if seen.count(i) > 1})
    if twice:
        raise ConfigError(f"shard(s) {', '.join(f'{i}/{n}' for i in twice)} given more than once")
    absent = sorted(set(range(n)) - set(seen))
    if absent:
        raise ConfigError(f"shard(s) {', '.join(f'{i}/{n}' for i in absent)} missing: merge needs all {n}")
    ours = {k: v for k, v in asdict(first.config).items() if k not in PER_SHARD}
    for s in shards[1:]:
        theirs = {k: v for k, v in asdict(s.config).items() if k not in PER_SHARD}
        diff = sorted(k for k in ours if ours[k] != theirs[k])
        if diff:
            raise ConfigError(f"{s.source} was run with other settings than {first.source}: {', '.join(diff)}")
    digests = {s.data_sha256 for s in shards}
    if len(digests) > 1:
        raise ConfigError("the shards evaluated different data files (their sha256 differ)")


def merge_runs(
    store,
    sources: list[str],
    *,
    data: str | None = None,
    images: str | None = None,
    name: str | None = None,
    report_dir: str | Path | None = None,
) -> RunResult:
    """A new eval run holding every shard's predictions and scores, scored as one run."""
    shards = [read_shard(store, s) for s in sources]
    check_shards(shards)
    first = shards[0]
    config = replace(
        first.config,
        shard=None,
        name=name,
        data=data or first.config.data,
        images=images if images is not None else first.config.images,
    )
    digest = data_fingerprint(config.data)
    if first.data_sha256 and digest != first.data_sha256:
        raise ConfigError(f"{config.data} is not the data file the shards evaluated (sha256 differs); pass --data")
    loaded = load_benchmark(config.benchmark, config.data, config.images)
    records = select_records(loaded.records, config.limit, None)
    entries = {rid: e for s in shards for rid, e in s.entries.items()}
    texts = {rid: t for s in shards for rid, t in s.texts.items()}
    uncovered = [r.id for r in records if r.id not in entries]
    if uncovered:
        raise ConfigError(
            f"the shards hold scores for {len(records) - len(uncovered)} of {len(records)} records "
            f"(none for {uncovered[0]}, …): a shard run was not finished"
        )

    run_id = store.create_run(kind="evaluation", config=asdict(config), name=name)
    store.update_run(run_id, status="running", metrics={"merged_from": sources})
    refused: list[str] = []
    records, sample_ids = register_samples(store, config.benchmark, records, refused)
    if refused:
        raise ConfigError(f"the store refuses {len(refused)} record(s) the shards evaluated: {refused[0]}")
    author = config.model or config.backend
    for r, sid in zip(records, sample_ids):
        if r.id in texts:
            store.add_revision(sid, texts[r.id], origin="prediction", author=author, run_id=run_id)
    per_record = [{**entries[r.id], "sample_id": sid} for r, sid in zip(records, sample_ids)]
    failures = [{"id": e["id"], "error": e.get("error", "no prediction")} for e in per_record if e["failed"]]
    result = finish_run(
        store,
        run_id,
        config,
        records,
        per_record,
        missing=missing_images(records),
        failures=failures,
        problems=loaded.problems,
        report_dir=report_dir,
        extra={"data_sha256": digest, "merged_from": sources},
    )
    result.predicted = len(texts)
    return result


def merge(db_path, sources: list[str], **kwargs) -> RunResult:
    """`sif eval merge`: open the store at `db_path` and merge the shards into a new run."""
    from db.store import Store

    with Store.open(db_path) as store:
        return merge_runs(store, sources, **kwargs)
