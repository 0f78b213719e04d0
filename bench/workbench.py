"""Workbench latency on a 50k-sample store: opening a sample (both overlays, the step strip and the
reward preview rendered) and applying a filter, against baselines measured in the same run — an
open that decodes and draws without any cache, and a filter done by scanning every row in Python.

    python bench/workbench.py [--n 50000] [--repeats 40]

The store is built once under $SIF_HOME/bench (48 synthetic 1024×768 scenes shared by all samples,
every 10th chain broken, every 7th sample reviewed) and reused by later runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from db.importers import assistant_text
from db.store import DEPTH_MAP_KEY, Store
from sif.depth import clear_depth_cache
from sif.paths import sif_home
from sif.synthetic import make_dataset
from workbench import render
from workbench.service import SORTS, Filters, Workbench

SCENES = 48  # fewer than the depth cache holds, so building the store decodes each map once
SIZES = ((1024, 768), (768, 1024))  # photo-sized pictures, as in SIF-50K, not the 320×240 demo
OPEN_TARGET_MS, FILTER_TARGET_MS = 150, 100
FILTERS = [
    Filters(validity="invalid"),
    Filters(status="accepted", sort="final-step HIoU ↑"),
    Filters(text="cube", sort="chain length ↓"),
    Filters(origin="edited", validity="valid"),
    Filters(sort="depth consistency ↑"),
]


def build(folder: Path, n: int) -> Path:
    """A store of `n` samples over `SCENES` synthetic scenes (built once, then reused)."""
    db, done = folder / "sif.db", folder / f".complete-{n}-{SIZES[0][0]}"
    if done.is_file():
        return db
    import json

    from rich.progress import track

    for stale in folder.glob("sif.db*"):
        stale.unlink()
    records = json.loads(make_dataset(folder / "data", SCENES, seed=7, progress=False, sizes=SIZES).read_text())
    data = folder / "data"
    with Store.open(db, data_root=data) as store:
        for start in track(range(0, n, 1000), description=f"building a {n}-sample store"):
            with store.transaction():
                for i in range(start, min(start + 1000, n)):
                    r = records[i % SCENES]
                    sid = store.add_sample(
                        dataset=("synthetic", "flickr30k", "gqa")[i % 3],
                        source_id=f"bench-{i}",
                        image=str(data / r["image"]),
                        depth=str(data / r["depth_image"]),
                        depth_encoding="spectral_r",
                        question=f"{r['problem']} (#{i})",
                        answer=r["response"],
                        gt_boxes=r["normalized_solution_round"]["bbox_3d"],
                        width=r["width"],
                        height=r["height"],
                        meta={DEPTH_MAP_KEY: str(data / r["depth_map"])},
                    )
                    text = assistant_text(r)
                    if i % 10 == 3:
                        text = text.replace("</text>", "</text><text>stray</text>", 1)
                    store.add_revision(sid, text, origin="imported", author="bench")
                    if i % 7 == 0:
                        store.set_review(sid, "accepted", reviewer="bench", expected_version=0)
    done.write_text("ok\n")
    return db


def timed(fn, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def clear_caches() -> None:
    render._picture.cache_clear()
    render._depth_picture.cache_clear()
    clear_depth_cache()


def python_scan_filter(store: Store, f: Filters):
    """Baseline: read every row, filter and sort in Python, then page."""
    kw = f.store_kwargs()
    rows = store.query(limit=-1)
    words = (kw["text"] or "").lower().split()
    keep = [
        r
        for r in rows
        if (kw["status"] is None or r.status == kw["status"])
        and (kw["valid"] is None or r.valid == kw["valid"])
        and (kw["origin"] is None or r.origin == kw["origin"])
        and (not words or all(w in (r.question + " " + r.answer).lower() for w in words))
    ]
    key, descending = SORTS[f.sort]
    attr = {"id": "id", "final_hiou": "final_hiou", "depth_ok": "depth_ok", "n_steps": "n_steps"}.get(key, "id")
    keep.sort(key=lambda r: (getattr(r, attr) is None, getattr(r, attr) or 0), reverse=descending)
    return len(keep), keep[:25]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    db = build(sif_home() / "bench", args.n)
    wb = Workbench(Store.open(db))
    rng = np.random.default_rng(0)
    ids = [int(v) for v in rng.integers(1, args.n + 1, size=args.repeats)]

    def open_sample(i):
        o = wb.open(ids[i])
        assert o.views.image and o.views.depth and o.views.strip

    def cold_open(i):
        clear_caches()
        open_sample(i)

    open_sample(0)  # import warm-up
    cold = timed(cold_open, args.repeats)
    warm = timed(open_sample, args.repeats)
    ours = timed(lambda i: wb.browse(FILTERS[i % len(FILTERS)]), args.repeats)
    scan = timed(lambda i: python_scan_filter(wb.store, FILTERS[i % len(FILTERS)]), max(5, args.repeats // 4))

    def med(xs):
        return statistics.median(xs)

    print(f"workbench on {args.n} samples ({args.repeats} repeats, medians)")
    print(
        f"  open, pictures cached    {med(warm):7.1f} ms   target ≤ {OPEN_TARGET_MS} ms  "
        f"{'OK' if med(warm) <= OPEN_TARGET_MS else 'MISSED'}"
    )
    print(
        f"  open, nothing cached     {med(cold):7.1f} ms   (baseline: decode + draw every time)  "
        f"{'OK' if med(cold) <= OPEN_TARGET_MS else 'MISSED'}"
    )
    print(
        f"  filter + count + page    {med(ours):7.1f} ms   target ≤ {FILTER_TARGET_MS} ms  "
        f"{'OK' if med(ours) <= FILTER_TARGET_MS else 'MISSED'}"
    )
    print(f"  filter by Python scan    {med(scan):7.1f} ms   (baseline)")
    print(f"  ratio open: baseline / cached = {med(cold) / med(warm):.1f}x")
    print(f"  ratio filter: Python scan / indexed query = {med(scan) / med(ours):.1f}x")


if __name__ == "__main__":
    main()
