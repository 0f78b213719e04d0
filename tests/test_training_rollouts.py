"""GRPO-SIF rollouts reach the store through the reward functions (TRL's public contract), once per batch."""

from __future__ import annotations

import functools
import json

from transformers import TrainerState

from db.store import Store
from sif.rewards import bbox_reward, format_reward
from training.rollouts import RolloutRecorder

VALID = (
    '<think>\n<area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.500}]</area>\n<text>Whole picture.</text>\n'
    '<area>[{"bbox_2d":[0.000,0.000,0.500,0.500],"depth":0.500}]</area>\n<text>Here.</text>\n</think>\n'
    "<answer>red</answer>"
)


def _batch(sample_ids: list[str], step: int, texts: list[str]) -> dict:
    """What TRL passes each reward function: completions, the dataset columns, the trainer state."""
    return {
        "prompts": [[{"role": "user", "content": "q"}]] * len(texts),
        "completions": [[{"role": "assistant", "content": t}] for t in texts],
        "sample_id": sample_ids,
        "gt_boxes": [[[0.0, 0.0, 0.5, 0.5]]] * len(texts),
        "trainer_state": TrainerState(global_step=step),
    }


def test_a_batch_is_written_once_every_reward_has_scored_it(synth_data):
    sids = [json.loads(line)["sample_id"] for line in synth_data.rl_file.read_text().splitlines()][:2]
    with Store.open(synth_data.db) as store:
        run_id = store.create_run("training", {"stage": "grpo"}, name="rollout-recorder")

    def answer_reward(completions, **kwargs):
        return [1.0, None]  # a judge failure left out (judge.on_failure: skip)

    recorder = RolloutRecorder(
        ["format", "answer", "bbox"], [1.0, 1.0, 2.0], per_step=3, every=2, db=str(synth_data.db), run_id=run_id
    )
    fed = [
        recorder.feeding("format", format_reward),
        recorder.feeding("answer", answer_reward),
        recorder.feeding("bbox", functools.partial(bbox_reward, positive_only=True)),
    ]
    assert [f.__name__ for f in fed] == ["format_reward", "answer_reward", "bbox_reward"]  # TRL logs these names

    def score(step: int, texts: list[str]) -> list[list]:
        batch = _batch(sids, step, texts)
        return [f(**batch) for f in fed]

    def rollouts() -> list[str]:
        with Store.open(synth_data.db) as store:
            rows = store.conn.execute(
                "SELECT note FROM chain_revisions WHERE run_id = ? ORDER BY id", [run_id]
            ).fetchall()
        return [r["note"] for r in rows]

    batch = _batch(sids, 0, [VALID, "no chain"])
    assert fed[0](**batch) == [1.0, 0.0]  # the scores TRL gets are the reward's own
    assert rollouts() == []  # not every reward has scored the batch yet
    fed[1](**batch), fed[2](**batch)
    assert rollouts() == [
        "GRPO step 0: total=4.000 (format=1.000, answer=1.000, bbox=1.000)",
        "GRPO step 0: total=0.000 (format=0.000, answer=-, bbox=0.000)",
    ]
    score(0, [VALID, VALID])  # a second batch in the same step: one more fits the step's 3
    score(1, [VALID, VALID])  # not a logging step (every 2)
    score(2, [VALID, VALID])
    notes = rollouts()
    assert [n.split(":")[0] for n in notes] == ["GRPO step 0"] * 3 + ["GRPO step 2"] * 2
    assert recorder.written == 5 and recorder.failed == 0
    recorder.close()


def test_without_a_store_nothing_is_written_and_scores_pass_through():
    recorder = RolloutRecorder(["format"], [1.0], per_step=2, every=1)
    fed = recorder.feeding("format", format_reward)
    assert fed(**_batch(["1"], 0, [VALID])) == [1.0]
    assert recorder.written == 0
