"""`sif eval` end to end on a real SQLite store: REC on the 10,834 RefCOCO val records with a
scripted predictor of known error, a run killed midway and resumed, reports and `--paper`."""

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path

import pytest
from shapely.geometry import box as shapely_box
from typer.testing import CliRunner

from cli.main import app
from evaluation.runner import EvalConfig, run_eval

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def _store(path):
    from db.store import Store

    return Store.open(path)


def _expected_rec_metrics(path, seed=0, lo=0.2, hi=0.8):
    """Independent of the package: the scripted predictor's documented rule, shapely IoU."""
    per_split = defaultdict(list)
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        w, h = row["width"], row["height"]
        x1, y1, x2, y2 = row["bbox"]
        gt = [max(0, x1 / w), max(0, y1 / h), min(1, x2 / w), min(1, y2 / h)]
        rid = f"refcoco-{row['split']}-{row['sent_id']}"
        area = lo + (hi - lo) * zlib.crc32(f"{seed}:{rid}".encode()) / 2**32
        s = math.sqrt(area)
        cx, cy, hw, hh = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2, (gt[2] - gt[0]) * s / 2, (gt[3] - gt[1]) * s / 2
        pred = [float(f"{v:.3f}") for v in (cx - hw, cy - hh, cx + hw, cy + hh)]  # the chain's 3 decimals
        a, b = shapely_box(*pred), shapely_box(*gt)
        per_split[f"refcoco/{row['split']}"].append(a.intersection(b).area / a.union(b).area)
    return {
        k: {"n": len(v), "acc@0.5": sum(i >= 0.5 for i in v) / len(v), "miou": sum(v) / len(v)}
        for k, v in per_split.items()
    }


@pytest.mark.slow
def test_rec_10834_records_scripted_end_to_end(tmp_path, rec_full):
    store = _store(tmp_path / "sif.db")
    # The images are not on disk (the annotation file ships without them); the folder sits in
    # the store's data root, as a real image folder would.
    config = EvalConfig(benchmark="rec", data=rec_full, images=str(tmp_path / "no-images"), backend="scripted")
    start = time.monotonic()
    result = run_eval(store, config, report_dir=tmp_path / "reports", progress=False)
    elapsed = time.monotonic() - start
    assert elapsed < 60, f"10,834 records took {elapsed:.1f} s"

    expected = _expected_rec_metrics(rec_full)
    assert set(expected) == {"refcoco/validation"}
    ours = result.metrics["overall"]
    assert ours["n"] == expected["refcoco/validation"]["n"] == 10834
    assert ours["acc@0.5"] == pytest.approx(expected["refcoco/validation"]["acc@0.5"], abs=1e-12)
    assert ours["miou"] == pytest.approx(expected["refcoco/validation"]["miou"], abs=1e-9)
    assert 0.3 < ours["acc@0.5"] < 0.7  # the known error puts about half the boxes under 0.5

    # Honest about pixels: every record's image is missing, and each is reported by id.
    report = json.loads(result.report_paths[1].read_text())
    assert len(report["missing_images"]) == 10834 == report["summary"]["missing_images"]
    assert report["missing_images"][0]["id"] == "refcoco-validation-222"
    assert "Images missing on disk (10834)" in result.report_paths[0].read_text()
    assert len(store.run_predictions(result.run_id)) == 10834
    assert store.get_run(result.run_id)["status"] == "done"


def _synth_data(tmp_path, n=60):
    from sif.synthetic import make_dataset

    return make_dataset(tmp_path / "synth", n, seed=5, split_ratio=0.5)


@pytest.mark.slow
def test_killed_run_resumes_with_one_prediction_per_record(tmp_path, rec_full):
    """A real `sif eval` process killed midway (SIGKILL), then `--resume`: one prediction each."""
    db = tmp_path / "sif.db"
    env = {**os.environ, "SIF_DB": str(db), "PYTHONPATH": str(ROOT)}
    cmd = [
        str(Path(sys.executable).parent / "sif"),
        "eval",
        "rec",
        "--data",
        rec_full,
        "--backend",
        "scripted",
        "--limit",
        "4000",
        "--images",
        str(tmp_path),
        "--out",
        str(tmp_path / "reports"),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    made = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        made = _count_revisions(db)
        if made >= 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < made < 4000, f"the run was not caught midway ({made} predictions)"
    run_id = _store(db).list_runs(kind="evaluation")[0]["id"]
    before = len(_store(db).run_predictions(run_id))
    assert before < 4000

    out = CliRunner().invoke(
        app,
        [
            "eval",
            "rec",
            "--db",
            str(db),
            "--data",
            rec_full,
            "--backend",
            "scripted",
            "--resume",
            str(run_id),
            "--out",
            str(tmp_path / "reports"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert f"{4000 - before} new predictions" in out.output
    store = _store(db)
    assert len(store.run_predictions(run_id)) == 4000
    assert _count_revisions(db) == 4000  # one prediction per record, no duplicates
    assert store.get_run(run_id)["metrics"]["overall"]["n"] == 4000


def _count_revisions(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("select count(*) from chain_revisions where origin = 'prediction'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet, or busy
        return 0


def test_synth_runs_and_report_compares_with_paper(tmp_path):
    data = _synth_data(tmp_path)
    db = tmp_path / "sif.db"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "eval",
            "synth",
            "--db",
            str(db),
            "--data",
            str(data),
            "--backend",
            "scripted",
            "--out",
            str(tmp_path / "reports"),
        ],
    )
    assert res.exit_code == 0, res.output
    run_id = _store(db).list_runs(kind="evaluation")[0]["id"]
    metrics = _store(db).get_run(run_id)["metrics"]["overall"]
    # The scripted predictor returns the ground-truth chain: every synthetic metric is perfect.
    assert metrics["accuracy"] == metrics["final_hiou"] == metrics["format_validity"] == 1.0
    assert metrics["depth_consistency"] == 1.0

    cv = tmp_path / "cv.jsonl"
    cv.write_text(
        json.dumps(
            {
                "idx": 1,
                "type": "2D",
                "task": "Count",
                "image": "a.png",
                "question": "How many?",
                "choices": ["1", "2"],
                "answer": "(B)",
            }
        )
        + "\n"
    )
    res = runner.invoke(
        app,
        [
            "eval",
            "cvbench",
            "--db",
            str(db),
            "--data",
            str(cv),
            "--backend",
            "scripted",
            "--out",
            str(tmp_path / "reports"),
        ],
    )
    assert res.exit_code == 0, res.output
    runs = [r["id"] for r in _store(db).list_runs(kind="evaluation")]
    res = runner.invoke(app, ["eval", "report", *runs, "--db", str(db), "--paper"])
    assert res.exit_code == 0, res.output
    assert "final_hiou" in res.output and "0.759 (SIFThinker)" in res.output and "quoted" in res.output


def test_eval_settings_from_yaml_with_set_and_flag_overrides(tmp_path):
    """configs/eval.yaml, then --set, then explicit options; an unknown setting is a clear error."""
    data = _synth_data(tmp_path, 12)
    config = tmp_path / "eval.yaml"
    config.write_text((CONFIGS / "eval.yaml").read_text() + f"data: {data}\nlimit: 10\n")
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "eval",
            "synth",
            "--db",
            str(tmp_path / "sif.db"),
            "--config",
            str(config),
            "--set",
            "suffix=rl",
            "--set",
            "limit=4",
            "--backend",
            "scripted",
            "--out",
            str(tmp_path / "reports"),
        ],
    )
    assert res.exit_code == 0, res.output
    run = _store(tmp_path / "sif.db").list_runs(kind="evaluation")[0]
    assert (run["config"]["backend"], run["config"]["suffix"], run["config"]["limit"]) == ("scripted", "rl", 4)
    assert run["metrics"]["overall"]["n"] == 4
    res = runner.invoke(
        app,
        [
            "eval",
            "synth",
            "--db",
            str(tmp_path / "sif.db"),
            "--config",
            str(config),
            "--set",
            "limit=4",
            "--limit",
            "2",
            "--backend",
            "scripted",
            "--out",
            str(tmp_path / "reports"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert _store(tmp_path / "sif.db").list_runs(kind="evaluation")[0]["config"]["limit"] == 2  # the flag wins
    res = runner.invoke(
        app, ["eval", "synth", "--db", str(tmp_path / "sif.db"), "--config", str(config), "--set", "limit=0"]
    )
    assert res.exit_code == 1 and "limit must be a whole number of at least 1" in res.output
    res = runner.invoke(
        app, ["eval", "synth", "--db", str(tmp_path / "sif.db"), "--config", str(config), "--set", "colour=red"]
    )
    assert res.exit_code == 1 and "unknown setting(s) colour" in res.output
    res = runner.invoke(app, ["eval", "synth", "--db", str(tmp_path / "sif.db")])
    assert res.exit_code == 1 and "data: required" in res.output


def test_stopped_run_resumes_in_process(tmp_path):
    """The fast twin of the SIGKILL test: a run left unfinished, resumed, one prediction each."""
    from db.store import Store

    data = _synth_data(tmp_path, 40)
    with Store.open(tmp_path / "sif.db") as store:
        config = EvalConfig(benchmark="synth", data=str(data), backend="scripted")
        first = run_eval(store, config, progress=False, stop_after=5)
        assert first.predicted == 5 and store.get_run(first.run_id)["status"] == "running"
        rest = run_eval(store, config, resume=first.run_id, progress=False)
        assert rest.predicted == rest.total - 5
        assert len(store.run_predictions(first.run_id)) == rest.total
        assert (
            sum(len(store.run_revisions(sid, first.run_id)) for sid in store.run_predictions(first.run_id))
            == rest.total
        )


def test_unknown_run_and_bad_data_fail_clearly(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "rec", "--db", str(tmp_path / "x.db"), "--data", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = runner.invoke(app, ["eval", "report", "eval-nope", "--db", str(tmp_path / "x.db")])
    assert res.exit_code == 1 and "not an eval run" in res.output
