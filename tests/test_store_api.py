"""The Store API on real SQLite files: migrations, revisions, reviews, queries, paths, concurrency."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading

import pytest
from sqlite_utils import Database

from db.schema import migrate
from db.store import ConflictError, Store, StoreError
from sif.chain import Chain, Region, Step

CHAIN_A = (
    '<think>\n<area>[{"bbox_2d":[0,0,1,1],"depth":0.5}]</area>\n<text>the whole scene</text>\n'
    '<area>[{"bbox_2d":[0.1,0.2,0.4,0.6],"depth":0.3}]</area>\n<text>the red mug</text>\n</think>\n<answer>\nred\n</answer>'
)
CHAIN_B = Chain(
    (
        Step((Region((0.0, 0.0, 1.0, 1.0), 0.5),), "look everywhere"),
        Step((Region((0.5, 0.5, 0.9, 0.9), 0.7),), "a blue cup"),
    ),
    "blue",
)


def add(store: Store, i: int, **kw) -> int:
    args = dict(
        dataset="toy",
        source_id=f"s{i}",
        image=f"img/{i}.png",
        question=f"What colour is mug {i}?",
        answer="red",
        gt_boxes=[[0.1, 0.2, 0.4, 0.6]],
        width=64,
        height=48,
    )
    args.update(kw)
    return store.add_sample(**args)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "sif.db")
    yield s
    s.close()


def test_open_creates_wal_store_with_foreign_keys_and_data_root(tmp_path):
    store = Store.open(tmp_path / "new.db")
    assert store.data_root == tmp_path.resolve()
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute(
            "INSERT INTO reviews (sample_id, status, reviewer, note, updated_at, version)"
            " VALUES (999, 'accepted', 'x', '', 'now', 1)"
        )
    store.close()
    # Reopening keeps the recorded root; naming another one is refused.
    assert Store.open(tmp_path / "new.db").data_root == tmp_path.resolve()
    with pytest.raises(StoreError, match="records data root"):
        Store.open(tmp_path / "new.db", data_root=tmp_path / "elsewhere")


def test_migration_from_previous_schema_keeps_and_indexes_old_rows(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    migrate(db, stop_before="m002_sample_index_fts")
    assert "sample_index" not in db.table_names()
    db.execute(
        "INSERT INTO samples (dataset, source_id, image, width, height, question, answer, gt_boxes,"
        " content_hash, created_at) VALUES ('old', 'o1', 'a.png', 10, 10, 'Where is the zebra?', 'left',"
        " '[[0.1,0.1,0.5,0.5]]', 'h1', '2025-01-01')"
    )
    for rev, origin, text in [
        (1, "imported", "zebra chain one"),
        (2, "edited", "zebra chain two"),
        (3, "prediction", "model guess"),
    ]:
        db.execute(
            "INSERT INTO chain_revisions (sample_id, rev, origin, author, created_at, chain, text, valid,"
            " n_steps) VALUES (1, ?, ?, 'a', '2025-01-02', '{\"steps\": [], \"answer\": null}', ?, 0, 0)",
            [rev, origin, text],
        )
    db.execute("INSERT INTO reviews VALUES (1, 'needs_fix', 'ann', 'box off', '2025-01-03', 4)")
    db.conn.commit()
    db.close()

    store = Store.open(path)
    [row] = store.query()
    assert (row.dataset, row.status, row.origin, row.rev) == ("old", "needs_fix", "edited", 2)
    assert store.current_chain(1).text == "zebra chain two"
    assert store.count(text="zebra two") == 1 and store.count(text="guess") == 0
    assert store.get_review(1).version == 4
    store.close()


def test_add_sample_is_idempotent_and_checks_fields(store):
    a = add(store, 1)
    assert add(store, 1) == a
    assert add(store, 2) != a
    assert store.count() == 2
    s = store.get_sample(a)
    assert (s.image, s.gt_boxes, s.width, s.missing) == ("img/1.png", [[0.1, 0.2, 0.4, 0.6]], 64, False)
    with pytest.raises(StoreError, match=r"gt_boxes\[0\]"):
        add(store, 3, gt_boxes=[[0.5, 0.2, 0.4, 0.6]])
    with pytest.raises(StoreError, match="width"):
        add(store, 3, width=0)
    with pytest.raises(StoreError, match="depth_encoding"):
        add(store, 3, depth="d.png", depth_encoding="viridis")


def test_path_escaping_the_data_root_is_refused(store, tmp_path):
    with pytest.raises(StoreError, match="image: .*outside the data root"):
        add(store, 1, image="../../etc/passwd")
    with pytest.raises(StoreError, match="outside the data root"):
        store.resolve("img/../../x.png")
    with pytest.raises(StoreError, match="outside the data root"):
        store.relative("/etc/hosts")
    assert store.relative(tmp_path / "img" / "a.png") == "img/a.png"
    assert store.resolve("img/a.png") == tmp_path.resolve() / "img" / "a.png"
    assert store.count() == 0


def test_revisions_current_chain_history_and_revert(store):
    sid = add(store, 1)
    r1 = store.add_revision(sid, CHAIN_A, origin="imported", author="import")
    assert r1.valid and r1.rev == 1 and r1.raw_text == CHAIN_A
    assert r1.text.endswith("<answer>red</answer>") and r1.final_hiou == pytest.approx(1.0)
    r2 = store.add_revision(sid, CHAIN_B, origin="edited", author="ann")
    assert r2.parent == 1 and r2.raw_text is None and r2.final_hiou == 0.0
    run = store.create_run("evaluation", {"model": "tiny"})
    store.add_revision(
        sid, "<think><area>oops</area></think><answer>x</answer>", origin="prediction", author="model", run_id=run
    )
    assert store.current_chain(sid).rev == 2  # predictions never replace the curated chain
    assert [r.rev for r in store.run_revisions(sid, run)] == [3]
    assert not store.run_revisions(sid, run)[0].valid
    r4 = store.revert(sid, 1, author="ann")
    assert (r4.rev, r4.origin, r4.parent) == (4, "edited", 1)
    assert store.current_chain(sid).text == r1.text
    assert store.current_chain(sid).chain == r1.chain
    assert [r.origin for r in store.history(sid)] == ["imported", "edited", "prediction", "edited"]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE chain_revisions SET text = 'x' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM chain_revisions WHERE id = 1")
    assert len(store.history(sid)) == 4
    with pytest.raises(StoreError, match="run_id"):
        store.add_revision(sid, CHAIN_A, origin="rollout", author="m")


def test_lenient_parse_is_recorded_as_invalid(store):
    sid = add(store, 1)
    rev = store.add_revision(
        sid, '<think><area>[{"bbox_2d":[0,0,1,1],"depth":0.5}]</area><text>a', origin="generated", author="teacher"
    )
    assert not rev.valid
    assert any("answer" in p for p in rev.problems)
    assert store.count(valid=False) == 1 and store.count(valid=True) == 0


def test_stale_review_is_refused_and_overwrites_nothing(store):
    sid = add(store, 1)
    assert store.get_review(sid).version == 0
    store.set_review(sid, "accepted", reviewer="ann", note="fine", expected_version=0)
    with pytest.raises(ConflictError, match="version 0.*version 1") as err:
        store.set_review(sid, "rejected", reviewer="bob", expected_version=0)
    assert err.value.current.reviewer == "ann"
    review = store.get_review(sid)
    assert (review.status, review.reviewer, review.note, review.version) == ("accepted", "ann", "fine", 1)
    assert store.set_review(sid, "needs_fix", reviewer="bob", expected_version=1).version == 2
    assert store.count(status="needs_fix") == 1


def test_query_filters_sorts_and_pages(store):
    run = store.create_run("generation", {"teacher": "x"})
    for i in range(6):
        sid = add(store, i, dataset="a" if i % 2 else "b")
        if i < 4:
            store.add_revision(sid, CHAIN_A if i % 2 else CHAIN_B, origin="generated", author="t", run_id=run)
    store.set_review(2, "accepted", reviewer="ann", expected_version=0)
    assert store.datasets() == ["a", "b"]
    assert [r.id for r in store.query(dataset="a")] == [2, 4, 6]
    assert [r.id for r in store.query(origin="none")] == [5, 6]
    assert [r.id for r in store.query(sort="final_hiou", descending=True)][:2] == [4, 2]  # ties: id, same direction
    assert [r.id for r in store.query(sort="final_hiou")][-2:] == [5, 6]  # NULLs last
    assert [r.id for r in store.query(sort="newest", limit=2)] == [6, 5]
    assert [r.id for r in store.query(limit=2, offset=2)] == [3, 4]
    assert store.count(run_id=run) == 4
    assert store.count(text="mug") == 6 and store.count(text="blue cup") == 2
    assert store.count(status="accepted", dataset="a") == 1
    with pytest.raises(StoreError, match="sort"):
        store.query(sort="bogus")


def test_runs_record_config_status_and_merged_metrics(store):
    run = store.create_run("training", {"lr": 1e-5}, name="sft-1")
    assert run.startswith("train-")
    store.update_run(run, status="running", metrics={"loss": 1.0})
    store.update_run(run, status="done", metrics={"acc": 0.5})
    r = store.get_run(run)
    assert r["metrics"] == {"loss": 1.0, "acc": 0.5} and r["finished_at"] and r["config"] == {"lr": 1e-5}
    assert [x["id"] for x in store.list_runs("training")] == [run] and store.list_runs("evaluation") == []


def test_one_connection_per_thread(store):
    add(store, 1)
    seen = []

    def work():
        seen.append((id(store.conn), store.count()))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({c for c, _ in seen} | {id(store.conn)}) == 4 and all(n == 1 for _, n in seen)


N_CONTESTED = 30


def _review_everything(path, who: str, barrier, results) -> None:
    """Save a review of every sample, re-reading and retrying on conflicts; report the saves."""
    store = Store.open(path)
    barrier.wait()
    saved = 0
    for sid in range(1, N_CONTESTED + 1):
        while True:
            try:
                store.set_review(
                    sid,
                    "accepted" if who == "A" else "rejected",
                    reviewer=who,
                    expected_version=store.get_review(sid).version,
                )
                saved += 1
                break
            except ConflictError:
                continue
    store.close()
    results.put((who, saved))


def test_two_processes_saving_reviews_lose_nothing(tmp_path):
    path = tmp_path / "shared.db"
    store = Store.open(path)
    for i in range(N_CONTESTED):
        add(store, i)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_review_everything, args=(path, who, barrier, results)) for who in "AB"]
    for p in procs:
        p.start()
    saved = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert saved == {"A": N_CONTESTED, "B": N_CONTESTED}
    # Every save is a version: two per sample, none overwritten unseen.
    versions = store.conn.execute("SELECT version, COUNT(*) FROM reviews GROUP BY version").fetchall()
    assert [tuple(v) for v in versions] == [(2, N_CONTESTED)]
    log = store.conn.execute(
        "SELECT sample_id, GROUP_CONCAT(reviewer, '') FROM review_log GROUP BY sample_id"
    ).fetchall()
    assert len(log) == N_CONTESTED and all(sorted(r[1]) == ["A", "B"] for r in log)
    store.close()


def test_samples_differing_only_in_their_question_stay_apart(store):
    """The content hash covers the question: two questions on one image are two samples."""
    a = add(store, 1, source_id="same", image="img/same.png", question="What colour is the mug?")
    b = add(store, 1, source_id="same", image="img/same.png", question="How many mugs are there?")
    assert a != b and store.count() == 2
    assert (
        store.add_sample(
            dataset="toy",
            source_id="same",
            image="img/same.png",
            question="What colour is the mug?",
            answer="red",
            gt_boxes=[[0.1, 0.2, 0.4, 0.6]],
            width=64,
            height=48,
        )
        == a
    )
