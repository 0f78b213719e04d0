"""Several curators driving one workbench at once, through its API (gradio_client against the
real server, as the page calls it; the clients run in a process of their own): each curator, on the shared pending list, does `--rounds`
times "next" then "accept". Reports the wait per action as the client sees it (median, p95),
errors and conflicts, the server CPU per action (the handler's thread), and checks integrity
after: every accept recorded once, by its curator, on a sample nobody else decided.

The baseline, in the same run on a copy of the same store: one curator alone. The ratio says
what sharing the server costs each curator.

    python bench/load.py [--curators 8] [--rounds 12] [--n 300]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.store import Store
from sif.paths import sif_home
from tests.support.workbench import ApiCurator, copy_store, free_port
from workbench.app import launch
from workbench.demo_db import build_demo

P95_TARGET_MS, CPU_TARGET_MS = 300, 10
CONFLICTS = ("Not ", "after you opened it", "open too")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def store_for(n: int) -> Path:
    """A demo store of `n` samples, built once under $SIF_HOME/bench-load and reused."""
    folder = sif_home() / "bench-load" / str(n)
    db = folder / "sif.db"
    if not (folder / ".complete").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        build_demo(folder, n=n, progress=True)
        (folder / ".complete").touch()
    return db


def drive(url: str, users: list[tuple[str, str]], rounds: int, results) -> None:
    """The curators, in a process of their own (their clients do not share the server's
    interpreter): each does `rounds` times next then accept; puts what they saw on `results`."""
    waits: dict[str, list[float]] = {"next": [], "accept": []}
    errors: list[str] = []
    conflicts: list[str] = []
    accepted: dict[str, list[int]] = {u: [] for u, _ in users}
    lock = threading.Lock()
    team = [ApiCurator(url, u, p, status="pending") for u, p in users]
    start = threading.Barrier(len(team))

    def timed(kind: str, c: ApiCurator, call) -> None:
        t0 = time.perf_counter()
        call()
        with lock:
            waits[kind].append(time.perf_counter() - t0)
            if any(w in c.message for w in CONFLICTS):
                conflicts.append(f"{c.user}: {c.message}")

    def work(c: ApiCurator) -> None:
        try:
            c.load()
            start.wait()
            for _ in range(rounds):
                timed("next", c, c.next)
                shown = c.shown
                timed("accept", c, c.decide)
                accepted[c.user].append(shown)
        except Exception as exc:  # an error is counted and reported, not raised
            with lock:
                errors.append(f"{c.user}: {exc!r}")

    threads = [threading.Thread(target=work, args=(c,)) for c in team]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    results.put({"waits": waits, "errors": errors, "conflicts": conflicts, "accepted": accepted, "elapsed": elapsed})


def run(db: Path, curators: int, rounds: int) -> dict:
    """`curators` at once on a copy of `db`: their waits, errors, conflicts, CPU and integrity."""
    users = [(f"curator{i}", f"pw-{i}") for i in range(curators)]
    app, url = launch(db, port=free_port(), auth=users, block=False, quiet=True)
    try:
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        clients = spawn.Process(target=drive, args=(url, users, rounds, results))
        clients.start()
        result = results.get()
        clients.join()
        result["cpu"] = dict(app.action_cpu.seconds)
    finally:
        app.close()
    result["problems"] = integrity(db, result.pop("accepted"))
    return result


def integrity(db: Path, accepted: dict[str, list[int]]) -> list[str]:
    """What the store says against what the curators did: each accept recorded once, by them."""
    problems = []
    with Store.open(db) as store:
        log = store.conn.execute(
            "SELECT sample_id, reviewer FROM review_log WHERE status IN ('accepted', 'rejected', 'needs_fix')"
        ).fetchall()
        by_sample: dict[int, list[str]] = {}
        for sample_id, reviewer in log:
            by_sample.setdefault(sample_id, []).append(reviewer)
        twice = {s: who for s, who in by_sample.items() if len(who) > 1}
        if twice:
            problems.append(f"{len(twice)} sample(s) decided more than once: {dict(list(twice.items())[:5])}")
        for user, ids in accepted.items():
            for sample_id in ids:
                review = store.get_review(sample_id)
                if review.status != "accepted" or review.reviewer != user:
                    problems.append(
                        f"sample {sample_id}: accepted by {user}, stored {review.status} by {review.reviewer}"
                    )
        if len(log) != sum(map(len, accepted.values())):
            problems.append(f"{len(log)} decisions stored for {sum(map(len, accepted.values()))} accepts")
    return problems


def ms(values: list[float], f) -> str:
    return f"{1000 * f(values):.0f} ms" if values else "—"


def report(name: str, result: dict, curators: int) -> None:
    w, cpu = result["waits"], result["cpu"]
    actions = sum(map(len, w.values()))
    print(
        f"{name}: {curators} curator(s), {actions} actions in {result['elapsed']:.1f} s "
        f"({actions / result['elapsed']:.1f} actions/s)"
    )
    for kind in ("next", "accept"):
        api = "accepted" if kind == "accept" else kind
        print(
            f"  {kind:6s} wait median {ms(w[kind], statistics.median)}, p95 {ms(w[kind], p95)};"
            f" server CPU median {ms(cpu.get(api, []), statistics.median)}, p95 {ms(cpu.get(api, []), p95)}"
        )
    print(
        f"  errors {len(result['errors'])}, conflicts {len(result['conflicts'])}, "
        f"integrity problems {len(result['problems'])}"
    )
    for line in (result["errors"] + result["conflicts"] + result["problems"])[:10]:
        print("   ", line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curators", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=12, help="next + accept per curator")
    ap.add_argument("--n", type=int, default=300, help="samples in the store (each round uses two)")
    args = ap.parse_args()
    if args.n < 2 * args.curators * (args.rounds + 1):
        ap.error(f"--n {args.n} is too small for {args.curators} curators × {args.rounds} rounds")
    source = store_for(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        base = run(copy_store(source, Path(tmp) / "one.db"), 1, args.rounds)
        team = run(copy_store(source, Path(tmp) / "team.db"), args.curators, args.rounds)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPU(s)")
    report("baseline", base, 1)
    report("team", team, args.curators)
    everything = team["waits"]["next"] + team["waits"]["accept"]
    alone = base["waits"]["next"] + base["waits"]["accept"]
    cpu = team["cpu"].get("next", []) + team["cpu"].get("accepted", [])
    print(
        f"p95 wait at {args.curators} curators {ms(everything, p95)} (target ≤ {P95_TARGET_MS} ms), "
        f"{p95(everything) / p95(alone):.1f}x the one-curator baseline's {ms(alone, p95)}; "
        f"server CPU per next/accept median {ms(cpu, statistics.median)} (target ≤ {CPU_TARGET_MS} ms)"
    )
    failed = team["errors"] or team["problems"] or team["conflicts"] or base["errors"] or base["problems"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
