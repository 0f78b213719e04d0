"""Store speed: import 50,000 SIF-50K records, then filter, sort and full-text queries on them.

  import:   ours = `db.importers.import_records` (chains analysed in worker processes, batched
            transactions, the index and FTS rows of each batch built set-based);
            baseline = the same Store calls with a commit per record (row by row), on a sample.
  queries:  ours = `Store.query`/`Store.count` on the trigger-maintained `sample_index` and FTS5;
            baseline = the same answers computed the naive way: the current chain found by a
            correlated subquery per sample, text matched with LIKE scans.
Records are cheap: SIF-50K shape with a handful of shared tiny images, random focus chains.
Targets: import ≥ 2,500 records/s; every listed query ≤ 50 ms.
Run: python bench/db.py [--n 50000] [--baseline-n 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.depth_convention import settle_depth_encodings
from db.importers import import_records, sif50k_converter
from db.store import Store
from sif.chain import Chain, Region, Step, render_chain
from sif.prompts import sif_user_prompt

COLOURS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]
THINGS = ["mug", "chair", "lamp", "ball", "book", "plant", "bottle", "box", "cat", "dog"]
DATASETS = ["flickr30k", "gqa", "vsr", "cub", "synthetic"]
TARGET_RATE, TARGET_MS = 2500, 50.0


def _box(rng, scale: float) -> tuple[float, ...]:
    w, h = rng.uniform(0.05, scale, 2)
    x, y = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    return tuple(round(v, 3) for v in (x, y, x + w, y + h))


def make_records(n: int, image_names: list[str], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        colour, thing = COLOURS[i % len(COLOURS)], THINGS[(i // 8) % len(THINGS)]
        question = f"What colour is the {thing} number {i} near the {THINGS[(i * 7) % len(THINGS)]}?"
        gt = _box(rng, 0.3)
        steps = [Step((Region((0.0, 0.0, 1.0, 1.0), 0.5),), f"The scene holds several objects; look for the {thing}.")]
        for k in range(int(rng.integers(1, 4))):
            regions = tuple(
                Region(_box(rng, 0.6), round(float(rng.uniform(0, 1)), 3)) for _ in range(int(rng.integers(1, 3)))
            )
            steps.append(Step(regions, f"Step {k}: narrowing down on the {thing}."))
        steps.append(Step((Region(gt, round(float(rng.uniform(0, 1)), 3)),), f"This is the {thing}; it is {colour}."))
        image = image_names[i % len(image_names)]
        records.append(
            {
                "dataset": DATASETS[i % len(DATASETS)],
                "image": image,
                "depth_image": image,
                "problem": question,
                "normalized_solution_round": {"bbox_3d": [list(gt)], "illegal_content": False},
                "response": colour,
                "messages": [
                    {"role": "user", "content": sif_user_prompt(question)},
                    {"role": "assistant", "content": render_chain(Chain(tuple(steps), colour))},
                ],
                "images": [image, image],
                "id": f"bench-{i:06d}",
                "split": "train",
                "width": 64,
                "height": 48,
            }
        )
    return records


def timed_ms(fn, repeats: int = 5) -> float:
    fn()  # warm the page cache and statement cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def naive_current(column: str) -> str:
    return (
        f"(SELECT c.{column} FROM chain_revisions c WHERE c.sample_id = s.id AND c.origin IN "
        "('imported','generated','edited') ORDER BY c.rev DESC LIMIT 1)"
    )


def naive_queries(store: Store) -> dict:
    """The same questions answered without sample_index or FTS."""
    conn = store.conn
    status = "COALESCE((SELECT status FROM reviews r WHERE r.sample_id = s.id), 'pending')"
    return {
        "filter status=accepted": lambda: conn.execute(
            f"SELECT s.id FROM samples s WHERE {status} = 'accepted' ORDER BY s.id LIMIT 50"
        ).fetchall(),
        "filter dataset=vsr, valid": lambda: conn.execute(
            f"SELECT s.id FROM samples s WHERE s.dataset = 'vsr' AND {naive_current('valid')} = 1 ORDER BY s.id LIMIT 50"
        ).fetchall(),
        "sort final_hiou desc": lambda: conn.execute(
            f"SELECT s.id FROM samples s ORDER BY {naive_current('final_hiou')} DESC LIMIT 50"
        ).fetchall(),
        "sort n_steps, page 20": lambda: conn.execute(
            f"SELECT s.id FROM samples s ORDER BY {naive_current('n_steps')}, s.id LIMIT 50 OFFSET 1000"
        ).fetchall(),
        "text 'purple lamp'": lambda: conn.execute(
            "SELECT s.id FROM samples s WHERE (s.question || s.answer || COALESCE("
            f"{naive_current('text')}, '')) LIKE '%purple%' AND (s.question || s.answer || COALESCE("
            f"{naive_current('text')}, '')) LIKE '%lamp%' ORDER BY s.id LIMIT 50"
        ).fetchall(),
        "count needs_fix in gqa": lambda: conn.execute(
            f"SELECT COUNT(*) FROM samples s WHERE s.dataset = 'gqa' AND {status} = 'needs_fix'"
        ).fetchall(),
        "status+dataset+text, sort hiou": lambda: conn.execute(
            f"SELECT s.id FROM samples s WHERE s.dataset = 'flickr30k' AND {status} = 'accepted' AND "
            f"(s.question || {naive_current('text')}) LIKE '%red%' ORDER BY {naive_current('final_hiou')} DESC LIMIT 50"
        ).fetchall(),
    }


def our_queries(store: Store) -> dict:
    return {
        "filter status=accepted": lambda: store.query(status="accepted"),
        "filter dataset=vsr, valid": lambda: store.query(dataset="vsr", valid=True),
        "sort final_hiou desc": lambda: store.query(sort="final_hiou", descending=True),
        "sort n_steps, page 20": lambda: store.query(sort="n_steps", offset=1000),
        "text 'purple lamp'": lambda: store.query(text="purple lamp"),
        "count needs_fix in gqa": lambda: store.count(status="needs_fix", dataset="gqa"),
        "status+dataset+text, sort hiou": lambda: store.query(
            status="accepted", dataset="flickr30k", text="red", sort="final_hiou", descending=True
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--baseline-n", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = []
        for k in range(8):
            Image.new("RGB", (64, 48), (30 * k, 90, 160)).save(root / f"img{k}.png")
            names.append(f"img{k}.png")
        start = time.perf_counter()
        records = make_records(args.n, names)
        print(f"made {args.n} records in {time.perf_counter() - start:.1f} s")
        convert = sif50k_converter(root)

        store = Store.open(root / "bench.db")
        start = time.perf_counter()
        report = import_records(store, records, convert, progress=False)
        ours = args.n / (time.perf_counter() - start)
        assert report.added == args.n and not report.errors, report.summary()

        naive = Store.open(root / "naive.db", data_root=root)
        sample = records[: args.baseline_n]
        start = time.perf_counter()
        for record in sample:  # commit per record, no batching
            item = convert(record)
            settle_depth_encodings(naive, [(item.sample, item.chain)])
            sid = naive.add_sample(**item.sample)
            naive.add_revision(sid, item.chain, origin="imported", author="import")
        base = len(sample) / (time.perf_counter() - start)
        naive.close()
        ok = ours >= TARGET_RATE
        print(
            f"import: {ours:,.0f} records/s (baseline row-by-row commits {base:,.0f}/s, "
            f"ratio {ours / base:.1f}x)  target ≥ {TARGET_RATE:,}/s: {'PASS' if ok else 'FAIL'}"
        )

        rng = np.random.default_rng(1)
        statuses = ["accepted", "rejected", "needs_fix"]
        with store.transaction():
            for sid in rng.choice(np.arange(1, args.n + 1), size=args.n // 3, replace=False):
                store.set_review(int(sid), statuses[int(sid) % 3], reviewer="bench", expected_version=0)
            for sid in range(1, args.n + 1, 50):  # some hand edits: a second, invalid revision
                store.add_revision(
                    sid, "<think><area>[]</area></think><answer>x</answer>", origin="edited", author="bench"
                )
        print(f"\n{'query on ' + format(args.n, ',') + ' samples':34} {'ours ms':>9} {'naive ms':>9} {'ratio':>7}")
        naive_q = naive_queries(store)
        for name, fn in our_queries(store).items():
            ms = timed_ms(fn)
            base_ms = timed_ms(naive_q[name], repeats=1)
            ok = ok and ms <= TARGET_MS
            print(f"{name:34} {ms:9.2f} {base_ms:9.1f} {base_ms / ms:6.0f}x {'' if ms <= TARGET_MS else 'FAIL'}")
        print(f"\nall targets (import ≥ {TARGET_RATE:,}/s, queries ≤ {TARGET_MS:.0f} ms): {'PASS' if ok else 'FAIL'}")
        store.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
