"""GRPO-SIF on TRL's GRPOTrainer with the tiny model: columns, rollouts in the store, resume."""

from __future__ import annotations

import json

from db.store import Store
from tests.support.training import grpo_settings
from training.grpo import build_grpo_trainer, run_grpo
from training.modeling import RunRecord
from training.progress import PROGRESS_FILE, SqliteProgressStore

REWARD_COLUMNS = ("gt_boxes", "depth_path", "depth_encoding", "answer", "question", "sample_id")


def test_a_grpo_step_with_two_images_feeds_every_reward_its_columns(tiny_model, synth_data, tmp_path):
    settings = grpo_settings(tiny_model, synth_data, tmp_path / "grpo")
    record = RunRecord(settings.db, "grpo", {}, "test")
    setup = build_grpo_trainer(settings, record)
    trainer = setup.trainer
    seen: dict[str, dict] = {}

    def spy(name, func):
        def wrapped(**kwargs):
            seen[name] = kwargs
            return func(**kwargs)

        return wrapped

    trainer.reward_funcs = [spy(n, f) for n, f in zip(trainer.reward_func_names, trainer.reward_funcs)]
    trainer.train()
    assert set(seen) == {"format_reward", "answer_reward", "bbox_reward", "depth_reward"}
    for name, kwargs in seen.items():
        n = len(kwargs["completions"])
        assert n == settings.per_device_train_batch_size
        for column in REWARD_COLUMNS:
            assert len(kwargs[column]) == n, (name, column)
        assert all(len(images) == 2 for images in kwargs["images"]), name  # RGB then depth
        assert kwargs["trainer_state"] is not None
    # The reward measures against the exact map; the model sees the spectral_r picture.
    assert seen["depth_reward"]["depth_path"][0].endswith("_depth.png")
    assert seen["depth_reward"]["depth_encoding"][0] == "gray16_depth"
    with Store.open(settings.db) as store:
        run = store.get_run(record.run_id)
        rollouts = store.conn.execute(
            "SELECT origin, author, note FROM chain_revisions WHERE run_id = ?", [record.run_id]
        ).fetchall()
    assert run["status"] == "running"
    assert 1 <= len(rollouts) <= settings.rollouts_per_step
    assert all(r["origin"] == "rollout" and "GRPO step" in r["note"] for r in rollouts)
    assert setup.progress.snapshot()  # the answer reward recorded its group means


def test_progress_state_survives_a_resume(tiny_model, synth_data, tmp_path):
    out = tmp_path / "grpo"
    run_grpo(grpo_settings(tiny_model, synth_data, out, max_steps=2, save_steps=1))
    path = out / PROGRESS_FILE
    first = SqliteProgressStore(path)
    steps = sorted({r[0] for r in first._conn.execute("SELECT step FROM answer_progress")})
    assert steps == [0, 1]
    before = first.snapshot()
    first.close()
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert "checkpoint-1" in checkpoints

    # Resume from the last checkpoint (step 2) for one more step: earlier state is kept and used.
    run_grpo(grpo_settings(tiny_model, synth_data, out, max_steps=3, save_steps=1, resume=True))
    after = SqliteProgressStore(path)
    steps = sorted({r[0] for r in after._conn.execute("SELECT step FROM answer_progress")})
    assert steps == [0, 1, 2]
    kept = {sid: v for sid, v in after.snapshot().items() if v["step"] < 2}
    assert all(before[sid] == v for sid, v in kept.items())
    with Store.open(synth_data.db) as store:
        runs = [r for r in store.list_runs("training") if r["config"].get("output_dir") == str(out)]
    assert len(runs) == 2 and all(r["status"] == "done" for r in runs)
    assert json.dumps(runs[0]["metrics"]["answer_progress"])  # mirrored into the store


def test_progress_store_is_shared_across_processes(tmp_path):
    """Two processes each hold part of a group; both read the same previous mean."""
    path = tmp_path / PROGRESS_FILE
    a, b = SqliteProgressStore(path, 0), SqliteProgressStore(path, 1)
    a.step = b.step = 3
    a.record("s1", [1.0, 1.0])
    b.record("s1", [0.0, 0.0])
    a.step = b.step = 5
    assert a.previous_mean("s1") == b.previous_mean("s1") == 0.5
    a.record("s1", [1.0])
    assert b.previous_mean("s1") == 0.5  # same step is not "previous"
    b.step = 6
    assert b.previous_mean("s1") == 1.0
    assert a.drop_from(5) == 1
    assert b.previous_mean("s1") == 0.5
    assert a.previous_mean("unseen") is None
