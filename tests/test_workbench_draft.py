"""Editing rules of the workbench draft: depth follows the box unless typed, pixel rounding never
nudges untouched boxes, step operations, and the live reward preview."""

from __future__ import annotations

import numpy as np
import pytest

from sif.chain import Chain, Region, Step
from sif.depth import DepthMap
from workbench.draft import Draft
from workbench.preview import preview
from workbench.views import feedback


@pytest.fixture
def dmap() -> DepthMap:
    # depth grows left → right: 0 at x = 0, ~1 at the right edge
    return DepthMap(np.tile(np.linspace(0, 1, 200, dtype=np.float32), (100, 1)))


@pytest.fixture
def draft(dmap) -> Draft:
    chain = Chain(
        (
            Step((Region((0.0, 0.0, 1.0, 1.0), 0.5),), "whole image"),
            Step((Region((0.123, 0.2, 0.333, 0.6), 0.9),), "look left"),  # stored depth is not the map's
        ),
        "left",
    )
    return Draft.from_chain(7, 3, chain, dmap)


def test_stored_depth_off_the_map_is_marked_manual(draft, dmap):
    whole, left = draft.steps[0].regions[0], draft.steps[1].regions[0]
    assert not whole.manual and whole.depth == 0.5
    assert left.manual and left.depth == 0.9
    assert not draft.dirty


def test_a_long_chain_is_drafted_exactly_as_one_region_at_a_time(dmap):
    """The vectorized conversion (numpy for box means and for values already at 3 decimals)
    gives what rounding and measuring each region on its own gives, awkward values included."""
    rng = np.random.default_rng(3)
    raw = rng.uniform(0, 1, (3000, 5)).tolist()
    raw[:1000] = np.round(np.array(raw[:1000]), 3).tolist()
    raw[1000:1010] = [[0.0005, 0.0015, 0.1235, 2.675, 1e308]] * 10
    steps = tuple(
        Step((Region((x1, y1, x1 + x2, y1 + y2), None if i % 7 == 0 else d),), f"step {i}")
        for i, (x1, y1, x2, y2, d) in enumerate(raw)
    )
    drafted = Draft.from_chain(1, 1, Chain(steps, "a"), dmap)
    for step, got in zip(steps, drafted.steps):
        r = step.regions[0]
        box = [round(float(v), 3) for v in r.bbox]
        auto = round(dmap.box_mean(box), 3)
        depth = auto if r.depth is None else round(r.depth, 3)
        assert got.regions[0].bbox == box and got.regions[0].depth == depth
        assert got.regions[0].manual == (r.depth is not None and abs(depth - auto) > 0.0015)


def test_moving_a_box_recomputes_its_depth_and_clears_manual(draft, dmap):
    boxes = draft.annotator_boxes(1, 200, 100)
    boxes[0]["xmin"] += 100
    boxes[0]["xmax"] += 100
    draft.apply_annotator(1, boxes, 200, 100, dmap)
    r = draft.steps[1].regions[0]
    assert r.bbox[0] == pytest.approx(0.625, abs=0.003) and not r.manual
    assert r.depth == pytest.approx(dmap.box_mean(r.bbox), abs=0.001)
    assert draft.dirty


def test_untouched_boxes_keep_their_exact_coordinates(draft, dmap):
    draft.apply_annotator(1, draft.annotator_boxes(1, 200, 100), 200, 100, dmap)
    assert draft.steps[1].regions[0].bbox == [0.123, 0.2, 0.333, 0.6]  # 0.123·200 = 24.6 px would round off
    assert not draft.dirty


def test_typed_depth_is_manual_and_auto_gives_it_back(draft, dmap):
    rows = draft.table_rows(0)
    rows[0][4] = 0.25
    draft.apply_table(0, rows, dmap)
    assert draft.steps[0].regions[0].depth == 0.25 and draft.steps[0].regions[0].manual
    assert draft.table_rows(0)[0][5] == "manual"
    rows = draft.table_rows(0)
    rows[0][5] = "auto"
    draft.apply_table(0, rows, dmap)
    assert draft.steps[0].regions[0].depth == pytest.approx(dmap.box_mean([0, 0, 1, 1]), abs=0.001)
    assert not draft.steps[0].regions[0].manual


def test_table_rows_that_are_not_numbers_are_reported(draft, dmap):
    errors = draft.apply_table(1, [["a", 0, 1, 1, 0.5, "auto"], [0.1, 0.1, 0.2, 0.2, None, "auto"]], dmap)
    assert errors == ["row 1: box and depth must be numbers"]
    assert [r.bbox for r in draft.steps[1].regions] == [[0.1, 0.1, 0.2, 0.2]]


def test_step_operations(draft, dmap):
    at = draft.add_step(1, dmap)
    assert at == 2 and len(draft.steps) == 3 and draft.steps[2].regions[0].bbox == draft.steps[1].regions[0].bbox
    draft.set_text(2, "the answer region")
    assert draft.move_step(2, -1) == 1 and draft.steps[1].text == "the answer region"
    assert draft.move_step(0, -1) == 0  # cannot move past the top
    assert draft.delete_step(1) == 1 and [s.text for s in draft.steps] == ["whole image", "look left"]
    draft.set_answer("right")
    assert draft.to_chain().answer == "right"


def test_preview_reports_rewards_and_problems(draft, dmap, tmp_path):
    path = tmp_path / "d.png"
    dmap.save_gray16(path)
    gt = [[0.123, 0.2, 0.333, 0.6]]
    p = preview(draft.to_chain(), gt, path, "gray16_depth")
    assert p.format == 1.0 and p.final_hiou == pytest.approx(1.0)
    assert p.correction == pytest.approx(1.0 - p.initial_hiou)
    assert p.depth == 0.0 and p.depth_fraction == 0.5  # the manual 0.9 is far from the map's ~0.23
    draft.set_text(1, "  ")
    bad = preview(draft.to_chain(), gt, path, "gray16_depth")
    assert bad.format == 0.0 and any(pr.rule == 5 for pr in bad.problems)
    assert "rule 5" in feedback(bad)


def test_annotator_new_box_first_and_box_being_drawn(draft, dmap):
    """The annotator puts a new box first and reports it with no size while it is drawn."""
    existing = draft.annotator_boxes(1, 200, 100)
    drawing = {"xmin": 150, "ymin": 10, "xmax": 150, "ymax": 10}
    draft.apply_annotator(1, [drawing, *existing], 200, 100, dmap)
    assert len(draft.steps[1].regions) == 1 and not draft.dirty
    drawn = {"xmin": 150, "ymin": 10, "xmax": 190, "ymax": 50}
    draft.apply_annotator(1, [drawn, *existing], 200, 100, dmap)
    kept, new = draft.steps[1].regions
    assert kept.bbox == [0.123, 0.2, 0.333, 0.6] and kept.manual and kept.depth == 0.9
    assert new.bbox == [0.75, 0.1, 0.95, 0.5] and not new.manual
    draft.apply_annotator(1, [drawn], 200, 100, dmap)  # the first box deleted
    assert [r.bbox for r in draft.steps[1].regions] == [[0.75, 0.1, 0.95, 0.5]]
    assert draft.steps[1].regions[0].depth == new.depth
