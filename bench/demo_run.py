"""`sif train demo-run` against its targets (issue 19), on the machine it runs on.

Runs the embedded experiment with N seeds (default 3) and prints, against the targets:
  time:     1 seed ≤ 20 min, 3 seeds ≤ 60 min (on 2 cores; the load average is printed with it)
  SFT:      format-valid ≥ 0.95 on every seed; held-out answer accuracy ≥ 2× chance; final-step HIoU ≥ 0.3
  GRPO-SIF: final-step HIoU and total reward above SFT by more than 2 standard errors (paired by seed)
and the ablation (GRPO without the grounding reward, without the depth input).
Run: python bench/demo_run.py [--seeds 3] [--out DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.demo_run import METRICS, VARIANTS, demo_run, demo_settings

MINUTES_PER_SEED = 20


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(stat: dict) -> str:
    return f"{stat['mean']:.3f}" + (f" ± {stat['se']:.3f}" if stat["se"] is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "sif-bench-demo-run")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    settings = demo_settings(args.overrides, seeds=args.seeds)
    print(f"load average before: {load()}; cores: {os.cpu_count()}", flush=True)
    start = time.monotonic()
    report = demo_run(args.out, settings)
    wall = time.monotonic() - start
    print(f"load average after: {load()}")

    limit = MINUTES_PER_SEED * args.seeds
    ok = lambda flag: "met" if flag else "NOT met"
    print(f"\nwall time: {wall / 60:.1f} min for {args.seeds} seed(s) (target ≤ {limit} min: {ok(wall <= limit * 60)})")
    per_seed = [sum(s["timings_s"].values()) / 60 for s in report["seeds"]]
    print("stage time per seed (min; two stages run at a time): " + ", ".join(f"{m:.1f}" for m in per_seed))

    chance = report["chance"]
    print(
        f"\nchance: answer accuracy {chance['accuracy']:.3f}; final-step HIoU of the centred box "
        f"{chance['final_hiou']['centred']:.3f}, of the whole image {chance['final_hiou']['whole_image']:.3f}"
    )
    labels = {"sft": "SFT", **{k: v[0] for k, v in VARIANTS.items()}}
    variants = list(report["stats"])
    print("\n" + "metric".ljust(26) + "".join(labels[v][:24].ljust(26) for v in variants))
    for key, _, label in METRICS:
        print(label.ljust(26) + "".join(fmt(report["stats"][v][key]).ljust(26) for v in variants))
    print("\nGRPO-SIF minus SFT (paired by seed):")
    for key in ("final_hiou", "total_reward"):
        g = report["gains"][key]
        print(f"  {key}: {fmt(g)} per seed {[round(v, 4) for v in g['values']]}")
    print("\ntargets:")
    sft = report["stats"]["sft"]
    print(f"  SFT format-valid ≥ 0.95 on every seed: {[round(v, 3) for v in sft['format_valid']['values']]}")
    print(f"  SFT accuracy ≥ 2× chance ({2 * chance['accuracy']:.3f}): {fmt(sft['accuracy'])}")
    print(f"  SFT final-step HIoU ≥ 0.3: {fmt(sft['final_hiou'])}")
    for name, flag in report["targets"].items():
        print(f"  {name}: {ok(flag)}")
    summary = {"wall_s": round(wall, 1), "seeds": args.seeds, "load_after": load(), "targets": report["targets"]}
    print("\n" + json.dumps(summary))
    print(f"report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
