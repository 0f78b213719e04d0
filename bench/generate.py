"""Speed of `sif generate`: teacher throughput against concurrency, and the planner + depth stage.

1. Throughput: a local OpenAI-compatible server (a separate process, like a remote API) answers
   every request after 200 ms with a chain that follows the plan. The whole pipeline runs —
   depth, plan, step images (JPEG), request, reply check, one committed revision per sample —
   at --concurrency 1, 8 and 32, every sample with its own picture and depth map (links made
   afresh for each run, so no decoded map is reused from an earlier run or sample). Ratios:
   against concurrency 1 (same run) and against the ideal concurrency / latency (target at 32:
   ≥ 0.8). At the top concurrency, also the baseline: the same run with no worker processes
   (worker_processes=0, all CPU work in threads of one process). For each, the CPU per sample
   of the client (its workers included) and of the server, and the CPU-bound ceiling those
   imply on this machine's cores. For reference, the shared chat client alone (tiny requests).
2. Planner + depth stage alone on 640×480 samples (read the gray16 depth map, plan with box
   depths): one thread, and two; the baseline is the same stage with every box mean read from
   the summed-area table (the core DepthMap before it summed a plan's few boxes directly).
   Target ≥ 200/s.
Every figure is the best and the median of --repeats runs, with the load average beside it
(the machine may be shared: compare figures taken under the same load).
Run: python bench/generate.py [--size 640x480] [--latency 0.2] [--stage-samples 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.openai_client import ChatClient, ChatConfig, user_message  # noqa: E402
from datagen.depth_source import DepthEstimator  # noqa: E402
from datagen.generation import GenerateConfig, generate, prepare_sample, sample_rng, worker_count  # noqa: E402
from db.store import Store  # noqa: E402
from sif.depth import DepthMap, clear_depth_cache, save_gray16  # noqa: E402
from sif.plan import plan_focus_detailed  # noqa: E402


def make_files(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[tuple[str, str]]:
    """n photo-like pictures and smooth depth maps; returns (image, depth) paths relative to root."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    (root / "files").mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        a, b = rng.uniform(2, 9, 2)
        rgb = np.stack([128 + 100 * np.sin(a * xx + i), 128 + 100 * np.cos(b * yy), 255 * xx * yy], -1)
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(root / f"files/{i}.jpg", quality=90)
        depth = np.clip(1 - yy * 0.8 + 0.1 * np.sin(a * xx * 6), 0, 1)
        save_gray16(depth, root / f"files/{i}_depth.png")
        out.append((f"files/{i}.jpg", f"files/{i}_depth.png"))
    return out


def fill_store(store: Store, files, n: int, size) -> list[int]:
    rng = np.random.default_rng(1)
    ids = []
    for i in range(n):
        image, depth = files[i % len(files)]
        x, y = rng.uniform(0.05, 0.6, 2)
        ids.append(
            store.add_sample(
                dataset="bench",
                source_id=str(i),
                image=image,
                depth=depth,
                depth_encoding="gray16_depth",
                question=f"What is in box {i}?",
                answer="a mug",
                gt_boxes=[[round(x, 3), round(y, 3), round(x + 0.2, 3), round(y + 0.3, 3)]],
                width=size[0],
                height=size[1],
            )
        )
    return ids


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from tests.support.datagen import serve_echo_teacher; serve_echo_teacher({latency})"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


async def _client_only(base_url: str, n: int, c: int) -> float:
    """Requests/s of the shared chat client alone (one-region instruction, no images, no store)."""
    instruction = 'Step 1:\n<area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.500}]</area>'
    async with ChatClient(ChatConfig(base_url=base_url, model="bench", concurrency=c, max_retries=0)) as client:
        t = time.perf_counter()
        await asyncio.gather(*(client.complete([user_message(instruction)]) for _ in range(n)))
        return n / (time.perf_counter() - t)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds of a running process (the server), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats(values: list[float]) -> tuple[float, float]:
    return max(values), float(np.median(values))


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _fresh_links(root: Path, files, tag: str) -> list[tuple[str, str]]:
    """The files under new names: a run decodes every picture and depth map from scratch."""
    (root / tag).mkdir()
    out = []
    for image, depth in files:
        pair = []
        for rel in (image, depth):
            new = f"{tag}/{Path(rel).name}"
            os.link(root / rel, root / new)
            pair.append(new)
        out.append(tuple(pair))
    return out


def _generate_rate(
    root: Path, files, size, server: subprocess.Popen, base_url: str, c: int, n: int, tag: str, **cfg
) -> tuple[float, float, float]:
    """(samples/s, client CPU ms/sample, server CPU ms/sample) of one run over n fresh samples."""
    store = Store.open(root / f"throughput-{tag}.db", data_root=root)
    fill_store(store, _fresh_links(root, files[:n], tag), n, size)
    clear_depth_cache()  # nor from this process (whose cache the workers inherit)
    config = GenerateConfig(teacher="openai", base_url=base_url, model="bench", concurrency=c, max_retries=0, **cfg)
    t, cpu, server_cpu = time.perf_counter(), _cpu(), _process_cpu(server.pid)
    summary = generate(store, config, progress=False)
    elapsed, cpu, server_cpu = time.perf_counter() - t, _cpu() - cpu, _process_cpu(server.pid) - server_cpu
    store.close()
    assert summary.metrics["generated"] == n, summary.metrics
    return n / elapsed, cpu / n * 1000, server_cpu / n * 1000


def _ceiling(client_ms: float, server_ms: float) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU-bound ceiling on {cores} cores {cores * 1000 / (client_ms + server_ms):.0f}/s"


def _level(root, files, size, server, base_url, c, n, tag, repeats, **cfg):
    runs = [_generate_rate(root, files, size, server, base_url, c, n, f"{tag}-{r}", **cfg) for r in range(repeats)]
    (top, med) = _stats([r for r, _, _ in runs])
    client, srv = min(ms for _, ms, _ in runs), min(ms for _, _, ms in runs)
    return top, med, client, srv


def bench_throughput(root: Path, files, size, latency: float, levels: list[int], repeats: int) -> None:
    proc, base_url = start_server(latency)
    try:
        best = {}
        for c in levels:
            n = max(20, 8 * c)
            top, med, client, srv = _level(root, files, size, proc, base_url, c, n, f"c{c}", repeats)
            best[c] = top
            ideal = c / latency
            print(
                f"  concurrency {c:>2}: {n:>4} samples: best {top:6.1f} / median {med:6.1f} samples/s; "
                f"vs concurrency 1: {top / best[levels[0]]:5.1f}x; vs ideal {ideal:.0f}/s: {top / ideal:.2f} "
                f"(median {med / ideal:.2f}); CPU ms/sample: client {client:.1f}, server {srv:.1f}; "
                f"{_ceiling(client, srv)}; {_load()}"
            )
        top_c = levels[-1]
        n = max(20, 8 * top_c)
        ideal = top_c / latency
        b_top, b_med, b_client, b_srv = _level(
            root, files, size, proc, base_url, top_c, n, "threads", repeats, worker_processes=0
        )
        print(
            f"  baseline, no worker processes (worker_processes=0), concurrency {top_c}: best {b_top:.1f} / median "
            f"{b_med:.1f} samples/s = {b_top / ideal:.2f} of ideal; the default ({worker_count(GenerateConfig())} "
            f"worker processes) is {best[top_c] / b_top:.2f}x; client CPU {b_client:.1f} ms/sample; {_load()}"
        )
        alone, _ = _stats([asyncio.run(_client_only(base_url, 8 * top_c, top_c)) for _ in range(repeats)])
        print(
            f"  reference, the chat client alone at concurrency {top_c}: {alone:.1f} requests/s "
            f"= {alone / ideal:.2f} of ideal (pipeline / client alone: {best[top_c] / alone:.2f}); {_load()}"
        )
    finally:
        proc.kill()
        proc.wait()


def _stage_rate(store, samples, workers: int, stage) -> float:
    clear_depth_cache()
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda s: stage(store, s), samples))
    return len(samples) / (time.perf_counter() - t)


def bench_stage(root: Path, size, n: int, repeats: int) -> None:
    files = make_files(root / "stage", n, size, seed=2)
    store = Store.open(root / "stage.db", data_root=root)
    ids = fill_store(store, [(f"stage/{a}", f"stage/{b}") for a, b in files], n, size)
    samples = [store.get_sample(i) for i in ids]
    cfg = GenerateConfig()
    estimator = DepthEstimator("unused")

    def ours(store, s, needs_images=False):
        return prepare_sample(store, s, cfg, needs_images=needs_images, estimator=estimator)

    def baseline(store, s):  # every box mean read from a summed-area table, built first
        depth = DepthMap(DepthMap.load(store.resolve(s.depth), s.depth_encoding).array)
        depth.sat  # noqa: B018 (builds the table)
        return plan_focus_detailed(s.gt_boxes, depth, sample_rng(cfg.seed, s.id), distractor_prob=cfg.distractor_prob)

    def rates(workers, stage):
        return _stats([_stage_rate(store, samples, workers, stage) for _ in range(repeats)])

    (b1, _), (one, one_med), (two, two_med) = rates(1, baseline), rates(1, ours), rates(2, ours)
    imgs, _ = rates(2, lambda store, s: ours(store, s, needs_images=True))
    print(
        f"  planner + depth, 1 thread:  best {one:6.1f} / median {one_med:6.1f} samples/s  (summed-area-table "
        f"baseline {b1:.1f}/s: {one / b1:.2f}x; target 200/s: {one / 200:.2f}); {_load()}"
    )
    print(
        f"  planner + depth, 2 threads: best {two:6.1f} / median {two_med:6.1f} samples/s  (vs 1 thread "
        f"{two / one:.2f}x; target 200/s: {two / 200:.2f}); {_load()}"
    )
    print(f"  + step images and request encoding in the same threads, 2 threads: {imgs:6.1f} samples/s")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--stage-samples", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    levels = [int(v) for v in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"teacher throughput, {size[0]}×{size[1]} images, server latency {args.latency * 1000:.0f} ms:")
        n_files = max(20, 8 * max(levels))
        bench_throughput(root, make_files(root, n_files, size), size, args.latency, levels, args.repeats)
        print(f"planner + depth stage, {size[0]}×{size[1]} depth maps, {args.stage_samples} samples:")
        bench_stage(root, size, args.stage_samples, args.repeats)


if __name__ == "__main__":
    main()
