"""How an imported dataset's depth pictures are read, decided once per dataset at import.

SIF-50K-style records name a depth picture but rarely its encoding. A colour picture is the
`spectral_r` rendering. A gray one is ambiguous: FORMATS §2 reads it as disparity
(`gray_disparity`, d = 1 − v/255), the public reference code as v/255 (`gray_depth`), which swaps
near and far. The chains' recorded depths were measured one way or the other, so the importer
compares them, on a seeded sample of records, with each region's mean under both readings and
records for the dataset the reading they agree with (FORMATS' when the chains cannot tell). Depth
checks and the depth reward then read the maps the way the data was made.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from PIL import Image

from sif.chain import parse_chain
from sif.depth import DepthMap, detect_encoding

SAMPLE = 32  # records looked at per dataset
MARGIN = 0.05  # the mean error of one reading must beat the other's by this much to decide
READING = {"gray_disparity": "d = 1 − v/255, FORMATS", "gray_depth": "d = v/255, the reference code's reading"}


@dataclass
class ConventionCheck:
    """The reading chosen for a dataset's gray pictures and what it rests on."""

    dataset: str
    encoding: str
    basis: str
    records: int = 0
    regions: int = 0
    error: dict[str, float] = field(default_factory=dict)  # reading -> mean |recorded − measured| depth

    def evidence(self) -> dict:
        return {"basis": self.basis, "records": self.records, "regions": self.regions, "mean_error": self.error}

    def summary(self) -> str:
        line = f"{self.dataset}: gray depth pictures read as {self.encoding} ({READING[self.encoding]}); {self.basis}"
        if self.regions:
            errors = ", ".join(f"{self.error[r]:.3f} as {r}" for r in READING)
            line += f" (recorded depths of {self.regions} regions in {self.records} records differ by {errors})"
        return line


def measure(dataset: str, pairs: list[tuple[str, str]]) -> ConventionCheck:
    """Decide the reading from (gray picture path, chain text) pairs."""
    errors: dict[str, list[float]] = {r: [] for r in READING}
    records = 0
    for path, text in pairs:
        try:
            dmap = DepthMap.load(path, "gray_disparity")
            regions = [(r.bbox, r.depth) for step in parse_chain(text).chain.steps for r in step.regions]
        except (OSError, ValueError):
            continue
        records += any(d is not None for _, d in regions)
        for box, depth in regions:
            if depth is None:
                continue
            measured = dmap.box_mean(box)  # under gray_depth the mean is 1 − this
            errors["gray_disparity"].append(abs(depth - measured))
            errors["gray_depth"].append(abs(depth - (1.0 - measured)))
    n = len(errors["gray_disparity"])
    if n == 0:
        return ConventionCheck(dataset, "gray_disparity", "no recorded depths to compare: FORMATS' reading")
    mean = {r: sum(v) / n for r, v in errors.items()}
    if mean["gray_depth"] + MARGIN < mean["gray_disparity"]:
        encoding, basis = "gray_depth", "the chains' depths agree with this reading"
    elif mean["gray_disparity"] + MARGIN < mean["gray_depth"]:
        encoding, basis = "gray_disparity", "the chains' depths agree with this reading"
    else:
        encoding, basis = "gray_disparity", "the chains cannot tell the readings apart: FORMATS' reading"
    return ConventionCheck(dataset, encoding, basis, records, n, {r: round(v, 4) for r, v in mean.items()})


def _picture_kind(path: str) -> str | None:
    """spectral_r, gray16_depth or gray (8-bit, either reading) for a picture; None if unreadable."""
    try:
        with Image.open(path) as img:
            kind = detect_encoding(img)
    except (OSError, ValueError):
        return None
    return "gray" if kind == "gray_disparity" else kind


def settle_depth_encodings(store, samples: list[tuple[dict, str | None]], *, seed: int = 0) -> list[str]:
    """Fill in `depth_encoding` for each (sample fields, chain text) whose depth picture has none.

    Per dataset, a seeded sample of its pictures says what kind they are (pictures of mixed kinds
    are then looked at one by one); gray pictures get the dataset's recorded reading, or one
    decided now from the sampled records' chains and recorded. Returns one line per gray dataset."""
    by_dataset: dict[str, list[tuple[dict, str | None]]] = defaultdict(list)
    for fields, chain in samples:
        if fields.get("depth") and not fields.get("depth_encoding"):
            by_dataset[str(fields.get("dataset"))].append((fields, chain))
    notes = []
    for dataset, group in sorted(by_dataset.items()):
        picked = random.Random(seed).sample(group, min(SAMPLE, len(group)))
        kinds = {k for k in (_picture_kind(f["depth"]) for f, _ in picked) if k is not None}
        if len(kinds) > 1:
            per_item = [(f, c, _picture_kind(f["depth"]) or "spectral_r") for f, c in group]
        else:
            only = kinds.pop() if kinds else "spectral_r"
            per_item = [(f, c, only) for f, c in group]
        gray = [(f, c) for f, c, kind in per_item if kind == "gray"]
        reading = "gray_disparity"
        if gray:
            check = _gray_reading(store, dataset, gray, seed)
            notes.append(check.summary())
            reading = check.encoding
        for fields, _chain, kind in per_item:
            fields["depth_encoding"] = reading if kind == "gray" else kind
    return notes


def _gray_reading(store, dataset: str, group: list[tuple[dict, str | None]], seed: int) -> ConventionCheck:
    recorded = store.depth_convention(dataset)
    if recorded is not None:
        evidence = recorded["evidence"]
        return ConventionCheck(
            dataset,
            recorded["encoding"],
            f"recorded for this dataset on {recorded['decided_at'][:10]}",
            evidence.get("records", 0),
            evidence.get("regions", 0),
            evidence.get("mean_error", {}),
        )
    with_chains = [(f["depth"], c) for f, c in group if c]
    check = measure(dataset, random.Random(seed).sample(with_chains, min(SAMPLE, len(with_chains))))
    store.record_depth_convention(dataset, check.encoding, check.evidence())
    return check
