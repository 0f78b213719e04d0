"""`sif qa sample|gold|report` on a real store: second reviews go to another curator, blind and
apart from the sample's review; the report's κ and gold accuracy match values computed here."""

from __future__ import annotations

import json

import pytest

from db.store import Store
from tests.support.team import copy_store, dump, sif, synth_store


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return synth_store(tmp_path_factory.mktemp("qa"))


@pytest.fixture
def db(template, tmp_path):
    return copy_store(template, tmp_path)


def test_second_reviews_and_the_report(db):
    assert sif("review", "accept", "--ids", "1,2,3,4", "--reviewer", "ann", db=db).exit_code == 0
    assert sif("review", "accept", "--ids", "5,6,7,8", "--reviewer", "bob", db=db).exit_code == 0
    result = sif("qa", "sample", "--fraction", "1", "--seed", "1", "--reviewers", "ann,bob", db=db)
    assert result.exit_code == 0, result.output
    assert "8 sample(s) sent for second review: ann 4, bob 4" in result.output
    # bob rejects 2 of ann's 4; ann accepts all of bob's
    with Store.open(db) as store:
        assert sorted(store.queue("bob")) == [1, 2, 3, 4] and sorted(store.queue("ann")) == [5, 6, 7, 8]
        for sid in (1, 2, 3, 4):
            store.second_review(sid, "bob", "rejected" if sid <= 2 else "accepted")
        for sid in (5, 6, 7, 8):
            store.second_review(sid, "ann", "accepted")
        assert {store.get_review(s).status for s in range(1, 9)} == {"accepted"}
    assert sif("qa", "gold", "--ids", "9,10", "--status", "rejected", db=db).exit_code == 0
    assert sif("review", "reject", "--ids", "9", "--reviewer", "ann", db=db).exit_code == 0
    assert sif("review", "accept", "--ids", "10", "--reviewer", "ann", db=db).exit_code == 0
    result = sif("qa", "report", "--json", db=db)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # Every pair (first, second): ann is in all 8, bob in all 8. First raters always said
    # accepted, seconds: 6 accepted, 2 rejected → p_o = 6/8, p_e = 1·6/8 → κ = 0.
    assert report["ann"]["pairs"] == report["bob"]["pairs"] == 8
    assert report["ann"]["kappa"] == pytest.approx(0.0)
    assert report["ann"]["gold_n"] == 2 and report["ann"]["gold_accuracy"] == pytest.approx(0.5)
    assert report["ann"]["done"] == 4 + 2 + 4  # decisions that stand, gold ones included, + second reviews
    assert report["bob"]["done"] == 4 + 4
    table = sif("qa", "report", db=db)
    assert table.exit_code == 0 and "ann" in table.output and "κ" in table.output


def test_kappa_over_accepted_and_rejected_samples_matches_the_hand_computed_value(db):
    for ids, status, who in (("1,2,3,4", "accept", "ann"), ("5,6", "reject", "ann"), ("7,8", "accept", "bob")):
        assert sif("review", status, "--ids", ids, "--reviewer", who, db=db).exit_code == 0
    assert sif("review", "reject", "--ids", "9,10", "--reviewer", "bob", db=db).exit_code == 0
    args = ["qa", "sample", "--fraction", "1", "--reviewers", "ann,bob", "--status", "accepted", "--status", "rejected"]
    result = sif(*args, db=db)
    assert result.exit_code == 0 and "10 sample(s) sent for second review: ann 4, bob 6" in result.output
    second = {1: "a", 2: "a", 3: "r", 4: "a", 5: "r", 6: "a", 7: "a", 8: "r", 9: "r", 10: "r"}
    with Store.open(db) as store:
        for sid, label in second.items():
            store.second_review(sid, "bob" if sid <= 6 else "ann", {"a": "accepted", "r": "rejected"}[label])
    first = {1: "a", 2: "a", 3: "a", 4: "a", 5: "r", 6: "r", 7: "a", 8: "a", 9: "r", 10: "r"}
    # By hand: 7 of 10 pairs agree (1, 2, 4, 5, 7, 9, 10): p_o = 0.7. First raters: 6 a, 4 r;
    # second: 5 a, 5 r → p_e = 0.6·0.5 + 0.4·0.5 = 0.5. κ = (0.7 − 0.5) / (1 − 0.5) = 0.4.
    assert sum(first[k] == second[k] for k in first) == 7
    report = json.loads(sif("qa", "report", "--json", db=db).output)
    assert report["ann"]["pairs"] == report["bob"]["pairs"] == 10
    assert report["ann"]["kappa"] == pytest.approx(0.4) and report["bob"]["kappa"] == pytest.approx(0.4)


def test_a_sample_only_its_first_reviewer_could_check_is_left_out(db):
    assert sif("review", "accept", "--ids", "1", "--reviewer", "ann", db=db).exit_code == 0
    before = dump(db)
    result = sif("qa", "sample", "--fraction", "1", "--reviewers", "ann", db=db)
    assert result.exit_code == 1 and "no accepted sample could be given to another curator" in result.output
    assert dump(db) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "--fraction", "2"], "--fraction"),
        (["sample", "--fraction", "0"], "fraction: 0.0 is not in (0, 1]"),
        (["gold", "--ids", "1", "--status", "fine"], "status: 'fine'"),
        (["gold", "--ids", "404"], "no sample with id 404"),
    ],
)
def test_bad_qa_options_change_nothing(db, args, message):
    assert sif("review", "accept", "--ids", "1", "--reviewer", "ann", db=db).exit_code == 0
    before = dump(db)
    result = sif("qa", *args, db=db)
    assert result.exit_code != 0 and message in result.output
    assert dump(db) == before
