"""`sif train demo-run` end to end on a small budget, and where the demo model lives."""

from __future__ import annotations

import json

import pytest

from pipelines.demo_run import DemoSettings, default_demo_dir, demo_run, demo_settings, mean_se


def test_demo_model_location_follows_sif_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SIF_HOME", str(tmp_path))
    assert default_demo_dir() == tmp_path / "tiny-demo"


def test_settings_overrides_merge_into_the_defaults():
    s = demo_settings(["sft.max_steps=7", "grpo.learning_rate=0.0001"], seeds=3)
    assert s.seeds == 3 and s.sft["max_steps"] == 7 and s.grpo["learning_rate"] == 0.0001
    assert s.sft["learning_rate"] == DemoSettings().sft["learning_rate"]  # the rest of the dict is kept
    with pytest.raises(ValueError, match="unknown setting"):
        demo_settings(["epochs=3"])


def test_mean_and_standard_error():
    assert mean_se([1.0, 2.0, 3.0]) == {"mean": 2.0, "se": pytest.approx(1 / 3**0.5), "values": [1.0, 2.0, 3.0]}
    assert mean_se([0.5])["se"] is None


@pytest.mark.slow
def test_demo_run_small(tmp_path):
    from transformers import AutoModelForImageTextToText

    from db.store import Store
    from sif.chain import parse_chain
    from sif.geometry import hiou

    settings = DemoSettings(
        samples=80,
        seeds=2,
        eval_samples=4,
        max_new_tokens=48,
        rl_samples=16,
        synth={"max_objects": 3, "distractor_prob": 0.0, "split_ratio": 0.1},
    )
    settings.sft.update(max_steps=4, logging_steps=1)
    settings.grpo.update(
        max_steps=2, logging_steps=1, max_completion_length=48, num_generations=2, per_device_train_batch_size=4
    )
    report = demo_run(tmp_path / "demo", settings, progress=False)
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert saved["sft"]["n"] == saved["grpo"]["n"] == 4
    for key in ("format_valid", "accuracy", "final_hiou", "depth_consistent", "total_reward"):
        assert 0.0 <= saved["grpo"][key] <= 4.0
    md = (tmp_path / "demo" / "report.md").read_text()
    assert "mean total reward" in md and "chance" in md and "without the depth input" in md
    AutoModelForImageTextToText.from_pretrained(report["model"])

    # Two seeds: each figure is the mean of the seeds' figures, with its standard error.
    first, second = saved["seeds"]
    for variant in ("sft", "grpo", "grpo_no_bbox", "grpo_no_depth"):
        stat = saved["stats"][variant]["final_hiou"]
        assert stat["values"] == [first["runs"][variant]["final_hiou"], second["runs"][variant]["final_hiou"]]
        assert stat["mean"] == pytest.approx(sum(stat["values"]) / 2) and stat["se"] is not None
    gain = saved["gains"]["total_reward"]["values"][0]
    assert gain == pytest.approx(first["runs"]["grpo"]["total_reward"] - first["runs"]["sft"]["total_reward"])
    baselines = first["baselines"]
    assert 0.0 < baselines["accuracy"]["overall"]["chance"] < 1.0
    assert all(0.0 <= baselines["final_hiou"][k] < 1.0 for k in ("whole_image", "centred", "mean_box"))

    with Store.open(first["db"]) as store:
        runs = {r["name"]: r for r in store.list_runs("training")}
        assert {"demo-sft", "demo-grpo", "demo-grpo-no-bbox", "demo-grpo-no-depth"} <= set(runs)
        assert all(r["status"] == "done" for r in runs.values())
        n = store.conn.execute(
            "SELECT COUNT(*) FROM chain_revisions WHERE origin = 'rollout' AND run_id = ?", [runs["demo-grpo"]["id"]]
        ).fetchone()[0]
        assert n >= 1
        assert [e["step"] for e in runs["demo-sft"]["metrics"]["log_history"] if "loss" in e] == [1, 2, 3, 4]
        assert runs["demo-grpo-no-bbox"]["config"]["rewards"]["weights"]["bbox"] == 0.0
        assert runs["demo-grpo-no-depth"]["config"]["depth_input"] is False

        # The report's final-step HIoU is recomputed here from the predictions the store holds.
        for variant in ("sft", "grpo"):
            texts = store.run_predictions(first["runs"][variant]["eval_run"])
            assert len(texts) == 4
            values = [
                hiou(parse_chain(text).chain.final_boxes, store.get_sample(sid).gt_boxes)
                if parse_chain(text).chain.steps
                else 0.0
                for sid, text in texts.items()
            ]
            assert first["runs"][variant]["final_hiou"] == pytest.approx(sum(values) / len(values))
