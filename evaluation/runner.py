"""Run a model over a benchmark, keep every prediction in the store, score, and report.

Each record becomes a store sample (dataset = benchmark name, source_id = record id) and each
prediction a `prediction` revision under the eval run, committed as it arrives (backends answer
many records at once: the openai backend `concurrency` requests in flight, hf and vllm in
batches): a killed run resumes (`resume=RUN`) with the records that have no prediction in that
run yet. `shard="i/n"` evaluates one n-th of the benchmark (`sif eval merge` joins the shards).
Scoring reads the predictions back from the store, so the metrics always describe what the
store holds; a record without a prediction (a failed request, a missing picture) counts as wrong
and is reported, and past `max_failure_rate` the run ends `failed`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from common.redact import REDACTED, redact, redact_config
from evaluation.adapters import BENCHMARKS, load_benchmark
from evaluation.metrics import benchmark_metrics, score_record
from evaluation.records import PROTOCOLS, EvalRecord
from evaluation.report import eval_run, finite, write_report
from inference.backends import DEFAULT_CONCURRENCY, DEFAULT_MAX_NEW_TOKENS, DEFAULT_MAX_PIXELS
from sif.errors import ConfigError
from sif.prompts import RL_SUFFIX, SIF_SUFFIX
from sif.rewards import rule_based_score

SUFFIXES = {"sif": SIF_SUFFIX, "rl": RL_SUFFIX}
# Settings a resumed run may change: where the model is served and how fast it is asked.
# Everything else decides what the predictions are, so a resume that changes it is refused.
RESUMABLE = ("base_url", "concurrency", "batch_size", "max_failure_rate", "name")


@dataclass
class EvalConfig:
    """What an eval run did; stored with the run so that `resume` repeats it exactly."""

    benchmark: str
    data: str
    images: str | None = None
    model: str | None = None
    backend: str = "hf"
    adapter: str | None = None
    base_url: str | None = None
    limit: int | None = None
    shard: str | None = None  # "i/n": the i-th (from 0) of n deterministic parts of the records
    suffix: str = "sif"  # "sif" (SIF-50K's sentence) or "rl" (the reference RL/eval sentence, no "with depth")
    judge: str = "rule"  # "rule" (offline) or "openai" (OpenAI-compatible judge)
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_pixels: int = DEFAULT_MAX_PIXELS
    temperature: float = 0.0
    depth_model: str | None = None  # for records without a depth picture; None: the backend's default
    concurrency: int = DEFAULT_CONCURRENCY  # openai: requests in flight
    batch_size: int | None = None  # hf: batch (default 8); vllm: prompts per LLM.generate call (default 256)
    max_failure_rate: float = 0.01  # records without a prediction allowed before the run counts as failed
    scripted_seed: int = 0
    name: str | None = None

    def __post_init__(self):
        if self.benchmark not in BENCHMARKS:
            raise ConfigError(f"unknown benchmark {self.benchmark!r}; choose from {', '.join(BENCHMARKS)}")
        if self.suffix not in SUFFIXES:
            raise ConfigError(f"suffix must be one of {', '.join(SUFFIXES)}, not {self.suffix!r}")
        if self.judge not in ("rule", "openai"):
            raise ConfigError(f"judge must be 'rule' or 'openai', not {self.judge!r}")
        for name in ("limit", "max_new_tokens", "max_pixels", "concurrency", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
        rate = self.max_failure_rate
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise ConfigError(f"max_failure_rate must be a fraction between 0 and 1, got {rate!r}")
        if self.shard is not None:
            parse_shard(self.shard)

    @classmethod
    def from_json(cls, obj: dict) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` → (i, n), with 0 ≤ i < n."""
    try:
        i, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ConfigError(f"shard {text!r}: need 0 ≤ i < n (shards are numbered from 0)")
    return i, n


def select_records(records: list[EvalRecord], limit: int | None, shard: str | None) -> list[EvalRecord]:
    """The first `limit` records, then shard i of n: every n-th unit from the i-th, a unit being a
    record or the records of one group (a SpatialBench pair, an MMBench question's circular
    passes), so that every shard can be scored alone. Depends only on the data file."""
    records = records[:limit] if limit else records
    if shard is None:
        return records
    i, n = parse_shard(shard)
    units = list(dict.fromkeys(_unit(r) for r in records))
    mine = set(units[i::n])
    return [r for r in records if _unit(r) in mine]


def _unit(record: EvalRecord) -> str:
    return record.meta.get("group") or record.id


@dataclass
class RunResult:
    run_id: str
    metrics: dict
    predicted: int  # predictions made in this call
    total: int  # records in the run
    missing_images: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    report_paths: tuple[Path, Path] | None = None
    status: str = "running"
    summary: dict = field(default_factory=dict)
    changed: dict = field(default_factory=dict)  # settings a resume changed: name -> (was, now)


def make_backend(config: EvalConfig):
    """The backend a config names; `scripted` is the ground-truth predictor for tests/backfill."""
    if config.backend == "scripted":
        from evaluation.scripted import ScriptedBackend

        return ScriptedBackend(seed=config.scripted_seed)
    from inference.backends import load_backend

    opts: dict = {"depth_model": config.depth_model, "max_pixels": config.max_pixels}
    if config.backend == "openai":
        opts["concurrency"] = config.concurrency
    else:
        opts["batch_size"] = config.batch_size
    return load_backend(config.backend, config.model, adapter=config.adapter, base_url=config.base_url, **opts)


class JudgedScorer:
    """Scores with the OpenAI-compatible judge. A failed judgment (timeout, HTTP error,
    unparseable reply) is counted in `failures` and the answer is scored by the rules instead,
    never silently as 0."""

    def __init__(self, judge):
        self.judge = judge

    @property
    def failures(self) -> Counter:
        return self.judge.failures

    def __call__(self, question: str, answer: str, prediction: str) -> float:
        from training.judge import JudgeItem

        score = self.judge.score_many([JudgeItem(question, answer, prediction)])[0]
        return rule_based_score(question, answer, prediction) if score is None else score


def make_scorer(config: EvalConfig) -> Callable[[str, str, str], float]:
    """The open-VQA scorer: the OpenAI-compatible judge (a `JudgedScorer`), or the offline rule-based one."""
    if config.judge == "rule":
        return rule_based_score
    from training.config import JudgeSettings
    from training.judge import make_judge

    return JudgedScorer(make_judge(JudgeSettings(kind="openai", send_image=False)))


def check_depth_inputs(records: list[EvalRecord], backend) -> None:
    """One clear error, before the run starts, when records have no depth picture and the depth
    model that would estimate theirs cannot be loaded (instead of every record failing)."""
    from inference.backends import FLAT

    if not getattr(backend, "needs_image", True):
        return
    lacking = [r for r in records if r.depth_image is None and not r.image_missing]
    model = getattr(backend, "depth_model", None)
    if not lacking or model in (None, FLAT):
        return
    from datagen.depth_model import load_depth_model

    try:
        load_depth_model(model)
    except (ValueError, OSError, ImportError) as exc:
        example = Path(str(lacking[0].image))
        raise ConfigError(
            f"{len(lacking)} of {len(records)} records have no depth picture (e.g. "
            f"{example.with_name(example.stem + '_d.png')} for {example.name}), and the depth model that would "
            f"estimate them cannot be loaded: {exc}. Write the pictures with `sif depth IMAGE... --out "
            f"{example.parent}` (NAME_d.png beside each image), or choose another estimator with --depth-model "
            "(a local Depth Anything folder, `tiny` for tests, or `flat`)."
        ) from None


def data_fingerprint(data: str | Path) -> str:
    """sha256 of the benchmark file (of a folder's JSON files, in name order): shards merge only
    when they evaluated the same data."""
    path = Path(data)
    digest = hashlib.sha256()
    for part in sorted(path.glob("*.json")) if path.is_dir() else [path]:
        digest.update(part.name.encode() if path.is_dir() else b"")
        with part.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resume_config(stored: EvalConfig, given: dict, run_id: str) -> tuple[EvalConfig, dict]:
    """The stored settings with the ones `given` again: equal ones are fine, the RESUMABLE ones
    are taken (and returned as name -> (was, now)), any other difference is refused."""
    known = {f.name for f in fields(EvalConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
    if given.get("benchmark", stored.benchmark) != stored.benchmark:
        raise ConfigError(f"run {run_id} evaluated {stored.benchmark!r}, not {given['benchmark']!r}")
    changed, refused = {}, []
    for key, value in given.items():
        was = getattr(stored, key)
        if value == was or (
            key in ("data", "images") and value and was and Path(value).resolve() == Path(was).resolve()
        ):
            continue
        if key in RESUMABLE:
            changed[key] = (was, value)
        else:
            refused.append(f"{key} (the run has {was!r}, given {value!r})")
    if refused:
        raise ConfigError(
            f"--resume {run_id}: {'; '.join(refused)}. A resumed run keeps what decides its predictions; "
            f"only {', '.join(RESUMABLE)} may change. Start a new run to change the others."
        )
    config = replace(stored, **{k: now for k, (_, now) in changed.items()})
    if REDACTED in (config.base_url or ""):  # credentials in the URL are never stored
        raise ConfigError(f"run {run_id}'s base URL held credentials, which are not stored; pass --base-url again")
    return config, changed


def run_eval(
    store,
    config: EvalConfig | None,
    *,
    backend=None,
    resume: str | None = None,
    changes: dict | None = None,
    scorer=None,
    report_dir: str | Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_start=None,
) -> RunResult:
    """Evaluate, store predictions as they arrive, score, and write the run's report.

    With `resume`, the run's stored settings apply; `changes` (or, without it, `config`) are the
    settings given again: see `resume_config`. `stop_after` ends the prediction loop after that
    many new predictions, leaving the run unfinished (what a killed run looks like; for tests).
    `on_start(run_id)` is called once the run is recorded, so a killed run's id is known.
    """
    changed: dict = {}
    if resume is not None:
        stored = EvalConfig.from_json(eval_run(store, resume)["config"])
        given = changes if changes is not None else (asdict(config) if config is not None else {})
        config, changed = resume_config(stored, given, resume)
    assert config is not None, "a new run needs its config"
    loaded = load_benchmark(config.benchmark, config.data, config.images)
    records = select_records(loaded.records, config.limit, config.shard)
    backend = backend if backend is not None else make_backend(config)
    check_depth_inputs(records, backend)

    if resume is None:
        run_id = store.create_run(kind="evaluation", config=asdict(config), name=config.name)
    else:
        run_id = resume
        if changed:
            history = store.get_run(run_id)["metrics"].get("resumed", [])
            entry = {"changed": {k: {"was": was, "now": now} for k, (was, now) in changed.items()}}
            store.update_run(run_id, config=asdict(config), metrics={"resumed": [*history, entry]})
    store.update_run(run_id, status="running")
    if on_start is not None:
        on_start(run_id)

    records, sample_ids = register_samples(store, config.benchmark, records, loaded.problems)
    done = set(store.run_predictions(run_id))
    missing = missing_images(records)
    needs_image = getattr(backend, "needs_image", True)
    pending = [(r, sid) for r, sid in zip(records, sample_ids) if sid not in done]
    skipped = [r for r, _ in pending if r.image_missing and needs_image]
    pending = [(r, sid) for r, sid in pending if not (r.image_missing and needs_image)]
    failures: list[dict] = []
    predicted, stopped = _predict(store, run_id, backend, pending, config, failures, progress, stop_after)
    if stopped:
        return RunResult(run_id, {}, predicted, len(records), missing, failures, loaded.problems, changed=changed)

    reasons = {f["id"]: f["error"] for f in failures} | {r.id: "image missing on disk" for r in skipped}
    scorer = scorer or make_scorer(config)
    per_record = score_records(store, run_id, records, sample_ids, scorer, reasons)
    result = finish_run(
        store,
        run_id,
        config,
        records,
        per_record,
        missing=missing,
        failures=failures,
        problems=loaded.problems,
        report_dir=report_dir,
        extra={"data_sha256": data_fingerprint(config.data)},
        judge_failures=getattr(scorer, "failures", None),
    )
    result.predicted, result.changed = predicted, changed
    return result


def _predict(store, run_id, backend, pending, config, failures, progress, stop_after) -> tuple[int, bool]:
    """Ask the backend for every pending record and commit each answer as it arrives (the
    answers that arrived together in one transaction); a failed record goes to `failures`
    (retried on resume). Returns (predictions made, stopped early)."""
    author = config.model or getattr(backend, "name", config.backend)
    by_sid = {sid: r for r, sid in pending}
    answers = _answers(backend, pending, config)
    ready = getattr(answers, "ready", list)
    predicted = 0
    with _progress(progress, f"eval {config.benchmark}", len(pending)) as advance:
        try:
            for first in answers:
                with store.transaction():
                    for sid, out in [first, *ready()]:
                        advance()
                        if isinstance(out, Exception):  # one bad record never stops a run
                            failures.append({"id": by_sid[sid].id, "error": redact(f"{type(out).__name__}: {out}")})
                            continue
                        store.add_revision(sid, out, origin="prediction", author=author, run_id=run_id)
                        predicted += 1
                        if stop_after is not None and predicted >= stop_after:
                            return predicted, True
        finally:
            answers.close()  # a backend still working (requests in flight) stops here
    return predicted, False


def _answers(backend, pending, config):
    """(sample id, text or error) for each pending record, as the backend produces them."""
    if hasattr(backend, "predict_record"):
        return _one_by_one(pending, backend.predict_record)
    from inference.backends import GenerateRequest

    sampling = {"max_new_tokens": config.max_new_tokens, "temperature": config.temperature}
    suffix = SUFFIXES[config.suffix]
    if hasattr(backend, "generate_many"):
        requests = (GenerateRequest(sid, r.image, r.depth_image, r.question, suffix) for r, sid in pending)
        return backend.generate_many(requests, **sampling)
    return _one_by_one(
        pending, lambda r: backend.generate(r.image, r.depth_image, r.question, suffix=suffix, **sampling)
    )


def _one_by_one(pending, answer):
    for record, sid in pending:
        try:
            yield sid, answer(record)
        except Exception as exc:
            yield sid, exc


def score_records(store, run_id: str, records, sample_ids, scorer, reasons: dict[str, str]) -> list[dict]:
    """Every record's scores from the run's predictions in the store. A record without one is
    scored as an empty answer (wrong everywhere) and marked `failed`, with the reason."""
    texts = store.run_predictions(run_id)
    out = []
    for r, sid in zip(records, sample_ids):
        text = texts.get(sid)
        try:
            scores = score_record(r, text or "", scorer)
        except Exception as exc:  # hostile text met a bug: this record scores as an unreadable answer
            scores = {**score_record(r, "", scorer), "error": redact(f"{type(exc).__name__}: {exc}")}
        entry = {"id": r.id, "sample_id": sid, "category": r.category, **scores}
        entry["failed"] = text is None
        if text is None:
            entry.update(correct=False, error=reasons.get(r.id, "no prediction"))
        out.append(entry)
    return out


def missing_images(records: list[EvalRecord]) -> list[dict]:
    """The records whose picture is not on disk, as the report lists them."""
    return [{"id": r.id, "image": r.image} for r in records if r.image_missing]


def finish_run(
    store,
    run_id: str,
    config: EvalConfig,
    records: list[EvalRecord],
    per_record: list[dict],
    *,
    missing: list[dict],
    failures: list[dict],
    problems: list[str],
    report_dir: str | Path | None,
    extra: dict | None = None,
    judge_failures: dict | None = None,
) -> RunResult:
    """Aggregate per-record scores by the benchmark's protocol, store them with the run, set its
    status (`failed` past `max_failure_rate`), and write its report with the run's predictions."""
    kind = BENCHMARKS[config.benchmark].kind
    metrics = benchmark_metrics(config.benchmark, kind, records, per_record) if records else {}
    if judge_failures:
        metrics["judge_failures"] = dict(judge_failures)
    unanswered = [e for e in per_record if e["failed"]]
    missing_ids = {m["id"] for m in missing}
    rate = len(unanswered) / len(per_record) if per_record else 0.0
    summary = {
        "records": len(records),
        "predicted": len(per_record) - len(unanswered),
        "unanswered": len(unanswered),
        "failed_requests": sum(e["id"] not in missing_ids for e in unanswered),
        "unanswered_missing_images": sum(e["id"] in missing_ids for e in unanswered),
        "missing_images": len(missing),
        "failure_rate": round(rate, 6),
        "max_failure_rate": config.max_failure_rate,
        "bad_records": len(problems),
        "shard": config.shard,
        **(extra or {}),
    }
    status = "done" if rate <= config.max_failure_rate else "failed"
    summary["status"] = status
    per_record = finite(per_record)
    store.set_eval_records(run_id, per_record)
    store.update_run(
        run_id, status=status, metrics=finite({"summary": summary, "protocol": PROTOCOLS[config.benchmark], **metrics})
    )
    result = RunResult(
        run_id, finite(metrics), 0, len(records), missing, failures, problems, status=status, summary=summary
    )
    if report_dir is not None:
        by_sid = {e["sample_id"]: e["id"] for e in per_record}
        texts = store.run_predictions(run_id)
        predictions = {by_sid[sid]: text for sid, text in texts.items() if sid in by_sid}
        result.report_paths = write_report(
            Path(report_dir),
            run_id,
            redact_config(asdict(config)),
            summary,
            finite(metrics),
            per_record,
            missing,
            failures,
            problems,
            predictions,
        )
    return result


SAMPLE_CHUNK = 500  # samples registered per transaction


def _stored_answer(r: EvalRecord) -> str:
    """What the store shows as the expected answer: the text, or the ground-truth boxes."""
    if r.kind == "rec":
        return json.dumps([[round(v, 3) for v in b] for b in r.gt_boxes])
    if r.kind == "ovd":
        return json.dumps([{"label": lab, "bbox_2d": [round(v, 3) for v in b]} for lab, b in r.objects])
    return r.answer if r.answer else "(no answer given)"


def _fill_size(record: EvalRecord) -> None:
    if (record.width and record.height) or record.image is None or record.image_missing:
        return
    from PIL import Image

    with Image.open(record.image) as im:
        record.width, record.height = im.size


def register_samples(
    store, benchmark: str, records: list[EvalRecord], problems: list[str]
) -> tuple[list[EvalRecord], list[int]]:
    """Each record as a store sample (idempotent), so predictions can attach to it, in bulk
    transactions of SAMPLE_CHUNK samples: the records stored and their sample ids. A record the
    store refuses (a size no picture has, say) is added to `problems` and left out; the run goes on."""
    first = records[0].image if records else None
    if first is not None:
        folder = Path(first).parent.resolve()
        if not folder.is_relative_to(store.data_root):
            raise ConfigError(
                f"benchmark images in {folder} are outside the store's data root {store.data_root}; "
                "use a store whose data root contains them"
            )
    kept: list[EvalRecord] = []
    ids: list[int] = []
    for start in range(0, len(records), SAMPLE_CHUNK):
        chunk = []
        for r in records[start : start + SAMPLE_CHUNK]:
            try:
                _fill_size(r)
            except (OSError, ValueError) as exc:  # an unreadable picture: this record's problem
                problems.append(f"{r.id}: {exc}")
                continue
            chunk.append(r)
        results = store.import_samples([(_sample_fields(benchmark, r), None, None) for r in chunk], author="")
        for r, result in zip(chunk, results):
            if isinstance(result, Exception):  # one record's problem, not the run's
                problems.append(f"{r.id}: {result}")
                continue
            kept.append(r)
            ids.append(result[0])
    return kept, ids


def _sample_fields(benchmark: str, r: EvalRecord) -> dict:
    return dict(
        dataset=benchmark,
        source_id=r.id,
        image=r.image,
        question=r.question,
        answer=_stored_answer(r),
        gt_boxes=r.gt_boxes,
        width=r.width or 1,
        height=r.height or 1,
        split="eval",
        missing=r.image_missing,
        meta={
            "category": r.category,
            "kind": r.kind,
            "choices": r.choices,
            "labels": r.labels,
            "benchmark_dataset": r.dataset,
            "size_unknown": not (r.width and r.height),
            **({"depth_map": r.depth} if r.depth else {}),
        },
    )


class _progress:
    """A rich progress bar over `total` answers (or nothing); `advance()` counts one."""

    def __init__(self, show: bool, label: str, total: int):
        self.show, self.label, self.total = show and total > 0, label, total
        self._bar = None

    def __enter__(self):
        if not self.show:
            return lambda: None
        from rich.progress import Progress

        self._bar = Progress(transient=False)
        self._bar.start()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


def evaluate(
    db_path: str | Path,
    config: EvalConfig | None,
    *,
    resume: str | None = None,
    changes: dict | None = None,
    report_dir: str | Path | None = "eval_reports",
    on_start=None,
) -> RunResult:
    """`sif eval BENCH`: open the store at `db_path` and run (or resume) the evaluation."""
    from db.store import Store

    with Store.open(db_path) as store:
        return run_eval(store, config, resume=resume, changes=changes, report_dir=report_dir, on_start=on_start)
