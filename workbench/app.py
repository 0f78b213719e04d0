"""The curation workbench (Gradio): a review-first screen that fits 1440×900 without scrolling —
the list on the left, the picture (the box editor) and the depth map in the middle, the sample,
its chain as a readable list and the review buttons on the right — plus the Stats and Keys tabs.

`build_app(store)` lays out one panel per function and wires each widget to a method of
`workbench.handlers.Handlers`, which holds all the logic. Every action sends the target shown
on screen (a hidden field) with it; curate actions run one at a time, in the order they were
sent, so a fast key never overtakes the one before it.
"""

from __future__ import annotations

import gc
import getpass
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from gradio_image_annotation import image_annotator

from db.schema import ORIGINS, STATUSES
from db.store import Store
from db.team import AuthFile, StoreAccounts
from workbench.draft import TABLE_HEADERS
from workbench.handlers import (
    ACCEPT,
    ALL_STEPS,
    EDITED,
    LISTED,
    PANELS,
    REBASE,
    REPLACE,
    SCREEN,
    SELECTED_STEP,
    TYPED,
    Context,
    Handlers,
    Target,
    Update,
)
from workbench.history import DIFF_COLOURS
from workbench.render import PictureFiles
from workbench.runs_view import add_runs_tab
from workbench.service import ANY, SORTS, VALIDITY, Filters, Workbench
from workbench.serving import DEFAULT_HOST, DEFAULT_PORT, ServePolicy, SignIn, user_of
from workbench.shortcuts import shortcuts_head, shortcuts_markdown
from workbench.team import DECISION_LABELS, TeamActions
from workbench.views import esc

CSS = Path(__file__).with_name("workbench.css").read_text()
CURATE = "curate"  # the concurrency group of every curate action: one at a time, first come first served
CLICK_JS = """
element.addEventListener('click', (e) => {{
  const hit = e.target.closest('[{attr}]');
  if (hit && element.contains(hit)) trigger('click', {{ {key}: Number(hit.getAttribute('{attr}')) }});
}});
watch('value', () => {{
  const mark = element.querySelector('{mark}');
  if (mark) mark.scrollIntoView({{ block: 'nearest' }});
}});
"""
DECISIONS = (  # status, label, elem_id, variant
    ("accepted", ACCEPT, "wb-accept", "primary"),
    ("rejected", "Reject (x)", "wb-reject", "secondary"),
    ("needs_fix", "Needs fix (f)", "wb-needs-fix", "secondary"),
)
SHOW_CHAIN_TAB = (
    "() => { const tab = [...document.querySelectorAll('#wb-tools [role=tab]')][0]; if (tab) tab.click(); }"
)
SHOW_OUTPUTS_TAB = (
    "() => { const tab = [...document.querySelectorAll('#wb-tools [role=tab]')].find("
    "e => e.textContent.trim() === 'Model outputs'); if (tab) tab.click(); }"
)
CONTEXT = ("target", "f_status", "f_dataset", "f_valid", "f_origin", "f_run", "search", "f_sort", "f_drafts", "f_view")
LIVE_EVERY_S = 3.0  # the list and counts follow other curators' decisions this often
LIVE = ("list", "count", "page_info", "mark")
VIEW = ("show", "show_gt", "stay")


def _clickable(elem_id: str, attr: str, key: str, mark: str, **kw) -> gr.HTML:
    """HTML whose elements carrying `attr` send a click event with that value as `key`; the
    element matching `mark` (the current row, the selected step) is kept in view."""
    return gr.HTML(
        elem_id=elem_id, js_on_load=CLICK_JS.format(attr=attr, key=key, mark=mark), apply_default_css=False, **kw
    )


# ------------------------------------------------------------ layout: one function per panel


def browse_panel(store: Store) -> dict:
    with gr.Column(scale=0, min_width=330, elem_id="wb-browse"):
        ui = {
            "whoami": gr.HTML(f"<b>SIF Workbench</b> · {esc(store.path.name)}", elem_id="wb-user"),
            "mark": gr.Textbox(visible="hidden", elem_id="wb-mark"),  # the store's change mark the list was drawn at
            "target": gr.Textbox(Target().dump(), visible="hidden", elem_id="wb-target"),
            "open_id": gr.Number(visible="hidden", precision=0, elem_id="wb-open-id"),  # opens a sample by id (API)
            "search": gr.Textbox(
                placeholder="search question, answer, chain…  (/)", show_label=False, elem_id="wb-search", lines=1
            ),
        }
        with gr.Row(elem_classes="wb-tight"):
            ui["f_status"] = gr.Dropdown(
                [ANY, *STATUSES], value=ANY, label="Status", elem_id="wb-f-status", min_width=0
            )
            ui["f_dataset"] = gr.Dropdown([ANY], value=ANY, label="Dataset", elem_id="wb-f-dataset", min_width=0)
            ui["f_valid"] = gr.Dropdown(list(VALIDITY), value=ANY, label="Validity", elem_id="wb-f-valid", min_width=0)
        with gr.Row(elem_classes="wb-tight"):
            ui["f_origin"] = gr.Dropdown(
                [ANY, "none", *ORIGINS], value=ANY, label="Origin", elem_id="wb-f-origin", min_width=0
            )
            ui["f_run"] = gr.Dropdown([ANY], value=ANY, label="Run", elem_id="wb-f-run", min_width=0)
            ui["f_sort"] = gr.Dropdown(list(SORTS), value="id", label="Sort", elem_id="wb-f-sort", min_width=0)
        with gr.Row(elem_classes="wb-tight"):
            ui["f_view"] = gr.Checkbox(False, label="my queue", elem_id="wb-f-view")
            ui["f_drafts"] = gr.Checkbox(False, label="only my unsaved edits", elem_id="wb-f-drafts")
        ui["count"] = gr.HTML(elem_id="wb-count")
        ui["list"] = _clickable("wb-list", "data-sample", "sample", ".wb-current")
        with gr.Row(elem_classes="wb-tight"):
            ui["page_prev"] = gr.Button("◀ page", size="sm", elem_id="wb-page-prev", min_width=60)
            ui["page_info"] = gr.HTML(elem_id="wb-page")
            ui["page_next"] = gr.Button("page ▶", size="sm", elem_id="wb-page-next", min_width=60)
    return ui


def look_panel() -> dict:
    with gr.Column(scale=0, min_width=620, elem_id="wb-look"):
        ui = {}
        with gr.Row(elem_classes="wb-tight", elem_id="wb-look-bar"):
            ui["prev"] = gr.Button("◀ previous (k)", size="sm", elem_id="wb-prev", min_width=100)
            ui["next"] = gr.Button("next (j) ▶", size="sm", elem_id="wb-next", min_width=100)
            ui["show"] = gr.Radio(
                [ALL_STEPS, SELECTED_STEP], value=ALL_STEPS, show_label=False, elem_id="wb-show", container=False
            )
            ui["show_gt"] = gr.Checkbox(True, label="ground truth (g)", elem_id="wb-gt", container=False)
        ui["annot"] = image_annotator(
            None,
            show_label=False,
            sources=[],
            show_clear_button=False,
            show_download_button=False,
            show_remove_button=True,
            disable_edit_boxes=True,
            box_min_size=4,
            elem_id="wb-annot",
            boxes_alpha=0.15,
        )
        ui["picture_note"] = gr.HTML(elem_id="wb-picture-note")
        with gr.Row(elem_classes="wb-tight"):
            ui["depth"] = gr.Image(
                label="Depth (near = red, far = blue)",
                interactive=False,
                elem_id="wb-depth",
                height=190,
                buttons=["fullscreen"],
            )
            ui["strip"] = gr.Image(
                label="Step strip (click a step)", interactive=False, elem_id="wb-strip", height=190, buttons=[]
            )
    return ui


def sample_panel() -> dict:
    ui = {"info": gr.HTML(elem_id="wb-info")}
    with gr.Tabs(elem_id="wb-tools"):
        with gr.Tab("Chain", id="chain") as t:
            ui["tab_chain"] = t
            ui["chain"] = _clickable("wb-chain", "data-step", "step", ".wb-selected")
            ui["checks"] = gr.HTML(elem_id="wb-checks")
            ui["step_text"] = gr.Textbox(label="Step text", lines=2, max_lines=4, elem_id="wb-step-text")
            with gr.Row(elem_classes="wb-tight", elem_id="wb-step-bar"):
                ui["answer"] = gr.Textbox(label="Chain answer", elem_id="wb-answer", scale=3, min_width=120)
                ui["step_prev"] = gr.Button("◀ step", size="sm", elem_id="wb-step-prev", min_width=50)
                ui["step_next"] = gr.Button("step ▶", size="sm", elem_id="wb-step-next", min_width=50)
                ui["add_step"] = gr.Button("+ step", size="sm", elem_id="wb-add-step", min_width=44)
                ui["del_step"] = gr.Button("✕ step", size="sm", variant="stop", elem_id="wb-del-step", min_width=44)
                ui["up_step"] = gr.Button("↑", size="sm", elem_id="wb-up-step", min_width=24)
                ui["down_step"] = gr.Button("↓", size="sm", elem_id="wb-down-step", min_width=24)
        with gr.Tab("Boxes & depth", id="boxes") as t:
            ui["tab_boxes"] = t
            ui["regions"] = gr.Dataframe(
                headers=TABLE_HEADERS,
                datatype=["number"] * 5 + ["str"],
                interactive=True,
                column_count=6,
                elem_id="wb-regions",
                label="The selected step's boxes (normalized) and depths (0 = near). Depth source: auto = "
                "measured on the depth map under the box; manual = typed by hand (type auto to measure it again).",
            )
            ui["edit_note"] = gr.Textbox(label="Note for your next save (optional)", elem_id="wb-edit-note")
        with gr.Tab("Checks", id="checks") as t:
            ui["tab_checks"] = t
            ui["feedback"] = gr.HTML(elem_id="wb-feedback")
        with gr.Tab("History", id="history") as t:
            ui["tab_history"] = t
            ui["history"] = _clickable("wb-history", "data-rev", "rev", ".wb-current", max_height=230)
            ui["diff"] = gr.HighlightedText(
                label="Diff (selected → current)",
                color_map=DIFF_COLOURS,
                combine_adjacent=False,
                elem_id="wb-diff",
                show_legend=True,
            )
            with gr.Row(elem_classes="wb-tight"):
                ui["revert"] = gr.Button("Revert to the selected revision", size="sm", elem_id="wb-revert")
                ui["history_msg"] = gr.HTML(elem_id="wb-history-msg")
        with gr.Tab("Model outputs", id="outputs") as t:
            ui["tab_outputs"] = t
            ui["output_pick"] = gr.Dropdown(
                [], label="Rollouts and predictions of this sample", elem_id="wb-output-pick"
            )
            with gr.Row(elem_classes="wb-tight"):
                ui["out_image"] = gr.Image(
                    label="Over the image", interactive=False, elem_id="wb-out-image", height=150
                )
                ui["out_depth"] = gr.Image(
                    label="Over the depth map", interactive=False, elem_id="wb-out-depth", height=150
                )
            ui["out_strip"] = gr.Image(label="Its steps", interactive=False, elem_id="wb-out-strip", height=60)
            ui["out_text"] = gr.Textbox(
                label="Its text", lines=3, max_lines=6, interactive=False, elem_id="wb-out-text"
            )
            ui["out_feedback"] = gr.HTML(elem_id="wb-out-feedback")
            ui["adopt"] = gr.Button("Adopt this output as my edit", size="sm", elem_id="wb-adopt")
    return ui


def review_panel() -> dict:
    ui = {}
    with gr.Group(elem_id="wb-review-bar"):
        with gr.Row(elem_classes="wb-tight"):
            ui["review_note"] = gr.Textbox(
                show_label=False, placeholder="review note (optional)", elem_id="wb-review-note", scale=3
            )
            ui["stay"] = gr.Checkbox(False, label="stay after a decision", elem_id="wb-stay", container=False)
        with gr.Row(elem_classes="wb-tight"):
            for status, label, elem_id, variant in DECISIONS:
                ui[status] = gr.Button(label, elem_id=elem_id, variant=variant, size="sm", min_width=90)
            ui["accept"] = ui["accepted"]
        with gr.Row(elem_classes="wb-tight"):
            ui["save"] = gr.Button("Save edit (Ctrl+S)", size="sm", elem_id="wb-save", min_width=90)
            ui["discard"] = gr.Button("Discard edit", size="sm", elem_id="wb-discard", min_width=90)
            ui["rebase"] = gr.Button(REBASE, size="sm", visible=False, elem_id="wb-rebase", min_width=90)
            ui["replace"] = gr.Button(REPLACE, size="sm", variant="stop", visible=False, elem_id="wb-replace")
    ui["message"] = gr.HTML(elem_id="wb-message")
    ui["runs_pick"] = gr.Textbox(visible="hidden", elem_id="wb-runs-pick")  # set by the Runs tab
    ui["conflict"] = gr.HighlightedText(
        label="Their current chain → your edit",
        visible=False,
        color_map=DIFF_COLOURS,
        combine_adjacent=False,
        elem_id="wb-conflict-diff",
    )
    return ui


def curate_tab(
    app: gr.Blocks, handlers: Handlers, store: Store, local_user: str, cpu: ActionCpu, timer: gr.Timer
) -> dict:
    with gr.Tab("Curate", id="curate"):
        ui = {"timer": timer}
        with gr.Row(elem_id="wb-main", equal_height=False):
            ui.update(browse_panel(store))
            ui.update(look_panel())
            with gr.Column(scale=1, min_width=400, elem_id="wb-side"):
                ui.update(sample_panel())
                ui.update(review_panel())
    wire_curate(ui, handlers, local_user, app.load, cpu)
    return ui


def stats_tab(handlers: Handlers, team: TeamActions) -> None:
    with gr.Tab("Stats", id="stats") as tab:
        refresh = gr.Button("Refresh", size="sm", elem_id="wb-stats-refresh")
        summary = gr.HTML(elem_id="wb-stats-summary")
        gr.Markdown(
            "**Curators**: progress (decisions that stand, median seconds between two decisions) and agreement "
            "from blind second reviews: Cohen's κ on status, mean IoU of the final-step boxes when both edited "
            "them, how often step texts were changed, accuracy on gold samples."
        )
        report = gr.HTML(elem_id="wb-team-report")
        with gr.Row():
            status = gr.BarPlot(
                x="status", y="samples", title="Review progress", elem_id="wb-plot-status", y_lim=[0, None]
            )
            depth = gr.BarPlot(
                x="depth", y="samples", title="Depth consistency", elem_id="wb-plot-depth", y_lim=[0, None]
            )
        with gr.Row():
            hiou = gr.BarPlot(
                x="final-step HIoU",
                y="samples",
                title="Final-step HIoU vs ground truth",
                elem_id="wb-plot-hiou",
                sort="x",
                y_lim=[0, None],
            )
            length = gr.BarPlot(x="steps", y="samples", title="Chain length", elem_id="wb-plot-length", y_lim=[0, None])
    outputs = {"summary": summary, "status": status, "depth": depth, "hiou": hiou, "length": length, "report": report}

    def on_stats():
        return {outputs[k]: v for k, v in {**handlers.stats(), "report": team.report_html()}.items()}

    for trigger in (refresh.click, tab.select):
        trigger(on_stats, None, list(outputs.values()), show_progress_on=[summary])


def team_tab(app: gr.Blocks, team: TeamActions, curate: dict, local_user: str) -> None:
    """Admins only (the tab is shown to admins, and every action checks the role again): queues,
    bulk decisions and export, each on the Curate tab's current filter."""
    with gr.Tab("Team", id="team", visible=False) as tab:
        gr.Markdown("Each action here applies to the **current filter of the Curate tab**.")
        with gr.Row(elem_classes="wb-tight"):
            who = gr.Dropdown(team.curators(), label="Curator", allow_custom_value=True, elem_id="wb-assign-curator")
            n = gr.Number(50, precision=0, label="Samples", elem_id="wb-assign-n", minimum=1)
            assign = gr.Button("Assign from the filter", elem_id="wb-assign")
        assign_msg = gr.HTML(elem_id="wb-assign-msg")
        with gr.Row(elem_classes="wb-tight"):
            status = gr.Dropdown(list(DECISION_LABELS), value="accepted", label="Decision", elem_id="wb-bulk-status")
            count = gr.Button("Count the filter", elem_id="wb-bulk-count")
            confirm = gr.Button("Confirm", variant="stop", visible=False, elem_id="wb-bulk-confirm")
            undo = gr.Button("Undo this batch", visible=False, elem_id="wb-bulk-undo")
        bulk_msg = gr.HTML(elem_id="wb-bulk-msg")
        pending, batch = gr.State(None), gr.State(None)
        with gr.Row(elem_classes="wb-tight"):
            kind = gr.Radio(["sft", "rl"], value="sft", label="Export", elem_id="wb-export-kind")
            export_n = gr.Number(200, precision=0, label="RL samples", elem_id="wb-export-n", minimum=1)
            export = gr.Button("Export the filter", elem_id="wb-export")
        export_msg = gr.HTML(elem_id="wb-export-msg")
        manifest = gr.Code(language="json", label="Manifest", elem_id="wb-export-manifest", max_lines=20)
        download = gr.File(label="Download (zip)", elem_id="wb-export-file")
    context = [curate[name] for name in (*CONTEXT, *VIEW)]
    k = len(context)

    def user_and_filters(request, values):
        ctx = make_context(values[:k], request, local_user)
        return ctx.curator, ctx.filters

    def on_assign(request: gr.Request, *values):
        user, filters = user_and_filters(request, values)
        return team.assign(user, filters, *values[k:])

    def on_count(request: gr.Request, *values):
        user, filters = user_and_filters(request, values)
        text, waiting = team.bulk_count(user, filters, values[k])
        return text, waiting, gr.update(visible=waiting is not None), gr.update(visible=False)

    def on_confirm(request: gr.Request, waiting):
        text, batch_id = team.bulk_apply(user_of(request, local_user), waiting)
        return text, None, batch_id, gr.update(visible=False), gr.update(visible=batch_id is not None)

    def on_undo(request: gr.Request, batch_id):
        return team.undo(user_of(request, local_user), batch_id), None, gr.update(visible=False)

    def on_export(request: gr.Request, *values):
        user, filters = user_and_filters(request, values)
        return team.export(user, filters, *values[k:])

    def on_role(request: gr.Request):
        admin = team.is_admin(user_of(request, local_user))
        return gr.update(visible=admin), gr.update(choices=team.curators()) if admin else gr.skip()

    assign.click(on_assign, [*context, who, n], assign_msg)
    count.click(on_count, [*context, status], [bulk_msg, pending, confirm, undo])
    confirm.click(on_confirm, pending, [bulk_msg, pending, batch, confirm, undo])
    undo.click(on_undo, batch, [bulk_msg, batch, undo])
    export.click(on_export, [*context, kind, export_n], [export_msg, manifest, download])
    app.load(on_role, None, [tab, who])


def keys_tab() -> None:
    with gr.Tab("Keys", id="keys"):
        gr.Markdown(shortcuts_markdown(), elem_id="wb-keys")


# ------------------------------------------------------------ wiring


def _gradio_value(value):
    return gr.update(**value.kwargs) if isinstance(value, Update) else value


def make_context(values, request, local_user: str) -> Context:
    """What the page sent with an action: the target, the filters and the view settings."""
    target, status, dataset, validity, origin, run, text, sort, drafts, view, show, show_gt, stay = values
    curator = user_of(request, local_user)
    filters = Filters(
        status or ANY,
        dataset or ANY,
        validity or ANY,
        origin or ANY,
        run or ANY,
        text or "",
        sort or "id",
        curator if drafts else None,
        curator if view else None,
    )
    return Context(curator, Target.parse(target), filters, show == SELECTED_STEP, bool(show_gt), bool(stay))


class ActionCpu:
    """Server CPU of each named action (the handler's thread, from the page's values in to the
    panels out): what `bench/load.py` reports per next and accept."""

    def __init__(self):
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    @contextmanager
    def measure(self, name: str | None):
        start = time.thread_time()
        try:
            yield
        finally:
            if name:
                spent = time.thread_time() - start
                with self._lock:
                    self.seconds[name].append(spent)


def wire_curate(ui: dict, h: Handlers, local_user: str, page_load, cpu: ActionCpu) -> None:
    """Connect each curate widget to its handler: every action gets the context (target, filters,
    view settings) and the values it names, and may update any panel."""
    context = [ui[name] for name in (*CONTEXT, *VIEW)]

    def on(
        trigger,
        fn,
        extras=(),
        *,
        event_key: str | None = None,
        mode: str = "multiple",
        panels: tuple = SCREEN,
        api: str | None = None,
        group: str = CURATE,
    ):
        """`fn(ctx, *extras)` (plus the clicked element's `event_key` for HTML clicks) on `trigger`;
        it may change `panels`. `api` names the endpoint API clients (the load test) call."""
        n = len(context)
        extra_inputs = [ui[e] for e in extras]
        outputs = [ui[name] for name in panels]

        def to_gradio(out: dict):
            changed = {ui[name]: _gradio_value(value) for name, value in out.items() if name in panels}
            return changed or [gr.skip()] * len(outputs)

        def run(request: gr.Request, *values):
            with cpu.measure(api):
                return to_gradio(fn(make_context(values[:n], request, local_user), *values[n:]))

        def run_clicked(request: gr.Request, evt: gr.EventData, *values):
            """An HTML list or picture was clicked: `fn` gets what was clicked first."""
            with cpu.measure(api):
                return to_gradio(
                    fn(make_context(values[:n], request, local_user), evt._data.get(event_key), *values[n:])
                )

        return trigger(
            run if event_key is None else run_clicked,
            [*context, *extra_inputs],
            outputs,
            trigger_mode=mode,
            concurrency_id=group,
            concurrency_limit=1,
            show_progress="hidden",
            # Only the hidden target tracks progress: the page snapshots every component that
            # does, at every status change of every action.
            show_progress_on=[ui["target"]],
            api_name=api,
            api_visibility="public" if api else "undocumented",
        )

    screen_texts = ("step_text", "answer")
    on(page_load, h.load, panels=PANELS, api="load")
    for name in ("f_status", "f_dataset", "f_valid", "f_origin", "f_run", "f_sort", "f_drafts", "f_view"):
        on(ui[name].input, h.filter, screen_texts)
    on(ui["search"].submit, h.filter, screen_texts)
    on(ui["page_prev"].click, lambda ctx: h.turn_page(ctx, -1), panels=LISTED)
    on(ui["page_next"].click, lambda ctx: h.turn_page(ctx, +1), panels=LISTED)
    on(ui["list"].click, h.open_sample, screen_texts, event_key="sample")
    on(ui["open_id"].submit, h.open_sample, ("open_id", *screen_texts), api="open")
    on(ui["prev"].click, lambda ctx, *texts: h.move(ctx, -1, *texts), screen_texts)
    on(ui["next"].click, lambda ctx, *texts: h.move(ctx, +1, *texts), screen_texts, api="next")
    on(ui["show"].input, h.view, panels=EDITED)
    on(ui["show_gt"].input, h.view, panels=EDITED)
    on(ui["chain"].click, h.select_step, screen_texts, event_key="step", panels=EDITED)
    on(ui["step_prev"].click, lambda ctx, *texts: h.select_step(ctx, "prev", *texts), screen_texts, panels=EDITED)
    on(ui["step_next"].click, lambda ctx, *texts: h.select_step(ctx, "next", *texts), screen_texts, panels=EDITED)
    for op in ("add", "del", "up", "down"):
        action = {"del": "delete"}.get(op, op)
        on(
            ui[f"{op}_step"].click,
            lambda ctx, *texts, action=action: h.step_op(ctx, action, *texts),
            screen_texts,
            panels=EDITED,
        )
    on(ui["strip"].select, h.select_from_strip, screen_texts, event_key="index", panels=EDITED)
    on(ui["annot"].change, h.edit_boxes, ("annot",), mode="always_last", panels=EDITED)
    on(ui["step_text"].input, h.edit_text, ("step_text",), mode="always_last", panels=TYPED)
    on(ui["answer"].input, h.edit_answer, ("answer",), mode="always_last", panels=TYPED)
    on(ui["regions"].input, h.edit_regions, ("regions",), panels=EDITED)
    on(ui["save"].click, h.save, ("edit_note", *screen_texts))
    on(ui["rebase"].click, h.rebase)
    on(ui["discard"].click, h.discard)
    for status, *_ in DECISIONS:
        on(
            ui[status].click,
            lambda ctx, *values, status=status: h.decide(ctx, status, *values),
            ("review_note", "accept", *screen_texts),
            api=status,
        )
    on(
        ui["replace"].click,
        lambda ctx, *values: h.decide(ctx, ctx.target.replace or "accepted", *values),
        ("review_note", "accept", *screen_texts),
        api="replace",
    )
    # The live list: its own queue, so a tick never waits behind (or delays) a decision.
    on(ui["timer"].tick, h.refresh, ("mark",), mode="always_last", panels=LIVE, group="live")
    for tab in ("chain", "boxes", "checks", "history", "outputs"):
        on(ui[f"tab_{tab}"].select, lambda ctx, tab=tab: h.tab(ctx, tab))
    on(ui["history"].click, h.pick_history, event_key="rev")
    on(ui["revert"].click, h.revert)
    on(ui["output_pick"].input, h.pick_output, ("output_pick",))
    on(ui["runs_pick"].change, h.open_output, ("runs_pick", *screen_texts)).then(None, js=SHOW_OUTPUTS_TAB)
    # Then the Chain tab, clicked in the page: a Tabs output would make the page copy its whole
    # subtree at every status change of every action.
    on(ui["adopt"].click, h.adopt, panels=EDITED).then(None, js=SHOW_CHAIN_TAB)


def build_app(
    store: Store,
    *,
    default_user: str | None = None,
    pictures: PictureFiles | None = None,
    signin: SignIn | None = None,
) -> gr.Blocks:
    """The workbench app over `store`; rendered pictures go to `pictures` (default: a folder in
    Gradio's upload folder, which is what the app serves); `signin` says who is an admin."""
    pictures = pictures or PictureFiles(Path(get_upload_folder()) / "sif-views")
    signin = signin or SignIn()
    wb = Workbench(store)
    handlers = Handlers(wb, pictures, sign_out=signin.enabled)
    team = TeamActions(wb, signin, pictures.folder.parent / "sif-exports")
    local_user = default_user or getpass.getuser() or "curator"
    cpu = ActionCpu()
    with gr.Blocks(title="SIF Workbench", delete_cache=(1800, 3600)) as app:
        timer = gr.Timer(LIVE_EVERY_S)  # outside the tabs: it ticks whichever tab is shown
        with gr.Tabs(elem_id="wb-tabs"):
            curate = curate_tab(app, handlers, store, local_user, cpu, timer)
            stats_tab(handlers, team)
            team_tab(app, team, curate, local_user)
            add_runs_tab(store, curate["runs_pick"])
            keys_tab()
    app.action_cpu = cpu
    return app


def launch(
    db: str | Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    auth: list[tuple[str, str]] | None = None,
    auth_file: str | Path | None = None,
    block: bool = True,
    quiet: bool = False,
):
    """Open the store and serve the workbench; with `block=False` returns (app, url) at once.
    Sign-in checks the accounts of `auth_file`, else the store's (`sif users add`), else the
    `auth` pairs; with none of them nobody signs in."""
    store = Store.open(db)
    accounts = AuthFile(auth_file) if auth_file else StoreAccounts(store)
    signin = SignIn(accounts if auth_file or accounts.users() else None, auth)
    policy = ServePolicy(store.data_root, store.path)
    policy.activate()
    app = build_app(store, pictures=policy.pictures(), signin=signin)
    app.queue(default_concurrency_limit=4)
    if block:
        policy.stop_on_signals()
    try:
        _, url, _ = app.launch(
            server_name=host,
            server_port=port,
            auth=signin.check if signin.enabled else None,
            prevent_thread_lock=True,
            quiet=quiet,
            head=shortcuts_head(),
            css=CSS,
            footer_links=[],
            show_error=True,
            run_history=False,  # Gradio would copy every action's inputs and outputs into the browser's storage
            auth_message="SIF Workbench: sign in as a curator" if signin.enabled else None,
            **policy.launch_kwargs(),
        )
        _freeze_heap()
        if block:
            app.block_thread()
    finally:
        if block:  # stopped (Ctrl+C, SIGTERM): nothing rendered is left behind
            policy.remove_cache()
    return app, url


def _freeze_heap() -> None:
    """Move what is alive once the server runs (Gradio, the modules) out of the cyclic
    collector's sight: a 10,000-step chain makes some 300,000 objects, and every full collection
    it triggers would otherwise walk the whole heap too (it halves the time to open one)."""
    gc.collect()
    gc.freeze()
