"""Reports of eval runs: one run as markdown + JSON, several runs side by side, and the paper's
quoted numbers beside ours."""

from __future__ import annotations

import json
import math
from pathlib import Path

from evaluation.paper import quoted_for
from evaluation.records import PROTOCOLS
from sif.errors import ConfigError

# Counts are shown as integers; everything else as a fraction with 3 decimals.
COUNT_KEYS = {"n", "detections", "after_nms", "categories", "unreadable", "pairs", "passes"}
SHOWN_MISSING = 20
PREDICTIONS_FILE = "predictions.jsonl"


def finite(obj):
    """`obj` with every NaN or infinite float replaced by None: reports are strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def strict_json(obj, **kwargs) -> str:
    """JSON that any parser reads: no NaN or Infinity (they become null)."""
    return json.dumps(finite(obj), allow_nan=False, default=str, **kwargs)


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key in COUNT_KEYS or isinstance(value, bool):
        return str(int(value))
    return f"{float(value):.3f}" if isinstance(value, (int, float)) else str(value)


def metric_rows(metrics: dict) -> list[tuple[str, str, object]]:
    """(category, metric, value) rows of a run's metrics, overall first."""
    rows = []
    cats = sorted(k for k, v in metrics.items() if k not in ("overall", "summary") and isinstance(v, dict))
    for cat in (["overall"] if "overall" in metrics else []) + cats:
        for key, value in metrics[cat].items():
            rows.append((cat, key, value))
    return rows


def render_run(
    run_id: str,
    config: dict,
    summary: dict,
    metrics: dict,
    missing: list[dict],
    failures: list[dict],
    problems: list[str],
) -> str:
    """The markdown report of one run."""
    lines = [
        f"# Eval run {run_id}: {config.get('benchmark')}",
        "",
        f"- model: `{config.get('model') or config.get('backend')}` (backend `{config.get('backend')}`)",
        f"- data: `{config.get('data')}`" + (f" (shard {config['shard']})" if config.get("shard") else ""),
        f"- judge: {config.get('judge')}",
        f"- protocol: {PROTOCOLS.get(str(config.get('benchmark')), '–')}",
        "- " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary.items() if not isinstance(v, list)),
    ]
    if summary.get("unanswered"):
        lines.append(
            f"- **{summary['unanswered']} of {summary['records']} records have no prediction** "
            f"({summary.get('failed_requests', 0)} failed requests, {summary.get('unanswered_missing_images', 0)} "
            "images missing); they count as wrong in every metric below. `--resume` retries them."
        )
    lines += ["", "| category | metric | value |", "| --- | --- | --- |"]
    lines += [f"| {c} | {k} | {_fmt(k, v)} |" for c, k, v in metric_rows(metrics)]
    for title, items in (
        ("Prediction failures", [f"`{f['id']}`: {f['error']}" for f in failures]),
        ("Images missing on disk", [f"`{m['id']}`: {m['image']}" for m in missing]),
        ("Records skipped by the adapter", problems),
    ):
        if items:
            lines += ["", f"## {title} ({len(items)})", ""]
            lines += [f"- {x}" for x in items[:SHOWN_MISSING]]
            if len(items) > SHOWN_MISSING:
                lines.append(f"- … {len(items) - SHOWN_MISSING} more (all listed in report.json)")
    return "\n".join(lines) + "\n"


def write_report(
    out: Path,
    run_id: str,
    config: dict,
    summary: dict,
    metrics: dict,
    per_record: list[dict],
    missing: list[dict],
    failures: list[dict],
    problems: list[str],
    predictions: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """`report.md`, `report.json` (strict JSON, with every record's scores and every missing
    image) and `predictions.jsonl` (each record's prediction text: with report.json, what
    `sif eval merge` needs from a shard run on another machine)."""
    folder = out / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "report.md"
    md.write_text(render_run(run_id, config, summary, metrics, missing, failures, problems))
    js = folder / "report.json"
    report = {
        "run_id": run_id,
        "config": config,
        "protocol": PROTOCOLS.get(str(config.get("benchmark"))),
        "summary": summary,
        "metrics": metrics,
        "missing_images": missing,
        "failures": failures,
        "bad_records": problems,
        "records": per_record,
    }
    js.write_text(strict_json(report, indent=1))
    with (folder / PREDICTIONS_FILE).open("w", encoding="utf-8") as f:
        for rid, text in (predictions or {}).items():
            f.write(json.dumps({"id": rid, "text": text}, ensure_ascii=False) + "\n")
    return md, js


def compare_runs(runs: list[dict], *, paper: bool = False) -> str:
    """A markdown table with one column per run (and the paper's quoted figures with `paper`).

    Each run is a store row: `id`, `config` (with `benchmark`, `model`) and `metrics`.
    """
    columns = [f"run {r['id']} ({r['config'].get('model') or r['config'].get('backend')})" for r in runs]
    table: dict[tuple[str, str, str], dict[int, object]] = {}
    for i, r in enumerate(runs):
        bench = r["config"].get("benchmark", "?")
        for cat, key, value in metric_rows(r.get("metrics") or {}):
            table.setdefault((bench, cat, key), {})[i] = value
    quoted: dict[tuple[str, str, str], list[str]] = {}
    if paper:
        for bench in dict.fromkeys(r["config"].get("benchmark") for r in runs):
            for q in quoted_for(bench):
                cell = f"{q.value:.3f} ({q.setting})" if q.value is not None else f"– ({q.setting})"
                quoted.setdefault((q.benchmark, q.category, q.metric), []).append(cell)
                table.setdefault((q.benchmark, q.category, q.metric), {})
    head = ["benchmark", "category", "metric", *columns] + (["paper (quoted, not measured here)"] if paper else [])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (bench, cat, key), values in table.items():
        cells = [bench, cat, key, *(_fmt(key, values.get(i)) for i in range(len(runs)))]
        if paper:
            cells.append("; ".join(quoted.get((bench, cat, key), [])) or "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_stored_runs(db_path, run_ids: list[str], *, paper: bool = False) -> str:
    """`sif eval report`: the comparison table of eval runs read from the store."""
    from db.store import Store

    with Store.open(db_path) as store:
        runs = [eval_run(store, rid) for rid in run_ids]
    return compare_runs(runs, paper=paper)


def eval_run(store, run_id: str) -> dict:
    """The stored eval run `run_id`, or a ValueError saying it is not one."""
    from db.store import StoreError

    try:
        run = store.get_run(run_id)
    except StoreError:
        run = None
    if run is None or run.get("kind") != "evaluation":
        raise ConfigError(f"run {run_id} is not an eval run in {store.path}")
    return run
