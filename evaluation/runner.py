"""Run a model over a benchmark, keep every prediction in the store, score, and report.

Each record becomes a store sample (dataset = benchmark name, source_id = record id) and each
prediction a `prediction` revision under the eval run, committed as it is made: a killed run
resumes (`resume=RUN`) with the records that have no prediction in that run yet. Scoring reads
the predictions back from the store, so the metrics always describe what the store holds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from common.redact import REDACTED, redact, redact_config
from evaluation.adapters import BENCHMARKS, load_benchmark
from evaluation.metrics import aggregate, score_record
from evaluation.records import EvalRecord
from evaluation.report import eval_run, write_report
from sif.errors import ConfigError, SifError
from sif.prompts import RL_SUFFIX, SIF_SUFFIX
from sif.rewards import rule_based_score

SUFFIXES = {"sif": SIF_SUFFIX, "rl": RL_SUFFIX}


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
    suffix: str = "sif"  # "sif" (SIF-50K's sentence) or "rl" (the reference RL/eval sentence, no "with depth")
    judge: str = "rule"  # "rule" (offline) or "openai" (OpenAI-compatible judge)
    max_new_tokens: int = 1024
    temperature: float = 0.0
    scripted_seed: int = 0
    name: str | None = None

    def __post_init__(self):
        if self.benchmark not in BENCHMARKS:
            raise ConfigError(f"unknown benchmark {self.benchmark!r}; choose from {', '.join(BENCHMARKS)}")
        if self.suffix not in SUFFIXES:
            raise ConfigError(f"suffix must be one of {', '.join(SUFFIXES)}, not {self.suffix!r}")
        if self.judge not in ("rule", "openai"):
            raise ConfigError(f"judge must be 'rule' or 'openai', not {self.judge!r}")
        for name in ("limit", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")

    @classmethod
    def from_json(cls, obj: dict) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


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


def make_backend(config: EvalConfig):
    """The backend a config names; `scripted` is the ground-truth predictor for tests/backfill."""
    if config.backend == "scripted":
        from evaluation.scripted import ScriptedBackend

        return ScriptedBackend(seed=config.scripted_seed)
    from inference.backends import load_backend

    return load_backend(config.backend, config.model, adapter=config.adapter, base_url=config.base_url)


def make_scorer(config: EvalConfig):
    """The open-VQA scorer: the OpenAI-compatible judge, or the offline rule-based one.

    A failed judgment (timeout, HTTP error, unparseable reply) is counted in `.failures` and the
    answer is scored by the rules instead, never silently as 0.
    """
    if config.judge == "rule":
        return rule_based_score
    from training.config import JudgeSettings
    from training.judge import JudgeItem, make_judge

    judge = make_judge(JudgeSettings(kind="openai", send_image=False))

    def judged(question: str, answer: str, prediction: str) -> float:
        score = judge.score_many([JudgeItem(question, answer, prediction)])[0]
        return rule_based_score(question, answer, prediction) if score is None else score

    judged.failures = judge.failures
    return judged


def _predict(backend, record: EvalRecord, config: EvalConfig) -> str:
    if hasattr(backend, "predict_record"):
        return backend.predict_record(record)
    return backend.generate(
        record.image,
        record.depth_image,
        record.question,
        suffix=SUFFIXES[config.suffix],
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
    )


def _fill_size(record: EvalRecord) -> None:
    if (record.width and record.height) or record.image_missing:
        return
    from PIL import Image

    with Image.open(record.image) as im:
        record.width, record.height = im.size


def _open_run(store, config: EvalConfig, resume: str | None) -> tuple[str, EvalConfig]:
    if resume is None:
        return store.create_run(kind="evaluation", config=asdict(config), name=config.name), config
    run = eval_run(store, resume)
    stored = EvalConfig.from_json(run["config"])
    if stored.benchmark != config.benchmark:
        raise ConfigError(f"run {resume} evaluated {stored.benchmark!r}, not {config.benchmark!r}")
    if REDACTED in (stored.base_url or ""):  # credentials in the URL are never stored
        if not config.base_url:
            raise ConfigError(f"run {resume}'s base URL held credentials, which are not stored; pass --base-url again")
        stored.base_url = config.base_url
    return resume, stored


def run_eval(
    store,
    config: EvalConfig,
    *,
    backend=None,
    resume: str | None = None,
    scorer=None,
    report_dir: str | Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> RunResult:
    """Evaluate, store predictions one by one, score, and write the run's report.

    `stop_after` ends the prediction loop early after that many new predictions, leaving the
    run unfinished (what a killed run looks like; used by tests).
    """
    run_id, config = _open_run(store, config, resume)
    loaded = load_benchmark(config.benchmark, config.data, config.images)
    records = loaded.records[: config.limit] if config.limit else loaded.records
    backend = backend if backend is not None else make_backend(config)
    needs_image = getattr(backend, "needs_image", True)
    author = config.model or getattr(backend, "name", config.backend)
    store.update_run(run_id, status="running")

    records, sample_ids = _register_samples(store, config.benchmark, records, loaded.problems)
    done = set(store.run_predictions(run_id))
    missing = [{"id": r.id, "image": r.image} for r in records if r.image_missing]
    failures: list[dict] = []
    predicted = 0
    pending = [(r, sid) for r, sid in zip(records, sample_ids) if sid not in done]
    for record, sid in _progress(pending, progress, f"eval {config.benchmark}"):
        if record.image_missing and needs_image:
            continue
        if stop_after is not None and predicted >= stop_after:
            return RunResult(run_id, {}, predicted, len(records), missing, failures, loaded.problems)
        try:
            text = _predict(backend, record, config)
        except Exception as exc:  # one bad record never stops a run; it is reported and retried on resume
            failures.append({"id": record.id, "error": redact(f"{type(exc).__name__}: {exc}")})
            continue
        store.add_revision(sid, text, origin="prediction", author=author, run_id=run_id)
        predicted += 1

    metrics, per_record = score_run(store, run_id, config, records, sample_ids, scorer or make_scorer(config))
    summary = {
        "records": len(records),
        "predicted": len(per_record),
        "missing_images": len(missing),
        "failures": len(failures),
        "bad_records": len(loaded.problems),
    }
    store.update_run(run_id, status="done", metrics={"summary": summary, **metrics})
    result = RunResult(run_id, metrics, predicted, len(records), missing, failures, loaded.problems)
    if report_dir is not None:
        result.report_paths = write_report(
            Path(report_dir),
            run_id,
            redact_config(asdict(config)),
            summary,
            metrics,
            per_record,
            missing,
            failures,
            loaded.problems,
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


def _register_samples(
    store, benchmark: str, records: list[EvalRecord], problems: list[str]
) -> tuple[list[EvalRecord], list[int]]:
    """Each record as a store sample (idempotent), so predictions can attach to it: the records
    stored and their sample ids. A record the store refuses (a size no picture has, say) is
    added to `problems` and left out, and the run goes on."""
    for r in records[:1]:
        folder = Path(r.image).parent.resolve()
        if not folder.is_relative_to(store.data_root):
            raise ConfigError(
                f"benchmark images in {folder} are outside the store's data root {store.data_root}; "
                "use a store whose data root contains them"
            )
    kept, ids = [], []
    for start in range(0, len(records), SAMPLE_CHUNK):
        with store.transaction():
            for r in records[start : start + SAMPLE_CHUNK]:
                try:
                    _fill_size(r)
                    known = bool(r.width and r.height)
                    ids.append(
                        store.add_sample(
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
                                "size_unknown": not known,
                                **({"depth_map": r.depth} if r.depth else {}),
                            },
                        )
                    )
                except (SifError, OSError, ValueError) as exc:  # one record's problem, not the run's
                    problems.append(f"{r.id}: {exc}")
                    continue
                kept.append(r)
    return kept, ids


def score_run(store, run_id: str, config: EvalConfig, records, sample_ids, scorer) -> tuple[dict, list[dict]]:
    """Metrics over the records that have a prediction in the run, and the per-record scores."""
    texts = store.run_predictions(run_id)
    scored, scores, per_record = [], [], []
    for r, sid in zip(records, sample_ids):
        if sid not in texts:
            continue
        try:
            s = score_record(r, texts[sid], scorer)
        except Exception as exc:  # hostile text met a bug: this record scores as an unreadable answer
            s = {**score_record(r, "", scorer), "error": redact(f"{type(exc).__name__}: {exc}")}
        scored.append(r)
        scores.append(s)
        per_record.append({"id": r.id, "sample_id": sid, "category": r.category, **s})
    kind = BENCHMARKS[config.benchmark].kind
    metrics = aggregate(kind, scored, scores) if scored else {}
    if getattr(scorer, "failures", None):
        metrics["judge_failures"] = dict(scorer.failures)
    return metrics, per_record


def _progress(items: list, show: bool, label: str):
    if not show or not items:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=label, total=len(items), update_period=0.5)


def evaluate(
    db_path: str | Path,
    config: EvalConfig,
    *,
    resume: str | None = None,
    report_dir: str | Path | None = "eval_reports",
) -> RunResult:
    """`sif eval BENCH`: open the store at `db_path` and run (or resume) the evaluation."""
    from db.store import Store

    with Store.open(db_path) as store:
        return run_eval(store, config, resume=resume, report_dir=report_dir)
