"""Predictions of a local model go to the store as an eval run and are scored from there."""

from __future__ import annotations

import pytest

from db.store import Store
from evaluation.model_eval import score_stored, store_predictions, synth_records


def test_stored_predictions_are_scored_from_the_store(synth_data):
    with Store.open(synth_data.db) as store:
        records = synth_records(store, split="train", limit=4)
        assert len(records) >= 2 and all(r.kind == "synth" and r.depth_encoding == "gray16_depth" for _, r in records)
        first = records[0][0]
        perfect = store.current_chain(first).text  # the synthetic ground-truth chain
        # the last record gets no prediction at all: it still counts, as an empty answer
        texts = [perfect] + ["<answer>no idea</answer>"] * (len(records) - 2)
        run_id = store_predictions(store, records[:-1], texts, name="t", author="test")
        assert len(store.run_predictions(run_id)) == len(records) - 1
        out = score_stored(store, run_id, records)
        overall, n = out["metrics"]["overall"], len(records)
        assert overall["n"] == n
        for key in ("accuracy", "final_hiou", "format_validity"):
            assert overall[key] == pytest.approx(1 / n), key
        scored = out["records"][0]
        assert scored["sample_id"] == first and scored["correct"] and scored["hiou"] == pytest.approx(1.0)
        # the ground-truth chain earns every reward: format 1 + answer 1 + grounding (1 + gain) + depth 1
        assert scored["bbox_reward"] >= 1.0
        assert scored["total_reward"] == pytest.approx(3.0 + scored["bbox_reward"])
        assert overall["total_reward"] == pytest.approx(scored["total_reward"] / n)
        assert store.get_run(run_id)["status"] == "done"
        assert store.get_run(run_id)["metrics"]["overall"]["n"] == n
