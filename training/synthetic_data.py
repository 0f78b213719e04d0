"""Synthetic training data through the store: synthesize, import, export SFT and RL files.

The same path a real project takes (`sif synth` → `sif import sif50k` → `sif export sft/rl`),
used by `sif train demo-run` and the training tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class SyntheticData:
    db: Path
    sft_dir: Path  # sif_sft.jsonl (train split)
    rl_file: Path  # RL subset (train split)
    test_file: Path  # held-out samples in the RL format (test split)
    summary: str


def prepare_synthetic(
    out_dir, n: int, seed: int = 0, *, rl_n: int = 200, progress: bool = False, **knobs
) -> SyntheticData:
    """Synthesize `n` samples under OUT/synthetic and route them through a store at OUT/sif.db."""
    from db.exporters import export_rl, export_sft
    from db.importers import import_dataset
    from sif.synthetic import make_dataset

    out = Path(out_dir)
    src = out / "synthetic"
    records = make_dataset(src, n, seed, progress=progress, **knobs)
    store, imported = import_dataset(out / "sif.db", "sif50k", records, src, progress=progress)
    try:
        sft = export_sft(store, out / "sft", fmt="trl", split="train")
        rl = export_rl(store, out / "rl.jsonl", n=rl_n, seed=seed, split="train")
        test = export_rl(store, out / "test.jsonl", n=n, seed=seed, split="test")
    finally:
        store.close()
    summary = f"{imported.summary()}; SFT: {sft.exported}; RL: {rl.exported}; held out: {test.exported}"
    return SyntheticData(out / "sif.db", out / "sft", out / "rl.jsonl", out / "test.jsonl", summary)
