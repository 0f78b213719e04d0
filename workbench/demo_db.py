"""The embedded demo store that `sif workbench --demo` opens: synthetic scenes from `sif synth`
imported under `$SIF_HOME/demo` (default `~/.cache/sif/demo`) on first use, plus a small
evaluation run whose predictions fill the Model outputs panel, and some flawed teacher chains
to curate."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from db.importers import import_file, sif50k_converter
from db.store import Store
from sif.chain import Chain, Region, Step
from sif.paths import sif_home

DEMO_SAMPLES = 200
DEMO_PREDICTIONS = 40
_DONE = ".complete"


def _jitter(chain: Chain, rng: np.random.Generator) -> Chain:
    """A plausible model output: the chain with its boxes shifted a little, depths kept."""

    def move(r: Region) -> Region:
        x1, y1, x2, y2 = r.bbox
        dx, dy = rng.uniform(-0.06, 0.06, size=2)
        dx = min(max(dx, -x1), 1 - x2)
        dy = min(max(dy, -y1), 1 - y2)
        return Region((round(x1 + dx, 3), round(y1 + dy, 3), round(x2 + dx, 3), round(y2 + dy, 3)), r.depth)

    steps = tuple(Step(tuple(move(r) if not r.is_whole_image else r for r in s.regions), s.text) for s in chain.steps)
    return Chain(steps, chain.answer)


def add_demo_drafts(store: Store, seed: int = 1) -> None:
    """Give the demo something to curate: every 4th sample gets a 'generated' chain whose boxes
    are off (lower HIoU, stale depths), every 10th a chain with format problems."""
    rng = np.random.default_rng(seed)
    for row in store.query(sort="id", limit=-1):
        current = store.current_chain(row.id)
        if current is None:
            continue
        if row.id % 10 == 5:
            broken = current.text.replace("</text>", "</text>\n<text>an extra remark</text>", 1)
            store.add_revision(row.id, broken, origin="generated", author="demo-teacher")
        elif row.id % 4 == 0:
            store.add_revision(row.id, _jitter(current.chain, rng), origin="generated", author="demo-teacher")


def add_demo_predictions(store: Store, n: int = DEMO_PREDICTIONS, seed: int = 0) -> str:
    """An evaluation run with a jittered prediction for the first `n` samples; returns its id."""
    run_id = store.create_run(
        "evaluation", {"model": "demo", "note": "jittered curated chains"}, name="demo predictions"
    )
    rng = np.random.default_rng(seed)
    for row in store.query(sort="id", limit=n):
        current = store.current_chain(row.id)
        if current is not None:
            store.add_revision(
                row.id, _jitter(current.chain, rng), origin="prediction", author="demo-model", run_id=run_id
            )
    store.update_run(run_id, status="done")
    return run_id


def build_demo(folder: Path, n: int = DEMO_SAMPLES, seed: int = 0, *, progress: bool = True) -> Path:
    """Synthesize `n` samples into `folder/data` and import them into `folder/sif.db`."""
    from sif.synthetic import make_dataset

    data = folder / "data"
    db = folder / "sif.db"
    for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    records = make_dataset(data, n, seed, progress=progress)
    with Store.open(db, data_root=data) as store:
        report = import_file(store, records, sif50k_converter(data), progress=progress, description="importing demo")
        if report.errors:
            raise RuntimeError(f"demo import failed: {report.errors[0]}")
        add_demo_drafts(store)
        add_demo_predictions(store)
    (folder / _DONE).write_text(f"{n} samples, seed {seed}\n")
    return db


def ensure_demo(home: Path | None = None, *, n: int = DEMO_SAMPLES, progress: bool = True, echo=print) -> Path:
    """The demo store's path, built on first use (an interrupted build is redone)."""
    folder = (home or sif_home()) / "demo"
    if not (folder / _DONE).is_file():
        echo(f"Building the demo store in {folder} ({n} synthetic samples, first run only)…")
        folder.mkdir(parents=True, exist_ok=True)
        build_demo(folder, n, progress=progress)
    return folder / "sif.db"
