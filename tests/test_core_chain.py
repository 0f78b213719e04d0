"""Strict validation (one failing example per rule), lenient parsing and canonical rendering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sif.chain import Chain, Region, Step, parse_chain, render_chain, validate_chain

AREA = '<area>[{"bbox_2d":[0.1,0.2,0.5,0.6],"depth":0.4}]</area>'
VALID = f"<think>\n{AREA}\n<text>look here</text>\n</think>\n<answer>red</answer>"


def only_problem(text: str):
    problems = validate_chain(text)
    assert problems, f"expected a problem in {text!r}"
    return problems


def test_valid_chain_has_no_problems():
    assert validate_chain(VALID) == []


@pytest.mark.parametrize(
    "text, field",
    [
        (f"<think>{AREA}<text>a</text></think>", "answer"),  # no answer
        (f"<think>{AREA}<text>a</text></think><think></think><answer>b</answer>", "think"),  # two thinks
        (f"<think>{AREA}<text>a</text></think><answer>  </answer>", "answer"),  # empty answer
        (f"<answer>b</answer><think>{AREA}<text>a</text></think>", "chain"),  # wrong order
        (f"preamble <think>{AREA}<text>a</text></think><answer>b</answer>", "chain"),  # text outside
    ],
)
def test_rule_1_think_then_answer(text, field):
    problems = only_problem(text)
    assert {(p.rule, p.field) for p in problems} >= {(1, field)}
    assert all(p.step is None for p in problems)


@pytest.mark.parametrize(
    "think, field, step",
    [
        (f"{AREA}<text>a</text> stray words", "think", None),
        (f"<text>a</text>{AREA}<text>b</text>", "text", 0),
        (f"{AREA}<text>a</text>{AREA}", "think", 1),
        ("", "think", None),
        (f"{AREA}{AREA}<text>a</text>", "area", 0),
    ],
)
def test_rule_2_alternating_pairs(think, field, step):
    problems = only_problem(f"<think>{think}</think><answer>b</answer>")
    assert any(p.rule == 2 and p.field == field and p.step == step for p in problems), problems


@pytest.mark.parametrize(
    "area, field",
    [
        ('[{"bbox_2d":[0.1,0.2,0.5,0.6],"depth":0.4}', "area"),  # broken JSON
        ('{"bbox_2d":[0.1,0.2,0.5,0.6],"depth":0.4}', "area"),  # not a list
        ("[]", "area"),
        ('[{"bbox_2d":[0.1,0.2,0.5],"depth":0.4}]', "area[0].bbox_2d"),
        ('[{"bbox_2d":[0.1,0.2,0.5,0.6]}]', "area[0].depth"),
        ('[{"bbox_2d":[0.1,0.2,0.5,0.6],"depth":"near"}]', "area[0].depth"),
        ('[{"bbox_2d":[0.1,0.2,0.5,0.6],"depth":0.4,"label":"x"}]', "area[0]"),
    ],
)
def test_rule_3_area_json(area, field):
    text = f"<think>{AREA}<text>a</text><area>{area}</area><text>b</text></think><answer>c</answer>"
    problems = only_problem(text)
    assert any(p.rule == 3 and p.field == field and p.step == 1 for p in problems), problems


@pytest.mark.parametrize(
    "region, field",
    [
        ('{"bbox_2d":[0.5,0.2,0.5,0.6],"depth":0.4}', "area[0].bbox_2d"),  # x1 == x2
        ('{"bbox_2d":[0.1,0.7,0.5,0.6],"depth":0.4}', "area[0].bbox_2d"),  # y1 > y2
        ('{"bbox_2d":[0.1,0.2,1.5,0.6],"depth":0.4}', "area[0].bbox_2d"),  # beyond the border
        ('{"bbox_2d":[0.1234,0.2,0.5,0.6],"depth":0.4}', "area[0].bbox_2d"),  # 4 decimals
        ('{"bbox_2d":[0.1,0.2,0.5,0.6],"depth":1.2}', "area[0].depth"),
        ('{"bbox_2d":[0.1,0.2,0.5,0.6],"depth":0.4567}', "area[0].depth"),
    ],
)
def test_rule_4_ranges_and_decimals(region, field):
    problems = only_problem(f"<think><area>[{region}]</area><text>a</text></think><answer>c</answer>")
    assert [(p.rule, p.field, p.step) for p in problems] == [(4, field, 0)]


def test_rule_5_empty_text():
    problems = only_problem(f"<think>{AREA}<text>a</text>{AREA}<text> \n </text></think><answer>c</answer>")
    assert [(p.rule, p.field, p.step) for p in problems] == [(5, "text", 1)]


def test_problem_str_names_step_and_field():
    (p,) = validate_chain(f"<think>{AREA}<text> </text></think><answer>c</answer>")
    assert str(p) == "step 1, text: is empty"


# ---------------------------------------------------------------- lenient parsing


def test_lenient_recovers_from_missing_closing_tags():
    r = parse_chain(
        f'<think>{AREA}<text>first look<area>[{{"bbox_2d":[0,0,1,1],"depth":0.5}}]</area><text>second</text><answer>red'
    )
    assert [s.text for s in r.chain.steps] == ["first look", "second"]
    assert r.chain.answer == "red"
    assert any("not closed" in s for s in r.skipped)


def test_lenient_salvages_bad_json_in_one_area():
    text = (
        '<area>[{"bbox_2d":[0.1,0.2,0.3,0.4],"depth":0.5},{"bbox_2d":[0.5,0.5,0.9,0.9] "depth":0.7}</area>'
        f"<text>broken</text>{AREA}<text>fine</text><answer>x</answer>"
    )
    r = parse_chain(text)
    assert len(r.chain.steps) == 2
    assert [reg.bbox for reg in r.chain.steps[0].regions] == [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.9, 0.9)]
    assert r.chain.steps[1].regions == (Region((0.1, 0.2, 0.5, 0.6), 0.4),)
    assert any("step 1" in s and "JSON" in s for s in r.skipped)


def test_lenient_ignores_stray_text_and_reports_missing_parts():
    r = parse_chain(f"Sure! Here you go. <think> hmm {AREA} so <text>look</text> done</think> <text>orphan</text>")
    assert len(r.chain.steps) == 1 and r.chain.steps[0].text == "look"
    assert r.chain.answer is None
    assert "no <answer>" in r.skipped
    assert any("text without an area" in s for s in r.skipped)
    assert not r.complete


def test_lenient_parse_of_valid_chain_is_complete():
    r = parse_chain(VALID)
    assert r.complete and r.chain.answer == "red"


# ---------------------------------------------------------------- canonical round trip

_grid = st.integers(0, 1000)


@st.composite
def regions(draw):
    x1, x2 = sorted(draw(st.lists(_grid, min_size=2, max_size=2, unique=True)))
    y1, y2 = sorted(draw(st.lists(_grid, min_size=2, max_size=2, unique=True)))
    return Region((x1 / 1000, y1 / 1000, x2 / 1000, y2 / 1000), draw(_grid) / 1000)


_words = (
    st.text(st.characters(blacklist_characters="<>", blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)


@st.composite
def canonical_chains(draw):
    steps = draw(
        st.lists(
            st.builds(Step, st.lists(regions(), min_size=1, max_size=3).map(tuple), _words), min_size=1, max_size=5
        )
    )
    return Chain(tuple(steps), draw(_words))


@settings(max_examples=80, deadline=None)
@given(canonical_chains())
def test_render_parse_render_is_identity(chain):
    text = render_chain(chain)
    assert validate_chain(text) == []
    parsed = parse_chain(text)
    assert parsed.complete
    assert render_chain(parsed.chain) == text


def test_canonical_areas_are_checked_like_any_other():
    """The fast check of areas in `render_area`'s form finds exactly what the general one finds
    (the same area with spaces after the commas takes the general path)."""
    import random

    from sif.chain import _CANON_AREA, _check_area

    rng = random.Random(0)
    values = ["0", "1", "0.5", "0.123", "1.000", "0.999", "1.5", "2", "0.100", "0.10", "10.001"]
    for _ in range(400):
        regions = [
            '{{"bbox_2d":[{},{},{},{}],"depth":{}}}'.format(*(rng.choice(values) for _ in range(5)))
            for _ in range(rng.randint(1, 3))
        ]
        body = "[" + ",".join(regions) + "]"
        assert _CANON_AREA.fullmatch(body)
        general = body.replace(",", ", ")
        assert not _CANON_AREA.fullmatch(general)
        assert _check_area(body, 2) == _check_area(general, 2), body
    for odd in ('[{"bbox_2d":[01,0,1,1],"depth":0.5}]', '[{"bbox_2d":[0,0,1,1],"depth":0.5000}]', "[]"):
        assert not _CANON_AREA.fullmatch(odd) and _check_area(odd, 0)


_NUMBERS = st.sampled_from(["0", "0.1", "0.123", "0.5", "0.75", "0.999", "1", "1.0", "1.001", "2"])
_REGIONS = st.builds(
    lambda v, d: f'{{"bbox_2d":[{",".join(v)}],"depth":{d}}}', st.lists(_NUMBERS, min_size=4, max_size=4), _NUMBERS
)
_STEPS = st.tuples(
    st.lists(_REGIONS, min_size=1, max_size=3).map(lambda rs: "[" + ",".join(rs) + "]"),
    st.sampled_from(["a", "a", "x > y", "two\nlines", "", "  ", "a < b"]),
    st.sampled_from(["", "\n", "\n", " \n ", "stray"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEPS, max_size=4), st.sampled_from(["", "\n", "\n", "tail", "<area>"]))
def test_the_one_pass_check_of_canonical_steps_finds_what_the_general_rules_find(steps, tail):
    """`validate_chain` checks a body of canonical steps in one pass; where it does, it must say
    exactly what the general rules say (wrong numbers and empty texts included)."""
    from sif.chain import _check_canonical_steps, _check_steps

    think = "".join(f"{gap}<area>{area}</area>{gap}<text>{text}</text>" for area, text, gap in steps) + tail
    fast = _check_canonical_steps(think)
    if fast is not None:
        assert fast == _check_steps(think)


def test_a_rendered_long_chain_takes_the_one_pass_check():
    from sif.chain import _check_canonical_steps

    chain = Chain(tuple(Step((Region((0.1, 0.2, 0.3, 0.4 + i % 2), 0.5),), f"s{i}") for i in range(1000)), "a")
    think = render_chain(chain).split("<think>")[1].split("</think>")[0]
    fast = _check_canonical_steps(think)
    assert fast is not None and len(fast) == 500 and {p.step for p in fast} == set(range(1, 1000, 2))
    assert validate_chain(render_chain(chain)) == fast
