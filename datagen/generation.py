"""`sif generate`: SIF chains for samples with ground-truth boxes, by reverse expansion (FORMATS §6).

Per sample: depth map (own, or estimated and cached) → focus plan → step images → teacher →
check and repair → one revision, committed at once. A usable reply becomes a `generated`
revision; anything else is stored verbatim with its problems as an invalid one, so nothing paid
for is lost. A sample's failure stays with that sample: whatever goes wrong while preparing,
asking, checking or analysing it is recorded with it (a revision, or the run's failure list)
and the run goes on. A run is recorded in `runs`; killing the process at any moment and
rerunning with `--resume RUN` carries on with no duplicate and no loss, and does not retry the
samples that already failed in that run.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import sys
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, fields
from functools import partial

import numpy as np

from common.openai_client import USAGE_KEYS, ChatClient, ChatConfig
from common.processes import exit_with_parent
from common.redact import REDACTED, redact
from common.settings import DEFAULT_DEPTH_MODEL
from datagen.depth_source import DepthEstimator, DepthModelError, estimate_and_cache
from datagen.instruction import teacher_messages
from datagen.progress import progress_bar
from datagen.reply import DEFAULT_BOX_TOLERANCE, check_reply
from datagen.teachers import OpenAITeacher, TeacherJob, TemplateTeacher
from db.store import ChainAnalysis, analyse_chain, analyse_or_keep, depth_source
from sif.chain import Chain
from sif.depth import DepthMap
from sif.errors import ConfigError
from sif.plan import plan_focus_detailed

TEACHERS = ("template", "openai")
OUTCOMES = ("generated", "repaired", "invalid", "request_failed", "skipped")
USAGE = USAGE_KEYS
PREPARERS = 16  # samples prepared at once (in threads, or queued for the worker processes)


@dataclass
class GenerateConfig:
    """Everything that shapes a generation run; recorded in the run (never the API key)."""

    teacher: str = "template"
    base_url: str | None = None  # default: $SIF_OPENAI_BASE_URL
    model: str | None = None  # default: $SIF_OPENAI_MODEL
    api_key_env: str = "OPENAI_API_KEY"  # the variable's name; the key itself is never stored
    dataset: str | None = None
    limit: int | None = None
    retry_invalid: bool = False  # also redo samples whose current chain is an invalid generated one
    concurrency: int = 8
    rate_limit_per_s: float | None = None
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    temperature: float | None = 0.2
    max_tokens: int | None = 2048
    depth_model: str = DEFAULT_DEPTH_MODEL
    distractor_prob: float = 0.5
    seed: int = 0
    box_tolerance: float = DEFAULT_BOX_TOLERANCE
    step_image_max_side: int = 768  # the step images' longer side at most (px): the teacher needs no more
    step_image_quality: int = 75  # their JPEG quality
    # Worker processes for the CPU work of each sample (depth map, plan, step images, reply
    # check and analysis), leaving this process the I/O: requests and the store. None: one per
    # core (at most 8); 0: none, threads of this process do it (JPEG encoding holds the GIL).
    worker_processes: int | None = None
    price_prompt_per_m: float = 0.0  # USD per million prompt tokens, for the cost metric
    price_completion_per_m: float = 0.0

    # Settings a resumed run may change: they affect speed, not the data.
    RUNTIME = frozenset(
        {
            "base_url",
            "api_key_env",
            "concurrency",
            "rate_limit_per_s",
            "timeout_s",
            "max_retries",
            "backoff_s",
            "worker_processes",
        }
    )

    def __post_init__(self):
        if self.teacher not in TEACHERS:
            raise ConfigError(f"teacher must be one of {', '.join(TEACHERS)}, got {self.teacher!r}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.limit is not None and self.limit < 0:
            raise ConfigError(f"limit must be 0 or more, got {self.limit}")

    def chat_config(self) -> ChatConfig:
        return ChatConfig.of(self)

    def record(self) -> dict:
        """The run's config as stored: the resolved endpoint (credentials in it redacted) and
        model for the VLM teacher."""
        out = asdict(self)
        if self.teacher == "openai":
            chat = self.chat_config()
            out["base_url"], out["model"] = redact(chat.base_url), chat.model
        else:
            out["base_url"] = out["model"] = None
            out["template_text"] = True
        return out

    @classmethod
    def from_record(cls, record: dict, **runtime) -> GenerateConfig:
        """The config of a recorded run, with runtime settings (see RUNTIME) replaced."""
        changed = sorted(k for k, v in runtime.items() if k not in cls.RUNTIME and v != record.get(k))
        if changed:
            raise ConfigError(
                f"a resumed run keeps its recorded {', '.join(changed)}; "
                f"only {', '.join(sorted(cls.RUNTIME))} may change"
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values.update({k: v for k, v in runtime.items() if v is not None})
        if REDACTED in (values.get("base_url") or ""):
            raise ConfigError(
                f"the run's base URL held credentials, which are never stored ({values['base_url']}); "
                "pass --base-url again to resume it"
            )
        return cls(**values)


@dataclass
class Prepared:
    job: TeacherJob
    new_depth: str | None = None  # relative path of a depth map estimated for this sample


@dataclass
class GenerateSummary:
    run_id: str
    metrics: dict
    errors: list[str] = field(default_factory=list)


def sample_rng(seed: int, sample_id) -> np.random.Generator:
    """The same plan for the same sample and seed, whatever the order or the resume point."""
    return np.random.default_rng([seed, zlib.crc32(str(sample_id).encode())])


def plan_request(
    image_path, depth: DepthMap | tuple[str, str], sample, cfg: GenerateConfig, *, needs_images: bool, image=None
) -> TeacherJob:
    """The plan and (for a VLM) the request of a sample whose depth map is known, as (path,
    encoding) or loaded: the CPU-heavy part of preparing it, run in a worker process when there
    is a pool. `image` is the picture when it is already decoded."""
    if isinstance(depth, tuple):
        depth = DepthMap.load(*depth)
    plan = plan_focus_detailed(
        sample.gt_boxes, depth, sample_rng(cfg.seed, sample.id), distractor_prob=cfg.distractor_prob
    )
    messages = None
    if needs_images:  # the template teacher does not: from the path, a big JPEG is decoded at a reduced scale
        messages = teacher_messages(
            image if image is not None else image_path,
            sample.question,
            sample.answer,
            plan,
            max_side=cfg.step_image_max_side,
            quality=cfg.step_image_quality,
        )
    return TeacherJob(sample.question, sample.answer, plan, messages)


def sample_files(store, sample) -> tuple[str, tuple[str, str] | None]:
    """The sample's picture and its own exact depth map as (path, encoding), or None when it has
    none; refuses a sample that cannot be trained on (even the template teacher)."""
    if not sample.gt_boxes:
        raise ConfigError(f"sample {sample.id}: gt_boxes is empty")
    image_path = store.resolve(sample.image)
    if not image_path.is_file():
        raise FileNotFoundError(f"image not found: {image_path}")
    source = depth_source(sample)
    depth = store.depth_file(sample)
    if source is not None and depth is None:
        raise FileNotFoundError(f"depth map not found: {store.resolve(source[0])}")
    return str(image_path), depth


def prepare_sample(store, sample, cfg: GenerateConfig, *, needs_images: bool, estimator: DepthEstimator) -> Prepared:
    """Depth (estimated and cached when the sample has none), plan and request, in this thread."""
    image_path, depth = sample_files(store, sample)
    image = new_depth = None
    if depth is None:
        path, depth, image = estimate_and_cache(image_path, store.data_root, estimator)
        new_depth = store.relative(path)
    return Prepared(plan_request(image_path, depth, sample, cfg, needs_images=needs_images, image=image), new_depth)


def worker_count(cfg: GenerateConfig) -> int:
    """How many worker processes a run uses (GenerateConfig.worker_processes resolved)."""
    if cfg.worker_processes is not None:
        return max(0, cfg.worker_processes)
    return min(8, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 0


class Workers:
    """The run's worker processes (see worker_count), each behind its own executor so that a
    sample always goes to the same one: the depth map decoded for its plan is still in that
    process's cache when its reply is analysed (a 640×480 16-bit PNG takes ~5 ms to decode).

    Create it before the run starts threads: on Linux the workers are forked at once (fast).
    The first is forked with no other thread alive; each later one while the earlier
    executors' queue threads run, which is safe because a worker only uses its own executor's
    queues (made before its fork) and Python resets the import lock in a forked child.
    Elsewhere they are spawned. Work whose worker died runs in a thread instead (`fallbacks`):
    a crashed worker must not cost the replies already paid for."""

    def __init__(self, n: int):
        linux = sys.platform == "linux"
        context = multiprocessing.get_context("fork" if linux else "spawn")
        self.fallbacks = 0
        self._executors = [
            ProcessPoolExecutor(1, mp_context=context, initializer=exit_with_parent, initargs=(os.getpid(),))
            for _ in range(n)
        ]
        gc.freeze()  # the children's garbage collector then leaves the inherited objects (and their pages) alone
        try:
            for executor in self._executors:
                executor.submit(int)  # the first task starts the worker: now, before any thread of the run exists
        finally:
            gc.unfreeze()

    async def run(self, sample_id: int, fn):
        """`fn()` in the worker of this sample (in a thread if that worker died)."""
        executor = self._executors[hash(sample_id) % len(self._executors)]
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except BrokenProcessPool:
            self.fallbacks += 1
            return await asyncio.to_thread(fn)

    def shutdown(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class Outcome:
    """What becomes of one reply: the revision to store (chain or raw text) and how it went."""

    kind: str  # one of OUTCOMES
    chain: Chain | str
    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    analysis: ChainAnalysis | None = None  # the store's analysis of `chain`, made beside the check


def judge_reply(text: str, plan, sample, tolerance: float, depth_file) -> Outcome:
    """Check a reply against the plan (repairing what is safe) and analyse what will be stored:
    pure CPU work, run in a worker process when there is a pool. A reply that cannot be repaired
    — or that the check itself fails on — is kept verbatim: it was paid for, and a curator may
    still fix it."""
    size = None if sample.meta.get("size_unknown") else (sample.width, sample.height)
    try:
        check = check_reply(text, plan, sample.answer, tolerance=tolerance, size=size)
    except Exception as exc:  # hostile text met a bug: the reply is stored with the reason
        problems = [f"the reply could not be checked ({type(exc).__name__}: {exc})"]
    else:
        if check.chain is not None:
            return Outcome(
                "generated",
                check.chain,
                repairs=check.repairs,
                analysis=analyse_chain(check.chain, sample.gt_boxes, depth_file),
            )
        problems = check.problems
    return Outcome(
        "invalid", text, problems=problems, analysis=analyse_or_keep(text, sample.gt_boxes, depth_file, problems)
    )


class _Run:
    """One generation run over a list of sample ids, committing each sample as it finishes."""

    def __init__(self, store, cfg: GenerateConfig, run_id: str, teacher, estimator, previous: dict):
        self.store, self.cfg, self.run_id = store, cfg, run_id
        self.teacher, self.estimator = teacher, estimator
        self.previous = previous
        # Every key exists from the start: the writer thread reads these while the loop updates them.
        self.counts: Counter = Counter(dict.fromkeys(OUTCOMES, 0))
        self.usage: Counter = Counter(dict.fromkeys(USAGE, 0))
        self.errors: list[str] = []
        self.started = time.monotonic()
        self.author = "template" if teacher.name == "template" else f"teacher:{cfg.chat_config().model}"
        self.notes = ["template"] if teacher.name == "template" else []
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sif-generate-writer")
        self._workers: Workers | None = None  # started by run()

    async def prepare(self, sample_id) -> tuple | None:
        """(sample, Prepared) ready for the teacher, or None for a sample that cannot be prepared
        (counted, reported, and recorded with the sample, so that a resume does not retry it)."""
        try:
            sample = self.store.get_sample(sample_id)
            if self._workers is not None and depth_source(sample) is not None:  # all of it in a worker process
                image_path, depth = sample_files(self.store, sample)
                assert depth is not None  # sample_files refuses a sample whose own depth map is missing
                prepared = Prepared(
                    await self._workers.run(
                        sample.id, partial(plan_request, image_path, depth, sample, self.cfg, needs_images=True)
                    )
                )
            else:
                prepared = await asyncio.to_thread(
                    prepare_sample,
                    self.store,
                    sample,
                    self.cfg,
                    needs_images=self.teacher.needs_images,
                    estimator=self.estimator,
                )
            if prepared.new_depth:
                self.store.update_sample_depth(sample.id, prepared.new_depth, "gray16_depth")
                sample = self.store.get_sample(sample_id)  # its depth map is now known: the reply's analysis reads it
        except DepthModelError:
            raise  # every sample would fail: the run stops (resumable)
        except Exception as exc:  # a bad record, or one that breaks something: report it and go on
            self.counts["skipped"] += 1
            reason = redact(str(exc) or type(exc).__name__)
            self.errors.append(f"sample {sample_id}: {reason}")
            await asyncio.get_running_loop().run_in_executor(
                self._writer, self.store.record_failure, self.run_id, sample_id, "prepare", reason
            )
            return None
        return sample, prepared

    async def answer(self, sample, prepared: Prepared) -> None:
        """Ask the teacher, then check, analyse and commit the reply."""
        loop = asyncio.get_running_loop()
        try:
            reply = await self.teacher.write(prepared.job)
        except Exception as exc:  # ChatError, or anything else the request ran into: nothing was paid for
            outcome = Outcome("request_failed", "", problems=[f"teacher request failed: {redact(str(exc))}"])
        else:
            for k in USAGE:
                self.usage[k] += int(reply.usage.get(k) or 0)
            judge = partial(
                judge_reply,
                reply.text,
                prepared.job.plan,
                sample,
                self.cfg.box_tolerance,
                self.store.depth_file(sample),
            )
            try:
                outcome = await (
                    self._workers.run(sample.id, judge)
                    if self._workers is not None
                    else loop.run_in_executor(self._writer, judge)
                )
            except Exception as exc:  # the paid reply is stored all the same, analysed by the store
                problem = f"the reply could not be checked ({type(exc).__name__}: {exc})"
                outcome = Outcome("invalid", reply.text, problems=[problem])
        # Committing runs on one writer thread, so the event loop keeps serving requests.
        await loop.run_in_executor(self._writer, self._save, sample.id, outcome)

    def _save(self, sample_id: int, outcome: Outcome) -> None:
        """The revision and the run's metrics, in one transaction: a kill loses neither alone."""
        problems, repairs = outcome.problems, outcome.repairs
        notes = (
            self.notes
            + (["invalid: " + "; ".join(problems)] if problems else [])
            + (["repaired: " + "; ".join(repairs)] if repairs else [])
        )
        with self.store.transaction():
            self.store.add_revision(
                sample_id,
                outcome.chain,
                origin="generated",
                author=self.author,
                run_id=self.run_id,
                note=" | ".join(notes) or None,
                extra_problems=list(problems),
                analysis=outcome.analysis,
            )
            self.counts[outcome.kind] += 1
            self.counts["repaired"] += bool(repairs)
            self.store.update_run(self.run_id, metrics=self.metrics())

    def metrics(self) -> dict:
        prev = self.previous
        counts = {k: prev.get(k, 0) + self.counts[k] for k in OUTCOMES}
        usage = {k: prev.get(k, 0) + self.usage[k] for k in USAGE}
        events = getattr(getattr(self.teacher, "client", None), "events", Counter())
        elapsed = time.monotonic() - self.started
        done_now = sum(self.counts.values()) - self.counts["repaired"]
        cost = (
            usage["prompt_tokens"] * self.cfg.price_prompt_per_m
            + usage["completion_tokens"] * self.cfg.price_completion_per_m
        ) / 1e6
        return {
            **counts,
            **usage,
            "requests": prev.get("requests", 0) + events["requests"],
            "retries": prev.get("retries", 0) + events["retries"],
            "cost_usd": round(cost, 6),
            "elapsed_s": round(prev.get("elapsed_s", 0.0) + elapsed, 3),
            "samples_per_s": round(done_now / elapsed, 3) if elapsed > 0 else 0.0,
        }

    async def run(self, ids: list, *, progress: bool) -> None:
        self.store.update_run(self.run_id, status="running")
        if self.teacher.needs_images and ids and worker_count(self.cfg):
            self._workers = Workers(worker_count(self.cfg))  # first: forked before any thread starts
        pending = iter(ids)
        # Samples are prepared ahead (at most `concurrency` waiting), so the CPU work for the next
        # requests overlaps the wait for the current ones instead of delaying each request.
        ready: asyncio.Queue = asyncio.Queue(maxsize=self.cfg.concurrency)
        n_ask = min(self.cfg.concurrency, len(ids)) or 1
        with progress_bar(enabled=progress) as bar:
            task = bar.add_task(f"generate ({self.teacher.name})", total=len(ids), status="")

            def advance():
                c = self.counts
                bar.update(task, advance=1, status=f"ok {c['generated']} invalid {c['invalid'] + c['request_failed']}")

            async def preparer():
                for sample_id in pending:  # one shared iterator: each id goes to exactly one preparer
                    job = await self.prepare(sample_id)
                    if job is None:
                        advance()
                    else:
                        await ready.put(job)

            async def prepare_all():
                await asyncio.gather(*(preparer() for _ in range(min(PREPARERS, n_ask))))
                for _ in range(n_ask):
                    await ready.put(None)  # one "no more work" per asker

            async def asker():
                while (job := await ready.get()) is not None:
                    await self.answer(*job)
                    advance()

            try:
                await asyncio.gather(prepare_all(), *(asker() for _ in range(n_ask)))
            except Exception:
                self.store.update_run(self.run_id, status="failed", metrics=self.metrics())
                raise
            finally:
                self._writer.shutdown(wait=True)
                if self._workers is not None:
                    self._workers.shutdown()
                    if self._workers.fallbacks:
                        self.errors.append(
                            f"a worker process died: {self._workers.fallbacks} samples' CPU work "
                            "ran in the main process instead"
                        )
        self.store.update_run(self.run_id, status="done", metrics=self.metrics())


def select_work(store, cfg: GenerateConfig, run_id: str) -> list[int]:
    """Samples with ground-truth boxes and no current chain that this run has not written yet;
    `limit` counts the samples this run already wrote (a resumed run does not exceed it)."""
    limit = None if cfg.limit is None else max(0, cfg.limit - store.count(run_id=run_id))
    if limit == 0:
        return []
    return store.samples_without_chain(
        dataset=cfg.dataset, exclude_run=run_id, retry_invalid=cfg.retry_invalid, limit=limit
    )


async def _generate(
    store, cfg: GenerateConfig, run_id: str, previous: dict, *, progress: bool, estimator: DepthEstimator
) -> _Run:
    ids = select_work(store, cfg, run_id)
    if cfg.teacher == "template":
        return await _drive(store, cfg, run_id, TemplateTeacher(), estimator, previous, ids, progress)
    async with ChatClient(cfg.chat_config()) as client:
        teacher = OpenAITeacher(client, temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        return await _drive(store, cfg, run_id, teacher, estimator, previous, ids, progress)


async def _drive(store, cfg, run_id, teacher, estimator, previous, ids, progress) -> _Run:
    run = _Run(store, cfg, run_id, teacher, estimator, previous)
    await run.run(ids, progress=progress)
    return run


def generate(
    store,
    cfg: GenerateConfig | None = None,
    *,
    resume: str | None = None,
    name: str | None = None,
    progress: bool = True,
    estimator: DepthEstimator | None = None,
    on_start=None,
    **runtime,
) -> GenerateSummary:
    """Run (or resume) a generation run; returns its id, metrics and per-record errors.

    A new run takes `cfg` (or `runtime` as its fields); a resumed run takes its recorded config,
    with `runtime` replacing speed settings only. `on_start(run_id)` is called once the run is
    recorded (so a caller can name it for `--resume`)."""
    previous: dict = {}
    if resume:
        if cfg is not None:
            raise ConfigError("a resumed run uses its recorded config; pass only runtime settings")
        record = store.get_run(resume)
        if record["kind"] != "generation":
            raise ConfigError(f"run {resume!r} is a {record['kind']} run, not a generation run")
        cfg = GenerateConfig.from_record(record["config"], **runtime)
        previous = dict(record["metrics"] or {})
        run_id = resume
    else:
        cfg = cfg or GenerateConfig(**runtime)
        run_id = store.create_run("generation", cfg.record(), name=name)
    if on_start is not None:
        on_start(run_id)
    estimator = estimator or DepthEstimator(cfg.depth_model)
    failed_before = len(store.run_failures(run_id))
    run = asyncio.run(_generate(store, cfg, run_id, previous, progress=progress, estimator=estimator))
    if failed_before:
        run.errors.append(
            f"{failed_before} sample(s) that failed earlier in this run were not retried (a new run retries them)"
        )
    return GenerateSummary(run_id, store.get_run(run_id)["metrics"], run.errors)
