"""Speed of `sif eval`: records/s against a served model, and batched generation on the tiny model.

1. Served model: a local OpenAI-compatible server (a separate process, like `vllm serve`)
   answers every request after --latency (250 ms). The whole `sif eval` path runs — records
   registered in a store, each record's 640×480 JPEG and spectral_r depth PNG sent, each answer
   committed as it arrives, every record scored, the report written — over --records (256)
   CV-Bench-format records at --concurrency (32). Ratio: records/s ÷ (concurrency / latency),
   target ≥ 0.8; the baseline is the same run at concurrency 1 (a sequential client, what
   `sif eval` did before), on --baseline-records (16). Also the CPU per record of the client
   and of the server, and the ceiling those imply on this machine's cores.
2. HF batching: the tiny Qwen2.5-VL (built offline, random weights) answers --hf-records
   records with --hf-new-tokens new tokens each, in batches of 8 and of 1 (the baseline), through
   the same `run_eval`. Ratio: batch 8 records/s ÷ batch 1 records/s.
Every figure is the best and the median of --repeats runs, with the load average beside it (the
machine may be shared: compare figures taken under the same load).
Run: python bench/eval.py [--records 256] [--concurrency 32] [--latency 0.25] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one torch thread a process, as the tests run

from db.store import Store  # noqa: E402
from evaluation.runner import EvalConfig, run_eval  # noqa: E402
from tests.support.evaluation import make_choice_bench  # noqa: E402


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from tests.support.evaluation import serve_choice_model; serve_choice_model({latency})",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds of a running process (the server), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _stats(values: list[float]) -> tuple[float, float]:
    return max(values), float(np.median(values))


def _run(root: Path, data: Path, tag: str, limit: int, **config) -> tuple[float, float, int]:
    """(records/s of the whole run, client CPU s, records) of one eval run in a fresh store."""
    with Store.open(root / f"{tag}.db", data_root=root) as store:
        settings = EvalConfig(benchmark="cvbench", data=str(data), limit=limit, **config)
        t, cpu = time.perf_counter(), _cpu()
        result = run_eval(store, settings, progress=False, report_dir=root / "reports")
        elapsed, cpu = time.perf_counter() - t, _cpu() - cpu
    assert result.status == "done" and result.summary["predicted"] == limit, result.summary
    return limit / elapsed, cpu, limit


def _fresh_links(data: Path, tag: str) -> Path:
    """The benchmark under new file names (hard links): a run checks every picture afresh, as
    a run over new records would, instead of reusing what an earlier run learnt about a file."""
    folder = data.parent / tag
    (folder / "img").mkdir(parents=True)
    for picture in (data.parent / "img").iterdir():
        os.link(picture, folder / "img" / picture.name)
    (folder / data.name).write_text(data.read_text())
    return folder / data.name


def bench_served(root: Path, args) -> None:
    data = make_choice_bench(root / "served", args.records, size=(640, 480))
    proc, url = start_server(args.latency)
    try:

        def level(concurrency: int, n: int, tag: str):
            rates, client, server = [], [], []
            for r in range(args.repeats):
                before = _process_cpu(proc.pid)
                rate, cpu, n = _run(
                    root,
                    _fresh_links(data, f"{tag}-{r}"),
                    f"{tag}-{r}",
                    n,
                    backend="openai",
                    base_url=url,
                    model="bench",
                    concurrency=concurrency,
                )
                rates.append(rate)
                client.append(cpu / n * 1000)
                server.append((_process_cpu(proc.pid) - before) / n * 1000)
            return (*_stats(rates), min(client), min(server))

        base, base_med, _, _ = level(1, args.baseline_records, "c1")
        ideal1 = 1 / args.latency
        print(
            f"  concurrency 1 (baseline, {args.baseline_records} records): best {base:.2f} / median {base_med:.2f} "
            f"records/s = {base / ideal1:.2f} of ideal {ideal1:.0f}/s; {_load()}"
        )
        c = args.concurrency
        top, med, client_ms, server_ms = level(c, args.records, f"c{c}")
        ideal = c / args.latency
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(
            f"  concurrency {c} ({args.records} records): best {top:.1f} / median {med:.1f} records/s; "
            f"vs ideal {ideal:.0f}/s: {top / ideal:.2f} (median {med / ideal:.2f}; target ≥ 0.8); "
            f"vs concurrency 1: {top / base:.1f}x; CPU ms/record: client {client_ms:.1f}, server {server_ms:.1f} "
            f"(CPU-bound ceiling on {cores} cores {cores * 1000 / (client_ms + server_ms):.0f}/s); {_load()}"
        )
    finally:
        proc.kill()
        proc.wait()


def bench_hf(root: Path, args) -> None:
    from training.tiny_model import build_tiny_model

    model = build_tiny_model(root / "tiny")
    data = make_choice_bench(root / "hf", args.hf_records, size=(320, 240))
    common = dict(backend="hf", model=str(model), max_new_tokens=args.hf_new_tokens, max_failure_rate=0.0)
    rates = {}
    for batch in (1, 8):
        runs = [
            _run(root, data, f"hf{batch}-{r}", args.hf_records, batch_size=batch, **common)[0]
            for r in range(args.repeats)
        ]
        rates[batch] = _stats(runs)
        print(f"  batch {batch}: best {rates[batch][0]:.2f} / median {rates[batch][1]:.2f} records/s; {_load()}")
    print(
        f"  batch 8 vs batch 1: {rates[8][0] / rates[1][0]:.2f}x (medians {rates[8][1] / rates[1][1]:.2f}x); "
        f"{args.hf_records} records, {args.hf_new_tokens} new tokens each; {_load()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=256)
    ap.add_argument("--baseline-records", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--hf-records", type=int, default=16)
    ap.add_argument("--hf-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-hf", action="store_true", help="only the served-model part")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"sif eval against a served model (latency {args.latency * 1000:.0f} ms), 640×480 pictures:")
        bench_served(root, args)
        if not args.skip_hf:
            print("sif eval with the hf backend on the tiny model, batch 8 against batch 1:")
            bench_hf(root, args)


if __name__ == "__main__":
    main()
