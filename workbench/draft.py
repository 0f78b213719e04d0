"""The chain a curator is editing: steps of regions (box, depth, whether the depth was typed by
hand) and text, plus the answer, with the conversions the editing widgets need.

A region's depth follows its box: when the box changes the depth is recomputed from the depth
map, unless the curator typed a depth for the current box, which is then kept and marked manual.
Pure Python (no Gradio), so the editing rules are tested without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sif.chain import WHOLE_IMAGE, Chain, Region, Step
from sif.depth import DepthMap
from sif.draw import step_colour
from sif.geometry import to_normalized, to_pixels

TABLE_HEADERS = ["x1", "y1", "x2", "y2", "depth", "depth source"]


def _r3(v: float) -> float:
    return round(float(v), 3)


def _rounded(values: Sequence[float]) -> list[float]:
    """`_r3` of each value. A value numpy finds already at 3 decimals is one (it is the float
    nearest k/1000), so only the others take Python's slower, correctly rounded `round`."""
    a = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        kept = (np.round(a, 3) == a).tolist()
    return [v if k else round(v, 3) for v, k in zip(a.tolist(), kept)]


def _draft_region(box: list[float], depth: float | None, auto: float | None) -> DraftRegion:
    """A stored region as drafted: a depth that differs from the map's is kept and marked manual."""
    if depth is None:
        return DraftRegion(box, auto)
    typed = _r3(depth)
    return DraftRegion(box, typed, auto is not None and abs(typed - auto) > 0.0015)


@dataclass
class DraftRegion:
    bbox: list[float]
    depth: float | None
    manual: bool = False


@dataclass
class DraftStep:
    regions: list[DraftRegion]
    text: str


@dataclass
class Draft:
    """An unsaved edit of one sample's chain, made against revision `base_rev`."""

    sample_id: int
    base_rev: int | None
    steps: list[DraftStep] = field(default_factory=list)
    answer: str = ""
    dirty: bool = False
    layout: int = 0  # counts changes to the steps' order and number (what a step index points at)

    # ------------------------------------------------------------ chain conversion

    @classmethod
    def from_chain(
        cls, sample_id: int, base_rev: int | None, chain: Chain | None, dmap: DepthMap | None = None
    ) -> Draft:
        """A draft of `chain`; regions without a depth get it from `dmap`. Stored depths that differ
        from the map's are kept and marked manual, so the curator sees they are not the map's."""
        draft = cls(sample_id, base_rev)
        if chain is None:
            return draft
        regions = [r for s in chain.steps for r in s.regions]
        flat = _rounded([v for r in regions for v in r.bbox])
        boxes = [flat[i : i + 4] for i in range(0, len(flat), 4)]
        autos: list = _rounded(dmap.box_means(boxes)) if dmap is not None else [None] * len(boxes)
        drafted = iter([_draft_region(box, r.depth, auto) for box, r, auto in zip(boxes, regions, autos)])
        draft.steps = [DraftStep([next(drafted) for _ in s.regions], s.text) for s in chain.steps]
        draft.answer = chain.answer or ""
        return draft

    def copy(self) -> Draft:
        """An independent copy: the workbench keeps the drafts of long chains and hands out copies."""
        steps = [
            DraftStep([DraftRegion(list(r.bbox), r.depth, r.manual) for r in s.regions], s.text) for s in self.steps
        ]
        return Draft(self.sample_id, self.base_rev, steps, self.answer, self.dirty, self.layout)

    def to_data(self) -> dict:
        """The draft as JSON-able data (what the store keeps of an unsaved edit)."""
        return {
            "steps": [
                {"text": s.text, "regions": [[*r.bbox, r.depth, r.manual] for r in s.regions]} for s in self.steps
            ],
            "answer": self.answer,
            "layout": self.layout,
        }

    @classmethod
    def from_data(cls, sample_id: int, base_rev: int | None, data: dict) -> Draft:
        """A draft kept by `to_data`; it is an unsaved edit, so it is dirty."""
        steps = [
            DraftStep([DraftRegion([float(v) for v in r[:4]], r[4], bool(r[5])) for r in s["regions"]], s["text"])
            for s in data.get("steps", [])
        ]
        return cls(sample_id, base_rev, steps, data.get("answer", ""), dirty=True, layout=int(data.get("layout", 0)))

    def to_chain(self) -> Chain:
        steps = tuple(
            Step(tuple(Region((r.bbox[0], r.bbox[1], r.bbox[2], r.bbox[3]), r.depth) for r in s.regions), s.text)
            for s in self.steps
        )
        return Chain(steps, self.answer)

    # ------------------------------------------------------------ step operations

    def _touch(self, *, layout: bool = False) -> Draft:
        self.dirty = True
        self.layout += layout
        return self

    def add_step(self, after: int, dmap: DepthMap | None) -> int:
        """Insert a step after `after` (a copy of its boxes, else the whole image); its index."""
        if 0 <= after < len(self.steps):
            regions = [DraftRegion(list(r.bbox), r.depth, r.manual) for r in self.steps[after].regions]
        else:
            box = list(WHOLE_IMAGE)
            regions = [DraftRegion(box, _r3(dmap.box_mean(box)) if dmap else None)]
        at = min(max(after + 1, 0), len(self.steps))
        self.steps.insert(at, DraftStep(regions, ""))
        self._touch(layout=True)
        return at

    def delete_step(self, index: int) -> int:
        """Remove step `index`; the index to select next."""
        if 0 <= index < len(self.steps):
            del self.steps[index]
            self._touch(layout=True)
        return min(index, len(self.steps) - 1)

    def move_step(self, index: int, delta: int) -> int:
        """Move step `index` by `delta` places; its new index."""
        to = index + delta
        if 0 <= index < len(self.steps) and 0 <= to < len(self.steps):
            self.steps[index], self.steps[to] = self.steps[to], self.steps[index]
            self._touch(layout=True)
            return to
        return index

    def set_text(self, index: int, text: str) -> None:
        if 0 <= index < len(self.steps) and self.steps[index].text != text:
            self.steps[index].text = text
            self._touch()

    def set_answer(self, answer: str) -> None:
        if self.answer != answer:
            self.answer = answer
            self._touch()

    # ------------------------------------------------------------ regions

    def set_regions(
        self, index: int, boxes: Sequence[Sequence[float]], depths: Sequence[float | None], dmap: DepthMap | None
    ) -> None:
        """Replace step `index`'s regions. A region whose box is unchanged keeps its depth (manual
        or not) unless `depths` gives a new one, which is then manual; a changed or new box gets
        its depth from the map, or the given depth (manual) where there is no map."""
        if not 0 <= index < len(self.steps):
            return
        old = self.steps[index].regions
        used: set[int] = set()
        new: list[DraftRegion] = []
        for i, (box, depth) in enumerate(zip(boxes, depths)):
            box = [_r3(v) for v in box]
            same = [
                j for j in ([i] if i < len(old) else []) + list(range(len(old))) if old[j].bbox == box and j not in used
            ]
            prev = old[same[0]] if same else None
            if prev is not None:
                used.add(same[0])
                if depth is not None and _r3(depth) != prev.depth:
                    new.append(DraftRegion(box, _r3(depth), True))
                else:
                    new.append(DraftRegion(box, prev.depth, prev.manual))
            elif dmap is not None:
                new.append(DraftRegion(box, _r3(dmap.box_mean(box))))
            else:
                new.append(DraftRegion(box, None if depth is None else _r3(depth), depth is not None))
        if [(r.bbox, r.depth, r.manual) for r in new] != [(r.bbox, r.depth, r.manual) for r in old]:
            self.steps[index].regions = new
            self._touch()

    def reset_depth(self, index: int, region: int, dmap: DepthMap) -> None:
        """Drop a manual depth: the region's depth comes from the map again."""
        r = self.steps[index].regions[region]
        r.depth, r.manual = _r3(dmap.box_mean(r.bbox)), False
        self._touch()

    # ------------------------------------------------------------ widget views

    def table_rows(self, index: int) -> list[list]:
        """Step `index`'s regions as rows for the numeric editor."""
        if not 0 <= index < len(self.steps):
            return []
        return [[*r.bbox, r.depth, "manual" if r.manual else "auto"] for r in self.steps[index].regions]

    def apply_table(self, index: int, rows: Sequence[Sequence], dmap: DepthMap | None) -> list[str]:
        """Take the numeric editor's rows for step `index`; returns problems with rows it skipped.
        A typed depth becomes manual; switching 'manual' back to 'auto' hands the depth to the map."""
        if not 0 <= index < len(self.steps):
            return []
        old = self.steps[index].regions
        boxes: list[list[float]] = []
        depths: list[float | None] = []
        errors: list[str] = []
        release: list[int] = []
        for n, row in enumerate(rows, 1):
            row = list(row or [])
            if all(v in (None, "") for v in row[:5]):
                continue
            try:
                box = [float(v) for v in row[:4]]
                depth = None if len(row) < 5 or row[4] in (None, "") else float(row[4])
            except (TypeError, ValueError):
                errors.append(f"row {n}: box and depth must be numbers")
                continue
            i = len(boxes)
            prev = old[i] if i < len(old) else None
            wants_auto = len(row) > 5 and str(row[5]).strip().lower() == "auto"
            if prev is not None and prev.manual and wants_auto and depth is not None and _r3(depth) == prev.depth:
                depth = None
                release.append(i)
            boxes.append(box)
            depths.append(depth)
        self.set_regions(index, boxes, depths, dmap)
        if dmap is not None:
            for i in release:
                self.reset_depth(index, i, dmap)
        return errors

    def annotator_boxes(self, index: int, width: int, height: int) -> list[dict]:
        """Step `index`'s boxes in pixels of a `width` × `height` image, for the box annotator."""
        if not 0 <= index < len(self.steps):
            return []
        colour = step_colour(index)
        out = []
        for r in self.steps[index].regions:
            x1, y1, x2, y2 = to_pixels(r.bbox, width, height)
            out.append(
                {
                    "xmin": round(x1),
                    "ymin": round(y1),
                    "xmax": round(x2),
                    "ymax": round(y2),
                    "label": str(index + 1),
                    "color": colour,
                }
            )
        return out

    def apply_annotator(
        self, index: int, boxes: Sequence[dict], width: int, height: int, dmap: DepthMap | None
    ) -> None:
        """Take the annotator's boxes (pixels) for step `index`. The annotator reorders boxes (a new
        one comes first) and reports a box of no size while it is being drawn, so boxes are matched
        to regions by their pixels: an unmoved box keeps its region exactly (pixel rounding must not
        nudge it, nor drop a manual depth), a moved one takes the place of the region it left, a
        new one is appended, and a box still being drawn is ignored."""
        if not 0 <= index < len(self.steps):
            return
        incoming = []
        for b in boxes:
            x1, x2 = sorted((float(b["xmin"]), float(b["xmax"])))
            y1, y2 = sorted((float(b["ymin"]), float(b["ymax"])))
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                incoming.append([x1, y1, x2, y2])
        old = self.steps[index].regions
        old_px = [[round(v) for v in to_pixels(r.bbox, width, height)] for r in old]
        unmoved: dict[int, int] = {}
        for j, px in enumerate(incoming):
            i = next(
                (i for i, o in enumerate(old_px) if o == [round(v) for v in px] and i not in unmoved.values()), None
            )
            if i is not None:
                unmoved[j] = i
        moved = [to_normalized(px, width, height) for j, px in enumerate(incoming) if j not in unmoved]
        kept = set(unmoved.values())
        result: list[list[float]] = []
        for i, r in enumerate(old):
            if i in kept:
                result.append(r.bbox)
            elif moved:
                result.append(moved.pop(0))
        result += moved
        self.set_regions(index, result, [None] * len(result), dmap)
