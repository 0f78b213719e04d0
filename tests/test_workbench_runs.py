"""The Runs tab in real chromium against the real app: a training run's reward, KL and loss
curves, an eval run's report beside the paper's figures with per-category bars, and a click on a
wrong prediction that opens it over its image in the Curate tab. Screenshot in artifacts/."""

from __future__ import annotations

import re
import time

import pytest

from db.store import Store
from evaluation.runner import EvalConfig, run_eval
from tests.support.evaluation import choice_answer, make_choice_bench
from tests.support.fake_openai import Reply, fake_openai_server
from tests.support.workbench import serve, shot
from workbench.runs_view import category_bars, eval_table, training_curves

pytestmark = pytest.mark.browser
TIMEOUT = 30_000
HISTORY = [
    {
        "step": s,
        "loss": 1.0 / s,
        "kl": 0.01 * s,
        "rewards/format_reward/mean": 0.2 + 0.1 * s,
        "rewards/answer_reward/mean": 0.1 * s,
        "rewards/bbox_reward/mean": 0.05 * s,
        "rewards/depth_reward/mean": 0.3,
    }
    for s in range(1, 6)
]


@pytest.fixture(scope="module")
def runs_db(tmp_path_factory):
    """A store with a GRPO run's log history and a CV-Bench eval run with wrong predictions."""
    root = tmp_path_factory.mktemp("runs")
    data = make_choice_bench(root, 12)
    with Store.open(root / "sif.db") as store, fake_openai_server(lambda r, n: Reply(choice_answer(r))) as server:
        config = EvalConfig(benchmark="cvbench", data=str(data), backend="openai", base_url=server.base_url)
        run_eval(store, config, progress=False)
        run_id = store.create_run("training", {"stage": "grpo", "model": "tiny", "output_dir": "runs/grpo"})
        store.update_run(run_id, status="done", metrics={"log_history": HISTORY})
    return root / "sif.db"


def test_tables_behind_the_view(runs_db):
    with Store.open(runs_db) as store:
        train = store.list_runs("training")[0]
        evaluation = store.list_runs("evaluation")[0]
    curves = training_curves(train)
    assert set(curves["rewards"].series) == {"format", "answer", "grounding", "depth"}
    assert list(curves["kl"].value) == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    assert len(curves["loss"]) == 5
    table = eval_table(evaluation)
    overall = table[(table.category == "overall") & (table.metric == "accuracy")].iloc[0]
    assert overall["paper (quoted, not measured here)"] == "0.759 (SIFThinker)"
    assert set(category_bars(evaluation).category) == {"2D Count", "2D Relation"}


def _wait(page, elem_id: str, text) -> None:
    page.locator(f"#{elem_id}").get_by_text(text).first.wait_for(timeout=TIMEOUT)


def test_runs_tab_in_the_browser(chromium, runs_db):
    with Store.open(runs_db) as store:
        evaluation = store.list_runs("evaluation")[0]
        wrong = store.eval_records(evaluation["id"], wrong_only=True)
        first_wrong = wrong[0]["sample_id"]
        prediction = store.run_predictions(evaluation["id"])[first_wrong]
    assert 0 < len(wrong) < 12

    with serve(runs_db) as url:
        page = chromium.new_context(viewport={"width": 1500, "height": 1300}).new_page()
        page.goto(url + "/")
        _wait(page, "wb-info", "Question:")
        page.get_by_role("tab", name="Runs").click()
        _wait(page, "runs-train-summary", "grpo")
        _wait(page, "runs-train-summary", "logged steps: 5")

        # Training curves: one line per reward (named as the paper names them), KL and loss.
        rewards = page.locator("#runs-rewards svg")
        rewards.get_by_text("grounding", exact=True).wait_for(timeout=TIMEOUT)
        legend = page.eval_on_selector_all(
            "#runs-rewards svg .role-legend-label text", "labels => labels.map(t => t.textContent)"
        )
        assert sorted(legend) == ["answer", "depth", "format", "grounding"]
        assert page.locator("#runs-rewards svg .mark-line path").count() == 4
        assert page.locator("#runs-kl svg .mark-line path").count() == 1
        assert page.locator("#runs-loss svg .mark-line path").count() == 1

        # The eval report: protocol, our figures beside the paper's, bars per category.
        _wait(page, "runs-eval-summary", "Protocol:")
        _wait(page, "runs-eval-summary", "12 records · 12 predicted")
        paper = page.locator('#runs-eval-table [role="gridcell"]').filter(has_text="0.759 (SIFThinker)")
        paper.first.wait_for(timeout=TIMEOUT)
        page.locator("#runs-bars svg .mark-rect path").first.wait_for(timeout=TIMEOUT)
        assert page.locator("#runs-bars svg .mark-rect path").count() == 2
        rows = page.locator('#runs-wrong [role="gridcell"][data-col="0"]')
        rows.first.wait_for(timeout=TIMEOUT)
        assert sorted(int(x) for x in rows.all_inner_texts()) == sorted(e["sample_id"] for e in wrong)
        shot(page, "runs-tab")

        # A click on a wrong prediction opens it over its image in the Curate tab.
        cell = rows.filter(has_text=re.compile(rf"^\s*{first_wrong}\s*$")).first
        start = time.monotonic()
        cell.click()
        _wait(page, "wb-info", f"Sample {first_wrong} ")
        page.wait_for_function(
            "t => (document.querySelector('#wb-out-text textarea') || {}).value === t", arg=prediction, timeout=TIMEOUT
        )
        waited = time.monotonic() - start
        assert page.get_by_role("tab", name="Curate").get_attribute("aria-selected") == "true"
        assert page.get_by_role("tab", name="Model outputs").get_attribute("aria-selected") == "true"
        assert page.locator("#wb-output-pick input").input_value().startswith(evaluation["id"])
        page.locator("#wb-out-image img").wait_for(timeout=TIMEOUT)
        shot(page, "runs-open-wrong-prediction")
        print(f"wrong prediction opened in the Curate tab in {waited * 1000:.0f} ms")
        assert waited < 10
