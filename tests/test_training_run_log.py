"""Training runs keep their log history in the store (the workbench's Runs view draws it)."""

from __future__ import annotations

from db.store import Store
from tests.support.training import grpo_settings, sft_settings
from training.grpo import run_grpo
from training.sft import run_sft


def _run(db, out) -> dict:
    with Store.open(db) as store:
        return next(r for r in store.list_runs("training") if r["config"].get("output_dir") == str(out))


def test_sft_and_grpo_runs_record_their_log_history(tiny_model, synth_data, tmp_path):
    out = tmp_path / "sft"
    run_sft(sft_settings(tiny_model, synth_data, out, db=str(synth_data.db), max_steps=2))
    history = _run(synth_data.db, out)["metrics"]["log_history"]
    losses = [e for e in history if "loss" in e]
    assert [e["step"] for e in losses] == [1, 2] and all(isinstance(e["loss"], float) for e in losses)

    out = tmp_path / "grpo"
    run_grpo(grpo_settings(tiny_model, synth_data, out, max_steps=2, save_steps=10))
    history = _run(synth_data.db, out)["metrics"]["log_history"]
    steps = [e for e in history if "rewards/format_reward/mean" in e]
    assert [e["step"] for e in steps] == [1, 2]
    for key in ("rewards/answer_reward/mean", "rewards/bbox_reward/mean", "rewards/depth_reward/mean", "kl", "loss"):
        assert all(isinstance(e[key], float) for e in steps), key
