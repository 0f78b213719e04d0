"""Team curation speed on a 50,000-sample store: batch decisions, their undo, a curator's queue,
the priority sort.

  batch:    ours = `Store.decide_many` (set-based SQL, one batch row, previous reviews kept) on a
            filter matching every pending sample, then `Store.undo_batch`;
            baseline = the same decisions one `Store.set_review` call (one transaction) per
            sample, timed on --baseline-n samples and scaled to the batch's size.
  queue:    the first page of the queue of one of 8 curators with --queue-n samples each (a
            quarter decided): `Store.queue(limit=25)` and its rows (`Store.query(ids=…)`), what
            "My queue" opens with; and the whole queue.
  priority: `Store.refresh_priority` over --outputs predictions, then the `priority` sort.
Records are `bench/db.py`'s. Targets: batch ≤ 2 s and undo ≤ 2 s at 50k; queue ≤ 150 ms.
Run: python bench/review.py [--n 50000] [--baseline-n 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.db import make_records
from db.importers import import_records, sif50k_converter
from db.store import Store
from sif.chain import Chain, Region, Step

T = TypeVar("T")
TARGET_BATCH_S, TARGET_QUEUE_MS = 2.0, 150.0
CURATORS = [f"curator{k}" for k in range(8)]


def seconds(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--baseline-n", type=int, default=1_000)
    parser.add_argument("--queue-n", type=int, default=6_000)
    parser.add_argument("--outputs", type=int, default=2_000)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = []
        for k in range(8):
            Image.new("RGB", (64, 48), (30 * k, 90, 160)).save(root / f"img{k}.png")
            names.append(f"img{k}.png")
        store = Store.open(root / "bench.db")
        took, _ = seconds(lambda: import_records(store, make_records(args.n, names), sif50k_converter(root)))
        print(f"store of {args.n:,} samples built in {took:.1f} s")

        took, batch = seconds(lambda: store.decide_many("accepted", "bench", status="pending"))
        assert batch.count == args.n, batch
        undo_s, restored = seconds(lambda: store.undo_batch(batch.id, "bench"))
        assert restored == args.n and store.count(status="pending") == args.n
        sample = list(range(1, args.baseline_n + 1))

        def one_by_one(status: str) -> None:
            for sid in sample:
                store.set_review(sid, status, reviewer="bench", expected_version=store.get_review(sid).version)

        base_s, _ = seconds(lambda: one_by_one("accepted"))
        base_undo_s, _ = seconds(lambda: one_by_one("pending"))
        scale = args.n / len(sample)
        for name, ours, base in (("bulk accept", took, base_s * scale), ("undo", undo_s, base_undo_s * scale)):
            passed = ours <= TARGET_BATCH_S
            ok = ok and passed
            print(
                f"{name} of {args.n:,}: {ours:.2f} s (one set_review per sample: {base:.1f} s, ratio {base / ours:.0f}x)"
                f"  target ≤ {TARGET_BATCH_S:.0f} s: {'PASS' if passed else 'FAIL'}"
            )

        for curator in CURATORS:
            store.assign(curator, args.queue_n)
        store.decide_many("accepted", CURATORS[0], ids=store.queue(CURATORS[0])[: args.queue_n // 4])

        def open_queue():
            return store.query(ids=store.queue(CURATORS[0], limit=25), limit=25)

        def whole_queue():
            return store.queue(CURATORS[0])

        for name, fn in (("first page of", open_queue), ("whole", whole_queue)):
            fn()
            ms = statistics.median(seconds(fn)[0] * 1000 for _ in range(7))
            passed = ms <= TARGET_QUEUE_MS
            ok = ok and passed
            print(
                f"{name} queue of {CURATORS[0]} ({len(whole_queue()):,} open of {args.queue_n:,}, "
                f"{len(CURATORS)} curators, {args.n:,} samples): {ms:.1f} ms"
                f"  target ≤ {TARGET_QUEUE_MS:.0f} ms: {'PASS' if passed else 'FAIL'}"
            )

        run = store.create_run("evaluation", {})
        far = Chain((Step((Region((0.9, 0.9, 0.95, 0.95), 0.5),), "there"),), "no")
        with store.transaction():
            for sid in range(1, args.outputs + 1):
                current = store.current_chain(sid)
                assert current is not None  # every bench record has a chain
                store.add_revision(
                    sid,
                    far if sid % 3 else current.chain,
                    origin="prediction",
                    author="bench",
                    run_id=run,
                )
        took, refreshed = seconds(store.refresh_priority)
        sort_ms = statistics.median(seconds(lambda: store.query(sort="priority"))[0] * 1000 for _ in range(5))
        print(
            f"priority: {refreshed:,} samples refreshed in {took:.2f} s; sort by priority at {args.n:,}: {sort_ms:.1f} ms"
        )
        store.close()
    print(f"\nall targets: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
