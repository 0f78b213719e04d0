"""`sif assign` on a real store: disjoint queues of pending samples of a filter, gold mixed in,
bad filters refused with the option named and nothing assigned."""

from __future__ import annotations

import pytest

from db.store import Store
from tests.support.team import copy_store, dump, sif, synth_store


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return synth_store(tmp_path_factory.mktemp("assign"))


@pytest.fixture
def db(template, tmp_path):
    return copy_store(template, tmp_path)


def test_queues_are_disjoint_pending_samples_of_the_filter(db):
    assert sif("review", "accept", "--ids", "1,2", "--reviewer", "ann", db=db).exit_code == 0
    result = sif("assign", "--curator", "ann", "--n", "4", "--dataset", "synthetic", db=db)
    assert result.exit_code == 0, result.output
    assert "assigned 4 sample(s) to ann; 4 in their queue" in result.output
    result = sif("assign", "--curator", "bob", "--n", "100", db=db)
    assert result.exit_code == 0, result.output
    assert "assigned 6 sample(s) to bob (only 6 were left)" in result.output
    with Store.open(db) as store:
        ann, bob = store.queue("ann"), store.queue("bob")
    assert ann == [3, 4, 5, 6] and bob == [7, 8, 9, 10, 11, 12]
    empty = sif("assign", "--curator", "cid", "--n", "1", db=db)
    assert empty.exit_code == 1 and "no pending sample of the filters is left" in empty.output


def test_gold_samples_go_into_queues_unannounced(db):
    assert sif("qa", "gold", "--ids", "12", "--status", "rejected", db=db).exit_code == 0
    assert sif("assign", "--curator", "ann", "--n", "5", db=db).exit_code == 0
    with Store.open(db) as store:
        queue = store.queue("ann")
        assert len(queue) == 6 and 12 in queue and store.blind_review(12, "ann")
        assert 12 not in [r.id for r in store.query(limit=100) if store.blind_review(r.id, "bob")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--status", "accepted"], "status: only pending samples are assigned"),
        (["--hiou-min", "0.8", "--hiou-max", "0.2"], "hiou_min: 0.8 is above hiou_max 0.2"),
        (["--split", "nowhere"], "split: 'nowhere'"),
        (["--n", "0"], "--n"),
    ],
)
def test_bad_filters_are_refused_and_nothing_is_assigned(db, args, message):
    before = dump(db)
    extra = [] if "--n" in args else ["--n", "3"]
    result = sif("assign", "--curator", "ann", *extra, *args, db=db)
    assert result.exit_code != 0
    assert message in result.output
    assert dump(db) == before
