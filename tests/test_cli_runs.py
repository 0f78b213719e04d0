"""Runs are named when they start (so a killed run can be resumed), `sif runs` lists them, and no
command trains as a side effect: without a model it says how to get one and exits 1."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from cli.main import app
from db.store import Store

runner = CliRunner()
STARTED = re.compile(r"run (\S+) started")


@pytest.fixture
def store_with_synth(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIF_HOME", str(tmp_path / "home"))
    assert runner.invoke(app, ["synth", "data", "--n", "20", "--split-ratio", "0.3"]).exit_code == 0
    result = runner.invoke(app, ["import", "sif50k", "data/sif50k.json", "--root", "data"])
    assert result.exit_code == 0, result.output
    return tmp_path


def test_an_eval_run_is_named_before_its_first_prediction(store_with_synth):
    # every request fails (nothing listens on port 9), so the run fails: its id was printed first
    result = runner.invoke(
        app,
        ["eval", "synth", "--data", "data/sif50k.json", "--backend", "openai", "--model", "m"]
        + ["--base-url", "http://127.0.0.1:9/v1"],
    )
    assert result.exit_code == 1, result.output
    started = STARTED.search(result.output)
    assert started, result.output
    run_id = started.group(1)
    assert result.output.index(started.group(0)) < result.output.index(f"run {run_id} failed")
    with Store.open("sif.db") as store:
        assert store.get_run(run_id)["status"] == "failed"


def test_sif_runs_lists_an_unfinished_run_with_how_to_resume_it(store_with_synth):
    with Store.open("sif.db") as store:
        killed = store.create_run("evaluation", {"benchmark": "synth"}, name="killed")
        store.update_run(killed, status="running")
        done = store.create_run("generation", {}, name="finished")
        store.update_run(done, status="done")
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 0, result.output
    assert killed in result.output and done in result.output
    assert f"sif eval synth --resume {killed}" in result.output
    result = runner.invoke(app, ["runs", "--unfinished"])
    assert killed in result.output and done not in result.output
    result = runner.invoke(app, ["runs", "--ids"])
    assert result.output.split() == [done, killed]  # newest first
    result = runner.invoke(app, ["runs", "--kind", "training"])
    assert "no training runs" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["infer", "--image", "img.png", "--question", "What colour is it?"],
        ["demo"],
        ["eval", "synth", "--data", "data/sif50k.json"],
        ["infer", "--image", "img.png", "--question", "q", "--model", "demo"],
        ["demo", "--model", "demo"],
        ["eval", "synth", "--data", "data/sif50k.json", "--model", "demo"],
    ],
)
def test_without_a_model_nothing_trains_and_the_message_says_how_to_get_one(store_with_synth, args):
    (store_with_synth / "img.png").write_bytes((store_with_synth / "data/images/synth-000000.png").read_bytes())
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "sif train demo-run" in result.output
    assert not (store_with_synth / "home" / "tiny-demo").exists()  # nothing was built
    with Store.open("sif.db") as store:
        assert store.list_runs() == []  # no run was started either


@pytest.mark.slow
def test_a_training_run_is_named_when_it_starts(tiny_model, synth_data, tmp_path):
    sets = dict(
        model=tiny_model,
        data=synth_data.sft_dir,
        db=synth_data.db,
        output_dir=tmp_path / "sft",
        full_finetune="true",
        max_steps=1,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        eval_ratio=0.0,
        image_max_pixels="null",
        trl="{save_strategy: 'no', disable_tqdm: true}",
    )
    result = runner.invoke(app, ["train", "sft", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]])
    assert result.exit_code == 0, result.output
    started = STARTED.search(result.output)
    assert started and result.output.index(started.group(0)) < result.output.index("SFT model saved")
    with Store.open(synth_data.db) as store:
        assert store.get_run(started.group(1))["kind"] == "training"
