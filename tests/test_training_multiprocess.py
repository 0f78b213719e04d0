"""Two processes on the CPU (gloo), started the way `--gpus 2` starts them, train the tiny model.

The multi-GPU path without a GPU: both ranks get their share of the data, the progressive-answer
state in SQLite stays whole with two writers, each rollout is written once (not once per rank), and a
resume from a checkpoint continues the state.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import sqlite3
from collections import Counter, defaultdict

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from common.settings import as_dict
from db.store import Store
from tests.support.training import grpo_settings, sft_settings
from training.progress import PROGRESS_FILE, SqliteProgressStore

pytestmark = pytest.mark.slow
PROCESSES = 2


def train_on_two_processes(stage: str, settings, tmp_path) -> None:
    config = tmp_path / f"{stage}-{settings.max_steps}.yaml"
    config.write_text(yaml.safe_dump(as_dict(settings)))
    args = ["train", stage, "--config", str(config), "--cpu-processes", str(PROCESSES), "--main-port", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def runs_into(db, out) -> list[dict]:
    with Store.open(db) as store:
        runs = [r for r in store.list_runs("training") if r["config"].get("output_dir") == str(out)]
    return sorted(runs, key=lambda r: r["created_at"])


def progress_rows(out) -> dict[tuple[str, int], dict[int, tuple[float, int]]]:
    """(sample, step) → {process: (sum of scores, completions)}."""
    rows: dict = defaultdict(dict)
    with sqlite3.connect(out / PROGRESS_FILE) as conn:
        for sample, step, process, total, n in conn.execute("SELECT * FROM answer_progress"):
            rows[(sample, step)][process] = (total, n)
    return rows


def rollouts_of(db, run_id) -> Counter:
    """(sample, step) → rollout revisions written for it in the run."""
    with Store.open(db) as store:
        rows = store.conn.execute(
            "SELECT sample_id, note FROM chain_revisions WHERE run_id = ? AND origin = 'rollout'", [run_id]
        ).fetchall()
    return Counter((str(r["sample_id"]), int(re.match(r"GRPO step (\d+):", r["note"])[1])) for r in rows)


def test_sft_on_two_processes_splits_the_data_and_records_one_run(tiny_model, synth_data, tmp_path):
    out = tmp_path / "sft"
    settings = sft_settings(
        tiny_model,
        synth_data,
        out,
        db=str(synth_data.db),
        max_steps=-1,
        num_train_epochs=1,
        per_device_train_batch_size=2,
    )
    train_on_two_processes("sft", settings, tmp_path)
    [run] = runs_into(synth_data.db, out)  # one record, kept by the main process alone
    kept = int(run["metrics"]["data"].split()[0])
    assert run["status"] == "done" and run["metrics"]["processes"] == PROCESSES
    # One epoch in ceil(kept / 4) steps of 2 samples on each process: each trained on its half (one process: 8).
    assert run["metrics"]["steps"] == math.ceil(kept / (PROCESSES * 2)) < math.ceil(kept / 2)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_grpo_on_two_processes_writes_each_rollout_once_and_resumes(tiny_model, synth_data, tmp_path):
    out = tmp_path / "grpo"
    # 4 prompts of 2 completions a step: one batch of 4 completions on each of the 2 processes.
    settings = grpo_settings(
        tiny_model, synth_data, out, max_steps=2, save_steps=1, rollouts_per_step=100, prompts_per_step=4
    )
    per_process, group = settings.per_device_train_batch_size, settings.num_generations
    train_on_two_processes("grpo", settings, tmp_path)

    [run] = runs_into(synth_data.db, out)
    assert run["status"] == "done" and run["metrics"]["processes"] == PROCESSES and run["metrics"]["steps"] == 2
    rows = progress_rows(out)
    assert {step for _, step in rows} == {0, 1}
    for step in (0, 1):  # both ranks scored their own share of every step
        shares = Counter()
        for (_, s), by_process in rows.items():
            for process, (_, n) in by_process.items():
                shares[process] += n if s == step else 0
        assert shares == {p: per_process for p in range(PROCESSES)}
    assert all(sum(n for _, n in by.values()) == group for by in rows.values())  # every group whole, once
    progress = SqliteProgressStore(out / PROGRESS_FILE)
    assert run["metrics"]["answer_progress"] == progress.snapshot()  # the mirror agrees with the file
    progress.close()
    rollouts = rollouts_of(synth_data.db, run["id"])
    assert rollouts == {key: group for key in rows}  # each completion once, not once per rank
    assert run["metrics"]["rollouts_written"] == 2 * PROCESSES * per_process

    # Resume from checkpoint-1, as after a crash during step 2: what came after it is dropped and redone.
    shutil.rmtree(out / "checkpoint-2")
    train_on_two_processes("grpo", dataclasses.replace(settings, max_steps=3, resume=True), tmp_path)
    first, second = runs_into(synth_data.db, out)
    assert second["status"] == "done" and second["metrics"]["steps"] == 3
    resumed = progress_rows(out)
    assert {step for _, step in resumed} == {0, 1, 2}
    assert {k: v for k, v in resumed.items() if k[1] == 0} == {k: v for k, v in rows.items() if k[1] == 0}
    assert all(sum(n for _, n in by.values()) == group for by in resumed.values())
    redone = rollouts_of(synth_data.db, second["id"])
    assert redone == {key: group for key in resumed if key[1] >= 1}  # steps 1 and 2, each completion once
    assert second["metrics"]["rollouts_written"] == 2 * PROCESSES * per_process
