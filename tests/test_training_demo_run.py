"""`sif train demo-run` end to end on a small budget, and where the demo model lives."""

from __future__ import annotations

import json

import pytest

from pipelines.demo_run import DemoSettings, default_demo_dir, demo_run


def test_demo_model_location_follows_sif_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SIF_HOME", str(tmp_path))
    assert default_demo_dir() == tmp_path / "tiny-demo"


@pytest.mark.slow
def test_demo_run_small(tmp_path):
    from transformers import AutoModelForImageTextToText

    from db.store import Store

    settings = DemoSettings(
        samples=80,
        eval_samples=4,
        max_new_tokens=48,
        rl_samples=16,
        synth={"max_objects": 3, "distractor_prob": 0.0, "split_ratio": 0.1},
    )
    settings.grpo.update(max_steps=2, save_steps=1, max_completion_length=48)
    report = demo_run(tmp_path / "demo", settings, progress=False)
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert saved["sft"]["n"] == saved["grpo"]["n"] == 4
    for key in ("format_valid", "accuracy", "final_hiou", "depth_consistent", "total_reward"):
        assert 0.0 <= saved["grpo"][key] <= 4.0
    assert "mean total reward" in (tmp_path / "demo" / "report.md").read_text()
    AutoModelForImageTextToText.from_pretrained(report["model"])
    with Store.open(report["db"]) as store:
        runs = {r["name"]: r for r in store.list_runs("training")}
        assert runs["demo-sft"]["status"] == runs["demo-grpo"]["status"] == "done"
        n = store.conn.execute(
            "SELECT COUNT(*) FROM chain_revisions WHERE origin = 'rollout' AND run_id = ?", [runs["demo-grpo"]["id"]]
        ).fetchone()[0]
    assert n >= 1
