"""The Runs tab: what training and evaluation runs did, read from their records in the store.

- Training: curves per reward (format, answer, grounding, depth), KL and loss, from the log
  history each run keeps (`RunRecord.log_recorder`).
- Evaluation: the protocol, the honest summary (records without a prediction), our figures beside
  the paper's quoted ones per category, bars per category, and the run's wrong predictions: a
  click opens one over its image in the Curate tab (the app hands in how to open a sample).

The tables are built by plain functions (`training_curves`, `eval_table`, `category_bars`,
`wrong_rows`); `add_runs_tab` lays them out and wires them.
"""

from __future__ import annotations

import json
import time

import gradio as gr
import pandas as pd

from evaluation.paper import quoted_for
from evaluation.records import PROTOCOLS
from evaluation.report import metric_rows

# TRL's log keys for the GRPO-SIF rewards (`rewards/<function name>/mean`) and what we call them.
REWARD_CURVES = {
    "rewards/format_reward/mean": "format",
    "rewards/answer_reward/mean": "answer",
    "rewards/bbox_reward/mean": "grounding",
    "rewards/depth_reward/mean": "depth",
}
LOSS_CURVES = {"loss": "train loss", "eval_loss": "eval loss"}
MAIN_METRIC = ("accuracy", "acc@0.5", "nms_ap", "score")  # the figure a category's bar shows
WRONG_HEADERS = ["sample", "record", "category", "answer", "why"]
SHOWN_WRONG = 500
SHOW_CURATE = "() => { const t = [...document.querySelectorAll('#wb-tabs [role=tab]')].find(e => e.textContent.trim() === 'Curate'); if (t) t.click(); }"


def _curve(history: list[dict], names: dict[str, str]) -> pd.DataFrame:
    rows = [
        {"step": entry["step"], "value": float(entry[key]), "series": name}
        for entry in history
        if "step" in entry
        for key, name in names.items()
        if isinstance(entry.get(key), (int, float))
    ]
    return pd.DataFrame(rows, columns=["step", "value", "series"])


def training_curves(run: dict) -> dict[str, pd.DataFrame]:
    """(step, value, series) tables for the reward, KL and loss plots of a training run."""
    history = (run.get("metrics") or {}).get("log_history") or []
    rewards = dict(REWARD_CURVES)
    for entry in history:  # rewards under other names (a custom reward function) get a curve too
        for key in entry:
            if key.startswith("rewards/") and key.endswith("/mean") and key not in rewards:
                rewards[key] = key.split("/")[1].removesuffix("_reward")
    return {
        "rewards": _curve(history, rewards),
        "kl": _curve(history, {"kl": "KL"}),
        "loss": _curve(history, LOSS_CURVES),
    }


def training_summary(run: dict) -> str:
    m, c = run.get("metrics") or {}, run.get("config") or {}
    steps = [e["step"] for e in m.get("log_history") or [] if "step" in e]
    lines = [
        f"### {run['id']} · {c.get('stage', 'training')} · **{run['status']}**",
        f"model `{c.get('model', '–')}` · data `{c.get('data', '–')}` · output `{c.get('output_dir', '–')}`",
        f"logged steps: {len(steps)}" + (f" (last {max(steps)})" if steps else " — no log history recorded"),
    ]
    if m.get("error"):
        lines.append(f"**error:** {m['error']}")
    return "\n\n".join(lines)


def eval_table(run: dict) -> pd.DataFrame:
    """Our metrics per category beside the paper's quoted figures for the same ones."""
    bench = (run.get("config") or {}).get("benchmark")
    quoted: dict[tuple[str, str], list[str]] = {}
    for q in quoted_for(bench) if bench else []:
        cell = f"{q.value:.3f} ({q.setting})" if q.value is not None else f"– ({q.setting})"
        quoted.setdefault((q.category, q.metric), []).append(cell)
    rows = [
        [cat, key, round(value, 4) if isinstance(value, (int, float)) else None, "; ".join(quoted.pop((cat, key), []))]
        for cat, key, value in metric_rows(run.get("metrics") or {})
    ]
    rows += [[cat, key, None, "; ".join(cells)] for (cat, key), cells in quoted.items()]
    return pd.DataFrame(rows, columns=["category", "metric", "ours", "paper (quoted, not measured here)"])


def category_bars(run: dict) -> pd.DataFrame:
    """(category, value) of each category's main metric, or of the overall figure when the
    benchmark has no categories."""
    metrics = run.get("metrics") or {}
    rows = []
    for cat, values in metrics.items():
        if not isinstance(values, dict) or cat in ("summary", "judge_failures"):
            continue
        key = next((k for k in MAIN_METRIC if isinstance(values.get(k), (int, float))), None)
        if key is not None:
            rows.append({"category": cat, "value": float(values[key]), "metric": key})
    bars = pd.DataFrame(rows, columns=["category", "value", "metric"])
    return bars[bars.category != "overall"] if (bars.category != "overall").any() else bars


def eval_summary(run: dict) -> str:
    c, m = run.get("config") or {}, run.get("metrics") or {}
    s = m.get("summary") or {}
    bench = c.get("benchmark", "–")
    lines = [
        f"### {run['id']} · {bench} · **{run['status']}**",
        f"model `{c.get('model') or c.get('backend', '–')}` · data `{c.get('data', '–')}`"
        + (f" · shard {c['shard']}" if c.get("shard") else ""),
        f"**Protocol:** {m.get('protocol') or PROTOCOLS.get(bench, '–')}",
    ]
    if s:
        lines.append(
            f"{s.get('records', 0)} records · {s.get('predicted', 0)} predicted · "
            f"{s.get('unanswered', 0)} without a prediction (counted wrong) · {s.get('missing_images', 0)} images missing"
        )
    if s.get("merged_from"):
        lines.append("merged from " + ", ".join(f"`{x}`" for x in s["merged_from"]))
    return "\n\n".join(lines)


def wrong_rows(store, run_id: str, limit: int = SHOWN_WRONG) -> list[list]:
    """The run's wrong predictions (failed ones too), one table row each."""
    rows = []
    for e in store.eval_records(run_id, wrong_only=True, limit=limit):
        why = e.get("error") if e.get("failed") else ""
        answer = e.get("answer")
        if answer is None and "iou" in e:
            answer = f"IoU {e['iou']:.2f}"
        rows.append([e["sample_id"], e["id"], e.get("category", ""), str(answer or "")[:120], why or ""])
    return rows


def _choices(store, kind: str) -> list[tuple[str, str]]:
    out = []
    for r in store.list_runs(kind):
        c = r["config"]
        what = c.get("stage") if kind == "training" else c.get("benchmark", "?")
        parts = [r["id"], what, r.get("name") or c.get("model"), r["status"]]
        out.append((" · ".join(str(p) for p in parts if p), r["id"]))
    return out


def add_runs_tab(store, pick: gr.Textbox) -> None:
    """Add the Runs tab. A click on a wrong prediction writes `{"sample", "rev", "at"}` into
    `pick`, a hidden box of the Curate tab whose change opens it there (in the Model outputs
    panel), and the page switches to the Curate tab."""
    with gr.Tab("Runs", id="runs") as tab:
        with gr.Row():
            train_pick = gr.Dropdown([], label="Training run", elem_id="runs-train-pick", scale=4)
            refresh = gr.Button("Refresh", size="sm", elem_id="runs-refresh", scale=1)
        train_md = gr.Markdown(elem_id="runs-train-summary")
        with gr.Row():
            plot_rewards = gr.LinePlot(
                x="step", y="value", color="series", title="Rewards (mean per step)", elem_id="runs-rewards"
            )
            plot_kl = gr.LinePlot(x="step", y="value", color="series", title="KL", elem_id="runs-kl")
            plot_loss = gr.LinePlot(x="step", y="value", color="series", title="Loss", elem_id="runs-loss")
        eval_pick = gr.Dropdown([], label="Evaluation run", elem_id="runs-eval-pick")
        eval_md = gr.Markdown(elem_id="runs-eval-summary")
        with gr.Row():
            table = gr.Dataframe(interactive=False, elem_id="runs-eval-table", wrap=True, scale=3)
            bars = gr.BarPlot(x="category", y="value", title="Per category", elem_id="runs-bars", scale=2)
        gr.Markdown("**Wrong predictions** — click one to open it over its image in the Curate tab.")
        wrong = gr.Dataframe(headers=WRONG_HEADERS, interactive=False, elem_id="runs-wrong", max_height=420)
        picked_run = gr.State(None)

    def show_training(run_id):
        if not run_id:
            return {train_md: "No training run chosen.", plot_rewards: None, plot_kl: None, plot_loss: None}
        run = store.get_run(run_id)
        curves = training_curves(run)
        return {
            train_md: training_summary(run),
            plot_rewards: curves["rewards"],
            plot_kl: curves["kl"],
            plot_loss: curves["loss"],
        }

    def show_eval(run_id):
        if not run_id:
            return {eval_md: "No evaluation run chosen.", table: None, bars: None, wrong: [], picked_run: None}
        run = store.get_run(run_id)
        rows = wrong_rows(store, run_id)
        per_category = category_bars(run)
        low = min(0.0, float(per_category.value.min())) if len(per_category) else 0.0
        high = max(1.0, float(per_category.value.max())) if len(per_category) else 1.0
        return {
            eval_md: eval_summary(run),
            table: eval_table(run),
            bars: gr.BarPlot(value=per_category, y_lim=[low, high]),
            wrong: rows or [[""] * len(WRONG_HEADERS)],
            picked_run: run_id,
        }

    train_out = [train_md, plot_rewards, plot_kl, plot_loss]
    eval_out = [eval_md, table, bars, wrong, picked_run]

    def on_open():
        trains, evals = _choices(store, "training"), _choices(store, "evaluation")
        first_train, first_eval = (trains[0][1] if trains else None), (evals[0][1] if evals else None)
        return {
            train_pick: gr.update(choices=trains, value=first_train),
            eval_pick: gr.update(choices=evals, value=first_eval),
            **show_training(first_train),
            **show_eval(first_eval),
        }

    tab.select(on_open, None, [train_pick, eval_pick, *train_out, *eval_out])
    refresh.click(on_open, None, [train_pick, eval_pick, *train_out, *eval_out])
    train_pick.input(show_training, [train_pick], train_out)
    eval_pick.input(show_eval, [eval_pick], eval_out)

    def on_wrong(evt: gr.SelectData, run_id):  # Gradio hands the event in by this annotation
        row = evt.row_value or []
        if not row or row[0] in ("", None) or not run_id:
            return gr.skip()
        sample_id = int(row[0])
        revisions = store.run_revisions(sample_id, run_id)
        rev = revisions[-1].rev if revisions else None
        return json.dumps({"sample": sample_id, "rev": rev, "at": time.time()})  # `at`: a new value each click

    wrong.select(on_wrong, [picked_run], [pick]).then(None, js=SHOW_CURATE)
