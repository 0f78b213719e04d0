"""Untrusted text never raises: chain text (from a teacher, a model in training or evaluation, or
an import file) always ends as a chain or a list of problems, and every import record as a sample
or a record error. Property tests feed arbitrary text and JSON to the chain parser and validator,
the reply check, the four rewards, the record reader and each importer's converter; the named
hostile cases (huge numbers, NaN, deep nesting, NUL bytes, bytes that are not UTF-8, megabytes)
are checked one by one, with a time bound."""

from __future__ import annotations

import contextlib
import json
import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from datagen.reply import check_reply
from db.importers import Incoming, import_records, sif50k_converter, tallyqa_converter, viscot_converter
from db.store import Store, analyse_chain
from sif.chain import ParseResult, Problem, parse_chain, validate_chain
from sif.depth import save_gray16
from sif.errors import RecordError
from sif.plan import plan_focus_detailed
from sif.records import read_records
from sif.rewards import (
    InMemoryProgressStore,
    bbox_reward,
    depth_reward,
    format_reward,
    make_answer_reward,
    rule_based_score,
)
from tests.support.datagen import chain_reply
from tests.support.hostile import TOKENS, USABLE, hostile_replies
from tests.support.store import released_record

SIZE = (64, 48)
GT = [[0.4, 0.5, 0.55, 0.7]]
PLAN = plan_focus_detailed(GT, np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)), 3, distractor_prob=1.0)
GOOD = chain_reply([[r.to_json() for r in step] for step in PLAN.steps], answer="red")
CASES = hostile_replies(GOOD, SIZE)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text made of chain tags, JSON pieces, hostile numbers and arbitrary characters (surrogates included).
chain_texts = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(st.characters(), max_size=12)), max_size=40).map(
    "".join
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**63 + 2)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", "0011", "train", "test", "\ud800", "1" * 400, "images/a.jpg"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def depth_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("depth") / "d.png"
    save_gray16(np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)), path)
    return str(path)


def _all_rewards(completions, depth_file: str) -> list[list[float]]:
    n = len(completions)
    answer = make_answer_reward(rule_based_score, InMemoryProgressStore())
    return [
        format_reward(completions),
        bbox_reward(completions, gt_boxes=[GT] * n),
        depth_reward(completions, depth_path=[depth_file] * n, depth_encoding=["gray16_depth"] * n),
        answer(completions, answer=["red"] * n, question=["What colour?"] * n, sample_id=list(range(n))),
    ]


def _parsed_or_problems(text: str) -> None:
    """What every consumer relies on: a chain (possibly empty) with notes, and a problem list."""
    parsed = parse_chain(text)
    assert isinstance(parsed, ParseResult)
    assert all(all(math.isfinite(v) for v in r.bbox) for s in parsed.chain.steps for r in s.regions)
    problems = validate_chain(text)
    assert all(isinstance(p, Problem) for p in problems)
    assert len(parsed.skipped) <= 50  # hostile text gets its notes counted, not listed one by one


# ---------------------------------------------------------------- the named hostile cases


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_hostile_reply_ends_as_a_chain_or_problems_quickly(case, depth_file):
    text = CASES[case]
    start = time.monotonic()
    _parsed_or_problems(text)
    check = check_reply(text, PLAN, "red", size=SIZE)
    rewards = _all_rewards([text, [{"role": "assistant", "content": text}]], depth_file)
    stored = check.chain if check.ok else text  # what generate stores
    analysis = analyse_chain(stored, GT, (depth_file, "gray16_depth"), check.problems)
    elapsed = time.monotonic() - start
    assert elapsed < 20, f"{case}: {elapsed:.1f} s"
    assert all(math.isfinite(v) for row in rewards for v in row)
    assert check.ok == (case in USABLE), (case, check.problems)
    assert bool(analysis.problems) == (not check.ok)


def test_validation_stays_linear_on_many_unclosed_tags():
    """Each unclosed tag used to rescan the rest of the text: 300 KB took minutes."""
    text = "<think>" + "<area>" * 50_000 + "</think><answer>a</answer>"
    start = time.monotonic()
    problems = validate_chain(text)
    assert time.monotonic() - start < 5 and problems


# ---------------------------------------------------------------- properties: chain text


@PROPERTY
@given(chain_texts)
def test_any_text_parses_validates_and_checks_without_raising(text):
    _parsed_or_problems(text)
    check = check_reply(text, PLAN, "red", size=SIZE)
    assert check.ok or check.problems


@PROPERTY
@given(st.lists(st.one_of(chain_texts, json_values), min_size=1, max_size=4))
def test_any_completion_gets_finite_rewards(depth_file, completions):
    for row in _all_rewards(completions, depth_file):
        assert len(row) == len(completions) and all(math.isfinite(v) for v in row)


@PROPERTY
@given(chain_texts, chain_texts)
def test_the_offline_judge_scores_any_answer(answer, prediction):
    assert 0.0 <= rule_based_score("How many?", answer, prediction) <= 1.0


# ---------------------------------------------------------------- properties: import records


def _mutated(base: dict) -> st.SearchStrategy:
    """`base` with some fields replaced by arbitrary JSON, and some removed."""
    keys = sorted(base)
    return st.builds(
        lambda over, drop: {k: v for k, v in {**base, **over}.items() if k not in drop},
        st.dictionaries(st.sampled_from(keys), json_values, max_size=3),
        st.sets(st.sampled_from(keys), max_size=2),
    )


VISCOT = {
    "question": "Is the car over the cat?",
    "answer": "No",
    "image": "a.jpg",
    "width": 64,
    "height": 48,
    "bboxs": [[3.0, 4.0, 30.0, 40.0]],
    "dataset": "vsr",
    "split": "train",
}
LLAVA = {
    "dataset": "vsr",
    "image": ["a.jpg"],
    "conversations": [
        {"from": "human", "value": "<image>\nIs the car over the cat?"},
        {"from": "gpt", "value": "[0.1, 0.2, 0.5, 0.6]"},
        {"from": "human", "value": "<image>"},
        {"from": "gpt", "value": "No"},
    ],
}
TALLY = {"image": "a.jpg", "question": "How many cars?", "answer": 2, "boxes": [[1, 2, 10, 20], [20, 5, 40, 30]]}


@pytest.fixture(scope="module")
def import_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("imports")
    released = released_record(root, "a", size=SIZE)
    from PIL import Image

    Image.new("RGB", SIZE).save(root / "a.jpg")
    with Store.open(root / "sif.db") as store:
        yield store, root, released


@pytest.mark.parametrize("kind", ["sif50k", "viscot", "llava", "tallyqa"])
def test_any_record_converts_or_is_a_record_error(kind, import_store):
    store, root, released = import_store
    base, convert = {
        "sif50k": (released, sif50k_converter(root)),
        "viscot": (VISCOT, viscot_converter(root)),
        "llava": (LLAVA, viscot_converter(root)),
        "tallyqa": (TALLY, tallyqa_converter(root)),
    }[kind]

    @PROPERTY
    @given(st.lists(_mutated(base) | json_values, min_size=1, max_size=6))
    def check(records):
        for record in records:
            if isinstance(record, dict):
                with contextlib.suppress(RecordError):  # the one error a converter may raise
                    assert isinstance(convert(record), Incoming)
        report = import_records(store, records, convert, progress=False, allow_missing=True)
        assert report.records == len(records)
        assert report.added + report.existing + len(report.errors) == len(records), report.errors

    check()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | chain_texts.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_file_reads_as_records_or_record_errors(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("files", numbered=True) / "records.json"
    for prefix in (b"", b"\xef\xbb\xbf[", b"["):
        path.write_bytes(prefix + data)
        for where, record in read_records(path):
            assert where.startswith(str(path))
            assert isinstance(record, (dict, RecordError))
            if isinstance(record, dict):
                json.dumps(record)  # every string in it is text: storable


def test_sif_validate_reports_hostile_files_without_a_traceback(tmp_path):
    runner = CliRunner()
    for name, text in CASES.items():
        chain_file = tmp_path / f"{name}.txt"
        chain_file.write_bytes(text.encode("utf-8", "surrogatepass") + b"\xff")
        result = runner.invoke(app, ["validate", str(chain_file)])
        assert result.exit_code in (0, 1) and isinstance(result.exception, (SystemExit, type(None))), result.output
        assert "valid" in result.output
    records = [{"id": name, "messages": [{"role": "assistant", "content": text}]} for name, text in CASES.items()]
    listing = tmp_path / "records.json"
    listing.write_bytes(json.dumps(records).encode() + b"\n" + b"[" * 200_000)
    result = runner.invoke(app, ["validate", str(listing), "--show", "100"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"of {len(CASES) + 1}" in result.output  # every record, and the junk after the list
