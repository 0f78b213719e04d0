"""`sif train demo-run` end to end on a small budget, and where the demo model lives."""

from __future__ import annotations

import json

import pytest

from pipelines.demo_run import DemoSettings, default_demo_dir, demo_run, demo_settings, mean_se, summarize


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


def test_cli_refuses_unknown_settings_before_running_anything(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    for bad in (["--set", "epochs=3"], ["--set", "ablations=[grpo_no_answer]"]):
        result = CliRunner().invoke(app, ["train", "demo-run", "--out", str(tmp_path / "demo"), "--seeds", "2", *bad])
        assert result.exit_code == 1 and "error:" in result.output, result.output
    assert not (tmp_path / "demo").exists()


def _seed(sft_hiou: float, grpo_hiou: float, chance: float = 0.25) -> dict:
    figures = {"format_valid": 1.0, "accuracy": 0.6, "depth_consistent": 0.5, "total_reward": 2.0, "n": 10}
    return {
        "runs": {
            "sft": {**figures, "final_hiou": sft_hiou},
            "grpo": {**figures, "final_hiou": grpo_hiou, "total_reward": 2.0 + grpo_hiou - sft_hiou},
        },
        "baselines": {
            "accuracy": {"overall": {"chance": chance}},
            "final_hiou": {"whole_image": 0.03, "centred": 0.01, "mean_box": 0.03, "kind_mean_box": 0.05},
        },
    }


def test_grpo_gain_is_paired_by_seed_and_judged_against_two_standard_errors():
    # GRPO beats SFT by 0.10, 0.12, 0.14 on the three seeds, though the seeds' SFT figures differ widely.
    seeds = [_seed(0.1, 0.2), _seed(0.4, 0.52), _seed(0.25, 0.39)]
    out = summarize(seeds, ["sft", "grpo"])
    gain = out["gains"]["final_hiou"]
    assert gain["mean"] == pytest.approx(0.12) and gain["se"] == pytest.approx(0.02 / 3**0.5)
    assert out["targets"]["grpo_final_hiou_gain_over_2se"] and out["targets"]["grpo_total_reward_gain_over_2se"]
    assert out["stats"]["sft"]["final_hiou"]["se"] == pytest.approx(((0.15**2 + 0.15**2) / 2) ** 0.5 / 3**0.5)
    assert not out["targets"]["sft_final_hiou_0.3"]  # mean SFT HIoU 0.25
    assert out["targets"]["sft_accuracy_2x_chance"] and out["targets"]["sft_format_valid_every_seed"]
    # a gain within two standard errors is not a gain; accuracy 0.6 is not twice a chance of 0.35
    noisy = summarize([_seed(0.1, 0.3, 0.35), _seed(0.3, 0.2, 0.35), _seed(0.2, 0.25, 0.35)], ["sft", "grpo"])
    assert not noisy["targets"]["grpo_final_hiou_gain_over_2se"] and not noisy["targets"]["sft_accuracy_2x_chance"]
    # one seed has no standard error, so it cannot meet a target stated in standard errors
    assert not summarize([_seed(0.1, 0.5)], ["sft", "grpo"])["targets"]["grpo_final_hiou_gain_over_2se"]


@pytest.mark.slow
def test_demo_run_small(tmp_path):
    from transformers import AutoModelForImageTextToText

    from db.store import Store
    from evaluation.model_eval import score_stored, synth_records
    from sif.chain import parse_chain, validate_chain
    from sif.geometry import hiou
    from sif.rewards import rule_based_score
    from workbench import runs_view

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

        # The report's figures are recomputed here from the predictions the store holds.
        for variant in ("sft", "grpo", "grpo_no_bbox", "grpo_no_depth"):
            figures = first["runs"][variant]
            texts = store.run_predictions(figures["eval_run"])
            assert len(texts) == figures["n"] == 4
            chains = {sid: parse_chain(text).chain for sid, text in texts.items()}
            samples = {sid: store.get_sample(sid) for sid in texts}
            final = [hiou(c.final_boxes, samples[sid].gt_boxes) if c.steps else 0.0 for sid, c in chains.items()]
            right = [
                bool(c.answer) and rule_based_score(samples[sid].question, samples[sid].answer or "", c.answer) == 1.0
                for sid, c in chains.items()
            ]
            valid = [not validate_chain(text) for text in texts.values()]
            assert figures["final_hiou"] == pytest.approx(sum(final) / 4), variant
            assert figures["accuracy"] == pytest.approx(sum(right) / 4), variant
            assert figures["format_valid"] == pytest.approx(sum(valid) / 4), variant
        assert store.get_run(first["runs"]["grpo_no_depth"]["eval_run"])["config"]["depth_input"] is False

        # Scoring reads the store: a corrected prediction (the ground-truth chain) moves the figure.
        run_id = first["runs"]["sft"]["eval_run"]
        records = synth_records(store, split="test", limit=4)
        sid = records[0][0]
        before = hiou(parse_chain(store.run_predictions(run_id)[sid]).chain.final_boxes, store.get_sample(sid).gt_boxes)
        store.add_revision(sid, store.current_chain(sid).text, origin="prediction", author="test", run_id=run_id)
        rescored = score_stored(store, run_id, records)["metrics"]["overall"]["final_hiou"]
        assert rescored == pytest.approx(first["runs"]["sft"]["final_hiou"] + (1.0 - before) / 4)

    # The workbench's Runs tab draws each GRPO run's reward curves from the run's log history.
    for name in ("demo-grpo", "demo-grpo-no-bbox", "demo-grpo-no-depth"):
        rewards = runs_view.training_curves(runs[name])["rewards"]
        assert {"format", "answer", "grounding", "depth"} <= set(rewards["series"]) and set(rewards["step"]) == {1, 2}
