"""`sif train demo-run`: a small, honest GRPO-SIF experiment on a laptop CPU.

Per seed: tiny model → synthetic data through the store → SFT (full fine-tune) → GRPO-SIF with
all four rewards, and two ablations from the same SFT model (no grounding reward; no depth
input) → each model answers the held-out scenes, its chains are stored as `prediction`
revisions of an evaluation run and scored from the store (`evaluation.model_eval`). The report
(OUT/report.md and OUT/report.json) sets every figure against chance (blind answers, boxes that
ignore the picture), gives mean ± standard error over the seeds, GRPO-SIF's gain over SFT
(paired by seed), and the training curves the store keeps. The first seed's GRPO-SIF model stays
at OUT/model; OUT defaults to $SIF_HOME/tiny-demo (SIF_HOME defaults to ~/.cache/sif), where
`--model demo` finds it.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.settings import _merge, build, parse_overrides
from sif.errors import ConfigError
from sif.paths import demo_model_dir
from training.config import GRPOSettings, SFTSettings
from training.tiny_model import TinyModelConfig

# report key, key in `evaluation.metrics` (synth), label
METRICS = (
    ("format_valid", "format_validity", "format-valid rate"),
    ("accuracy", "accuracy", "answer accuracy"),
    ("final_hiou", "final_hiou", "mean final-step HIoU"),
    ("depth_consistent", "depth_consistency", "depth-consistency rate"),
    ("total_reward", "total_reward", "mean total reward"),
)
# GRPO variants: name, label, settings changed from the full GRPO-SIF run
VARIANTS: dict[str, tuple[str, dict]] = {
    "grpo": ("GRPO-SIF (all four rewards)", {}),
    "grpo_no_bbox": ("GRPO without the grounding reward", {"rewards": {"weights": {"bbox": 0.0}}}),
    "grpo_no_depth": ("GRPO without the depth input", {"depth_input": False}),
}
BLIND_BOXES = (
    ("whole_image", "whole image"),
    ("centred", "centred box"),
    ("mean_box", "mean training box"),
    ("kind_mean_box", "mean training box of the question kind"),
)
TARGETS = {"sft_format_valid": 0.95, "sft_accuracy_over_chance": 2.0, "sft_final_hiou": 0.3, "grpo_gain_se": 2.0}


def default_demo_dir() -> Path:
    return demo_model_dir().parent


@dataclass
class DemoSettings:
    """Sizes meant for one seed in about 20 minutes on 2 CPU cores (measured times: docs/demo-run.md)."""

    samples: int = 2000
    seed: int = 0  # the first seed; seed k runs with seed + k
    seeds: int = 1
    workers: int = 2  # stages that run at once, each in its own process
    threads: int = 1  # torch threads per worker process
    # Scenes of one size (the vision tower sees 8×6 tokens of 16×16 pixels per picture), 2–4 objects.
    synth: dict = field(
        default_factory=lambda: {
            "min_objects": 2,
            "max_objects": 4,
            "sizes": ((192, 144),),
            "distractor_prob": 0.0,
            "split_ratio": 0.05,
            "kinds": ("left_colour", "right_colour", "nearest", "farthest"),
        }
    )
    eval_samples: int = 100  # at most: all held-out samples
    max_new_tokens: int = 128
    eval_batch_size: int = 16
    rl_samples: int = 200
    ablations: tuple[str, ...] = ("grpo_no_bbox", "grpo_no_depth")  # run after the full GRPO-SIF
    # One 16×16 patch per language-model token; one token per 3-decimal number; M-RoPE with enough
    # rotation per row and column to tell them apart (see TinyModelConfig).
    tiny: dict = field(
        default_factory=lambda: {
            "number_tokens": True,
            "phrase_merges": True,
            "patch_size": 16,
            "spatial_merge_size": 1,
            "temporal_patch_size": 1,
            "window_patches": 2,
            "max_pixels": 16 * 16 * 48,
            "min_pixels": 16 * 16 * 4,
            "rope_theta": 10.0,
            "mrope_section": (4, 6, 6),
        }
    )
    sft: dict = field(
        default_factory=lambda: {
            "full_finetune": True,
            "freeze_vision_tower": False,
            "image_max_pixels": None,
            "learning_rate": 2e-3,
            "num_train_epochs": 3,
            "warmup_ratio": 0.05,
            "max_length": 1024,
            "per_device_train_batch_size": 16,
            "gradient_accumulation_steps": 1,
            "eval_ratio": 0.0,
            "logging_steps": 10,
            "gradient_checkpointing": False,
            "trl": {"save_strategy": "no", "disable_tqdm": True},
        }
    )
    grpo: dict = field(
        default_factory=lambda: {
            "full_finetune": True,
            "freeze_vision_tower": True,
            "image_max_pixels": None,
            "learning_rate": 5e-5,
            "max_steps": 40,
            "num_generations": 8,
            "per_device_train_batch_size": 16,
            "max_completion_length": 128,
            "temperature": 1.0,
            "logging_steps": 5,
            "save_steps": 1000,
            "rollouts_per_step": 2,
            "gradient_checkpointing": False,
            "trl": {"log_completions": False, "save_strategy": "no", "disable_tqdm": True},
        }
    )


def demo_settings(overrides: list[str] | None = None, **fields) -> DemoSettings:
    """The defaults with `--set key=value` overrides merged in (nested dicts are merged, not replaced)."""

    data = _merge(
        asdict(DemoSettings()), {**parse_overrides(overrides), **{k: v for k, v in fields.items() if v is not None}}
    )
    return build(DemoSettings, data)


def _say(console, message: str) -> None:
    if console is not None:
        console.print(message)


def demo_run(
    out: str | Path | None = None,
    settings: DemoSettings = DemoSettings(),
    *,
    evaluate: bool = True,
    progress: bool = True,
) -> dict:
    """Run every seed and write OUT/report.md and OUT/report.json; returns the report.

    The stages run in `settings.workers` processes of `settings.threads` torch threads each (one
    single-threaded process per core beats one process on every core on a shared CPU), in
    dependency order: per seed, the tiny model and data, then SFT, then the GRPO runs and the
    evaluations as soon as their model exists.
    """
    from rich.console import Console

    unknown = set(settings.ablations) - set(VARIANTS)
    if unknown:
        raise ConfigError(f"ablations: unknown {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    console = Console() if progress else None
    out = Path(out) if out is not None else default_demo_dir()
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    start = time.monotonic()
    seeds = [settings.seed + k for k in range(settings.seeds)]
    results = _schedule(work, settings, seeds, evaluate=evaluate, console=console)
    per_seed = [_seed_report(work / f"seed{seed}", seed, results, settings, evaluate) for seed in seeds]
    first = per_seed[0]
    model = out / "model"
    if model.exists():
        shutil.rmtree(model)
    shutil.copytree(
        work / f"seed{seeds[0]}" / "grpo",
        model,
        ignore=shutil.ignore_patterns("checkpoint-*", "*.sqlite*", "flat_depth"),
    )
    report: dict = {"settings": asdict(settings), "seeds": per_seed, "data": first["data"]}
    if evaluate:
        report.update(summarize(per_seed, ["sft", "grpo", *settings.ablations]))
    report.update(
        model=str(model),
        db=first["db"],
        wall_s=round(time.monotonic() - start, 1),
        workers=settings.workers,
        threads_per_worker=settings.threads,
    )
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(report_markdown(report))
    _say(console, f"[bold green]✔ report: {out / 'report.md'}; model: {model}[/bold green]")
    return report


# ---------------------------------------------------------------- stages (each runs in a worker process)


def _in_worker(func, log: str, threads: int, *args) -> dict:
    """Run a stage with `threads` torch threads, its output (trainer logs, warnings) going to `log`."""
    import contextlib

    import torch

    torch.set_num_threads(threads)
    with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        return func(*args)


def _stage_prepare(work: str, seed: int, settings: DemoSettings) -> dict:
    from training.synthetic_data import prepare_synthetic
    from training.tiny_model import build_tiny_model

    work_dir = Path(work)
    build_tiny_model(work_dir / "base", TinyModelConfig(**{**settings.tiny, "seed": seed}))
    data = prepare_synthetic(work_dir, settings.samples, seed, rl_n=settings.rl_samples, **settings.synth)
    return {"data": data.summary, "db": str(data.db), "sft_dir": str(data.sft_dir), "rl_file": str(data.rl_file)}


def _stage_sft(work: str, seed: int, settings: DemoSettings, prepared: dict) -> dict:
    from training.sft import run_sft

    run_sft(
        build(
            SFTSettings,
            {
                **settings.sft,
                "seed": seed,
                "model": str(Path(work) / "base"),
                "data": prepared["sft_dir"],
                "output_dir": str(Path(work) / "sft"),
                "db": prepared["db"],
                "run_name": "demo-sft",
            },
        )
    )
    return {}


def _stage_grpo(work: str, seed: int, settings: DemoSettings, prepared: dict, variant: str) -> dict:
    from training.grpo import run_grpo

    base = {
        **settings.grpo,
        "seed": seed,
        "model": str(Path(work) / "sft"),
        "data": prepared["rl_file"],
        "output_dir": str(Path(work) / variant),
        "db": prepared["db"],
        "run_name": f"demo-{variant.replace('_', '-')}",
    }
    run_grpo(build(GRPOSettings, _merge(base, VARIANTS[variant][1])))
    return {}


def _stage_eval(work: str, seed: int, settings: DemoSettings, prepared: dict, variant: str) -> dict:
    """Answer the held-out scenes into the store and score them from there."""
    from db.store import Store
    from evaluation.model_eval import predict_to_store, score_stored, synth_records
    from training.data import flat_depth_image

    with Store.open(prepared["db"]) as store:
        records = synth_records(store, split="test", limit=settings.eval_samples)
        flat = None
        if VARIANTS.get(variant, ("", {}))[1].get("depth_input") is False:
            flat = [flat_depth_image(str(r.depth_image), Path(work) / "flat_depth") for _, r in records]
        run_id = predict_to_store(
            store,
            Path(work) / variant,
            records,
            name=f"demo-eval-{variant.replace('_', '-')}",
            config={"seed": seed, "variant": variant, "depth_input": flat is None},
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.eval_batch_size,
            depth_images=flat,
        )
        overall = score_stored(store, run_id, records)["metrics"]["overall"]
    return {"eval_run": run_id, "n": overall["n"], **{key: overall[src] for key, src, _ in METRICS}}


HEARTBEAT_S = 60.0
STAGE_TITLES = {
    "prepare": "tiny Qwen2.5-VL model and synthetic data through the store",
    "sft": "SFT (full fine-tune)",
    "eval": "answering the held-out scenes into the store",
}


def _schedule(work: Path, settings: DemoSettings, seeds: list[int], *, evaluate: bool, console) -> dict:
    """Run every stage of every seed in worker processes, each as soon as what it needs is done;
    returns {(stage, seed[, variant]): (result, seconds)}."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    variants = ["grpo", *settings.ablations]
    done: dict = {}
    ready: list[tuple] = [("prepare", seed) for seed in seeds]
    running: dict = {}
    rank = {"prepare": 0, "sft": 1, "grpo": 2, "eval": 3}

    def start(pool, key) -> None:
        kind, seed, *rest = key
        folder = str(work / f"seed{seed}")
        args: tuple = (folder, seed, settings)
        if kind != "prepare":
            args += (done[("prepare", seed)][0],)
        if rest:
            args += (rest[0],)
        func = {"prepare": _stage_prepare, "sft": _stage_sft, "grpo": _stage_grpo, "eval": _stage_eval}[kind]
        title = VARIANTS[rest[0]][0] if kind == "grpo" else STAGE_TITLES[kind] + (f" ({rest[0]})" if rest else "")
        log = work / f"seed{seed}" / f"{_stage_name(key)}.log"
        _say(console, f"[bold]▶ seed {seed}: {title}[/bold] (log: {log})")
        running[pool.submit(_in_worker, func, str(log), settings.threads, *args)] = (key, time.monotonic())

    def finished(key) -> list[tuple]:
        kind, seed, *rest = key
        if kind == "prepare":
            return [("sft", seed)]
        if kind == "sft":
            return [("grpo", seed, v) for v in variants] + ([("eval", seed, "sft")] if evaluate else [])
        if kind == "grpo" and evaluate:
            return [("eval", seed, rest[0])]
        return []

    Path(work).mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (work / f"seed{seed}").mkdir()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(settings.workers, mp_context=context) as pool:
        while ready or running:
            ready.sort(key=lambda k: (rank[k[0]], k[1:]))
            while ready and len(running) < settings.workers:
                start(pool, ready.pop(0))
            complete, _ = wait(running, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
            if not complete:
                now = time.monotonic()
                busy = ", ".join(f"seed {k[1]} {_stage_name(k)} {now - t0:.0f} s" for k, t0 in running.values())
                _say(console, f"  … running: {busy}")
            for future in complete:
                key, t0 = running.pop(future)
                try:
                    result = future.result()
                except BaseException:
                    for other in running:
                        other.cancel()
                    raise
                done[key] = (result, round(time.monotonic() - t0, 1))
                _say(console, f"  seed {key[1]}: {_stage_name(key)} done in {done[key][1]:.0f} s")
                ready += finished(key)
    return done


def _stage_name(key: tuple) -> str:
    """prepare, sft, grpo, grpo_no_bbox, …, eval_sft, eval_grpo, …"""
    kind, _, *rest = key
    return rest[0] if kind == "grpo" else "_".join([kind, *rest])


def _seed_report(work: Path, seed: int, done: dict, settings: DemoSettings, evaluate: bool) -> dict:
    from db.store import Store
    from evaluation.baselines import chance_baselines
    from evaluation.model_eval import synth_records

    prepared = done[("prepare", seed)][0]
    timings = {_stage_name(key): seconds for key, (_, seconds) in done.items() if key[1] == seed}
    result: dict = {"seed": seed, "data": prepared["data"], "db": prepared["db"], "timings_s": timings, "runs": {}}
    with Store.open(prepared["db"]) as store:
        result["curves"] = training_curves(store)
        if evaluate:
            test = [r for _, r in synth_records(store, split="test", limit=settings.eval_samples)]
            train = [r for _, r in synth_records(store, split="train")]
            result["baselines"] = chance_baselines(train, test)
            for key, (metrics, _) in done.items():
                if key[0] == "eval" and key[1] == seed:
                    result["runs"][key[2]] = metrics
    return result


def _brief(metrics: dict) -> str:
    return ", ".join(f"{k} {metrics[k]:.3f}" for k, _, _ in METRICS if metrics.get(k) is not None)


def training_curves(store) -> dict:
    """Each training run's logged steps (loss; GRPO: reward, each reward's mean, KL), by run name."""
    keep = ("loss", "reward", "kl", "learning_rate")
    curves = {}
    for run in reversed(store.list_runs("training")):
        history = run["metrics"].get("log_history") or []
        rows = [
            {k: v for k, v in e.items() if k == "step" or k in keep or k.startswith("rewards/") and k.endswith("/mean")}
            for e in history
            if "step" in e and ("loss" in e or "reward" in e)
        ]
        curves[run["name"] or run["id"]] = rows
    return curves


# ---------------------------------------------------------------- statistics over seeds


def mean_se(values: list[float]) -> dict:
    """Mean and standard error of the mean (sample standard deviation / √n; None for one value)."""
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else None
    return {"mean": mean, "se": se, "values": values}


def summarize(seeds: list[dict], variants: list[str]) -> dict:
    """Mean ± s.e. per variant and metric, GRPO-SIF minus SFT paired by seed, chance, targets."""
    stats = {
        v: {key: mean_se([s["runs"][v][key] for s in seeds]) for key, _, _ in METRICS if key in seeds[0]["runs"][v]}
        for v in variants
    }
    gains = {
        key: mean_se([s["runs"]["grpo"][key] - s["runs"]["sft"][key] for s in seeds])
        for key in ("final_hiou", "total_reward", "accuracy", "format_valid", "depth_consistent")
    }
    chance = mean_se([s["baselines"]["accuracy"]["overall"]["chance"] for s in seeds])["mean"]
    blind = {k: mean_se([s["baselines"]["final_hiou"][k] for s in seeds])["mean"] for k, _ in BLIND_BOXES}
    sft = [s["runs"]["sft"] for s in seeds]
    targets = {
        "sft_format_valid_every_seed": all(r["format_valid"] >= TARGETS["sft_format_valid"] for r in sft),
        "sft_accuracy_2x_chance": stats["sft"]["accuracy"]["mean"] >= TARGETS["sft_accuracy_over_chance"] * chance,
        "sft_final_hiou_0.3": stats["sft"]["final_hiou"]["mean"] >= TARGETS["sft_final_hiou"],
    }
    for key in ("final_hiou", "total_reward"):
        g = gains[key]
        targets[f"grpo_{key}_gain_over_2se"] = g["se"] is not None and g["mean"] > TARGETS["grpo_gain_se"] * g["se"]
    means = {v: {k: s["mean"] for k, s in stats[v].items()} for v in variants}
    for v in variants:
        means[v]["n"] = seeds[0]["runs"][v]["n"]
    return {
        **means,
        "stats": stats,
        "gains": gains,
        "chance": {"accuracy": chance, "final_hiou": blind},
        "targets": targets,
    }


# ---------------------------------------------------------------- report


def _cell(stat: dict) -> str:
    return f"{stat['mean']:.3f}" + (f" ± {stat['se']:.3f}" if stat.get("se") is not None else "")


def report_markdown(report: dict) -> str:
    seeds = report["seeds"]
    lines = [
        "# sif train demo-run",
        "",
        f"Seeds: {', '.join(str(s['seed']) for s in seeds)}. Data (seed {seeds[0]['seed']}): {report['data']}",
        "",
    ]
    if "stats" in report:
        variants = list(report["stats"])
        labels = {"sft": "SFT", **{k: v[0] for k, v in VARIANTS.items()}}
        n = len(seeds)
        lines += [
            f"## Held-out results (mean{' ± standard error over ' + str(n) + ' seeds' if n > 1 else ', one seed'})",
            "",
            "| metric | chance | " + " | ".join(labels[v] for v in variants) + " |",
            "| --- | --- | " + " | ".join("---" for _ in variants) + " |",
        ]
        chance = report["chance"]
        blind = {
            "accuracy": f"{chance['accuracy']:.3f}",
            "final_hiou": ", ".join(f"{chance['final_hiou'][k]:.3f} ({label})" for k, label in BLIND_BOXES),
        }
        for key, _, label in METRICS:
            row = [_cell(report["stats"][v][key]) if key in report["stats"][v] else "—" for v in variants]
            lines.append(f"| {label} | {blind.get(key, '—')} | " + " | ".join(row) + " |")
        lines += ["", f"Held-out samples per seed: {report['sft']['n']}.", ""]
        lines += ["GRPO-SIF minus SFT, paired by seed (mean ± standard error):", ""]
        for key, g in report["gains"].items():
            lines.append(f"- {key}: {_cell(g)}")
        lines += ["", "Targets:", ""]
        lines += [f"- {k}: {'met' if ok else 'NOT met'}" for k, ok in report["targets"].items()]
        lines += [
            "",
            "## Per seed",
            "",
            "| seed | run | " + " | ".join(label for _, _, label in METRICS) + " | chance accuracy | eval run |",
        ]
        lines.append("| --- | --- | " + " | ".join("---" for _ in METRICS) + " | --- | --- |")
        for s in seeds:
            for v, m in s["runs"].items():
                cells = " | ".join(f"{m[k]:.3f}" if m.get(k) is not None else "—" for k, _, _ in METRICS)
                chance_s = s["baselines"]["accuracy"]["overall"]["chance"]
                lines.append(f"| {s['seed']} | {labels[v]} | {cells} | {chance_s:.3f} | {m['eval_run']} |")
        lines += ["", "Chance accuracy per question kind (seed {}):".format(seeds[0]["seed"]), ""]
        for kind, c in seeds[0]["baselines"]["accuracy"].items():
            lines.append(f"- {kind}: uniform {c['uniform']:.3f}, majority {c['majority']:.3f} (n={c['n']})")
    lines += ["", "## Training curves (seed {})".format(seeds[0]["seed"]), ""]
    for run, rows in seeds[0].get("curves", {}).items():
        if not rows:
            continue
        picks = rows[:: max(1, len(rows) // 8)] + ([rows[-1]] if len(rows) > 8 else [])
        keys = [k for k in rows[-1] if k != "step"]
        lines += [
            f"{run}:",
            "",
            "| step | " + " | ".join(keys) + " |",
            "| --- | " + " | ".join("---" for _ in keys) + " |",
        ]
        lines += [
            "| " + " | ".join([str(r["step"])] + [f"{r[k]:.4g}" if k in r else "" for k in keys]) + " |" for r in picks
        ]
        lines.append("")
    lines += [
        "Stage timings (s): "
        + "; ".join(f"seed {s['seed']}: " + ", ".join(f"{k} {v}" for k, v in s["timings_s"].items()) for s in seeds),
        f"Wall time: {report['wall_s']:.0f} s; {report['workers']} worker process(es) of {report['threads_per_worker']} torch thread(s).",
        f"Final model: `{report['model']}`; store with the runs, rollouts and predictions: `{report['db']}`.",
        "",
    ]
    return "\n".join(lines)
