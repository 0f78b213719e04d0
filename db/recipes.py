"""Data recipes: which source records an import keeps, as the paper built SIF-50K.

`paper` (Visual-CoT): the paper's fine-grained reasoning part comes from Visual-CoT's scene
subsets (Flickr30k, Visual7W, GQA, Open Images, VSR, CUB-200); its text-heavy subsets
(TextVQA, TextCaps, DocVQA, InfographicsVQA, DUDE, SROIE) are left out, and at most 10,000
samples are drawn per source dataset, seeded so that a rerun keeps the same ones.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from sif.errors import ConfigError

RECIPES = ("paper",)
TEXT_HEAVY = frozenset({"textvqa", "textcap", "textcaps", "docvqa", "infographicsvqa", "infovqa", "dude", "sroie"})
PER_DATASET = 10_000
LEFT_OUT = object()  # stands in for a record the recipe leaves out, so the others keep their positions


def paper_selection(records: list, *, seed: int = 0, per_dataset: int = PER_DATASET) -> tuple[list, str]:
    """`records` with those the paper's recipe leaves out replaced by LEFT_OUT, and a summary.
    Records that are not objects, or name no dataset, stay: the import reports them."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if isinstance(record, dict) and isinstance(record.get("dataset"), str):
            groups[record["dataset"]].append(i)
    dropped: set[int] = set()
    excluded: Counter[str] = Counter()
    capped: dict[str, int] = {}
    for dataset, positions in sorted(groups.items()):
        if dataset.strip().lower() in TEXT_HEAVY:
            excluded[dataset] = len(positions)
            dropped.update(positions)
        elif len(positions) > per_dataset:
            keep = set(random.Random(f"{seed}:{dataset}").sample(positions, per_dataset))
            dropped.update(p for p in positions if p not in keep)
            capped[dataset] = len(positions)
    out = [LEFT_OUT if i in dropped else r for i, r in enumerate(records)]
    parts = [f"recipe paper (seed {seed}): kept {len(records) - len(dropped)} of {len(records)} records"]
    if excluded:
        parts.append("text-heavy subsets left out: " + ", ".join(f"{k} {v}" for k, v in sorted(excluded.items())))
    if capped:
        parts.append(
            f"at most {per_dataset} per dataset: " + ", ".join(f"{k} {v} → {per_dataset}" for k, v in capped.items())
        )
    return out, "; ".join(parts)


def apply_recipe(recipe: str | None, records: list, seed: int = 0) -> tuple[list, list[str]]:
    """The records an import keeps under `recipe` (None: all of them) and what it says about them."""
    if recipe is None:
        return records, []
    if recipe not in RECIPES:
        raise ConfigError(f"--recipe: {recipe!r} is not one of {', '.join(RECIPES)}")
    kept, note = paper_selection(records, seed=seed)
    return kept, [note]
