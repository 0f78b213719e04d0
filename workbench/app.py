"""The curation workbench (Gradio): browse and filter samples, look at a chain over the picture
and its depth map, edit it with live format/reward feedback, review, compare with model outputs,
walk the revision history, and watch progress in the Stats tab.

`build_app(store)` makes the Blocks; `launch(...)` serves it (see `workbench.serving` for what
is exposed). Handlers call `workbench.service.Workbench`; the session's sample, draft and review
version live in `gr.State`, so two curators never share an unsaved edit.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from gradio_image_annotation import image_annotator

from db.schema import ORIGINS, STATUSES
from db.store import ChainRevision, ConflictError, Sample, Store, StoreError
from sif.chain import Step
from sif.draw import draw_steps
from workbench.draft import TABLE_HEADERS, Draft
from workbench.history import DIFF_COLOURS, HISTORY_HEADERS, chain_diff, history_rows
from workbench.preview import preview_markdown
from workbench.render import ALL_STEPS, load_picture
from workbench.runs_view import add_runs_tab
from workbench.service import ANY, BROWSE_HEADERS, SORTS, VALIDITY, Filters, Page, Workbench
from workbench.serving import DEFAULT_HOST, DEFAULT_PORT, ServePolicy, user_of
from workbench.shortcuts import shortcuts_head, shortcuts_markdown
from workbench.stats import compute_stats

CSS = """
#wb-strip img { object-fit: contain; }
.wb-small { font-size: 0.9em; }
"""
REVIEW_BUTTONS = {
    "accepted": ("Accept", "wb-accept"),
    "rejected": ("Reject", "wb-reject"),
    "needs_fix": ("Needs fix", "wb-needs-fix"),
}


@dataclass
class Session:
    """What one browser tab is looking at (kept in gr.State)."""

    sample: Sample | None = None
    draft: Draft | None = None
    step: int = 0
    review_version: int = 0
    page: Page | None = None
    filters: Filters = field(default_factory=Filters)
    selected_rev: int | None = None
    stored_problems: list[str] = field(default_factory=list)
    output_rev: int | None = None


def _step_choices(draft: Draft | None) -> list[str]:
    return [str(i + 1) for i in range(len(draft.steps))] if draft else []


def _show_choices(draft: Draft | None) -> list[str]:
    return [ALL_STEPS, *(f"step {i + 1}" for i in range(len(draft.steps) if draft else 0))]


def _info_markdown(s: Sample, rev: ChainRevision | None, review, draft: Draft | None) -> str:
    gt = ", ".join("[" + ", ".join(f"{v:.3f}" for v in b) + "]" for b in s.gt_boxes) or "—"
    lines = [
        f"### Sample {s.id} · {s.dataset} · `{s.source_id}` · {s.split}",
        f"**Question:** {s.question}",
        f"**Ground truth:** {s.answer} · boxes {gt}",
        f"**Chain answer:** {(draft.answer if draft else '') or '—'}",
    ]
    if rev is None:
        lines.append("**Revision:** none yet")
    else:
        lines.append(
            f"**Revision:** {rev.rev} · origin **{rev.origin}** · by {rev.author} · {rev.created_at[:19]}"
            f" · {'valid' if rev.valid else 'invalid'}"
        )
    who = f" by {review.reviewer} ({review.updated_at[:19]})" if review.version else ""
    note = f" — {review.note}" if review.note else ""
    lines.append(f"**Review:** {review.status}{who}{note}")
    if s.missing:
        lines.append("**Warning:** this sample's files were missing at import")
    return "\n\n".join(lines)


def build_app(store: Store, *, default_user: str | None = None) -> gr.Blocks:
    wb = Workbench(store)
    local_user = default_user or getpass.getuser() or "curator"

    with gr.Blocks(title="SIF Workbench") as app:
        state = gr.State(Session())
        gr.Markdown(f"## SIF Workbench · `{store.path.name}`", elem_id="wb-title")
        whoami = gr.Markdown(elem_id="wb-user")
        with gr.Tabs() as tabs:
            with gr.Tab("Curate", id="curate"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=340):
                        search = gr.Textbox(
                            label="Search question, answer and chain",
                            placeholder="words…  (key: /)",
                            elem_id="wb-search",
                        )
                        with gr.Row():
                            f_status = gr.Dropdown([ANY, *STATUSES], value=ANY, label="Status", elem_id="wb-f-status")
                            f_dataset = gr.Dropdown([ANY], value=ANY, label="Dataset", elem_id="wb-f-dataset")
                            f_valid = gr.Dropdown(list(VALIDITY), value=ANY, label="Validity", elem_id="wb-f-valid")
                        with gr.Row():
                            f_origin = gr.Dropdown(
                                [ANY, "none", *ORIGINS], value=ANY, label="Origin", elem_id="wb-f-origin"
                            )
                            f_run = gr.Dropdown([ANY], value=ANY, label="Run", elem_id="wb-f-run")
                            f_sort = gr.Dropdown(list(SORTS), value="id", label="Sort", elem_id="wb-f-sort")
                        count_md = gr.Markdown(elem_id="wb-count")
                        listing = gr.Dataframe(
                            headers=BROWSE_HEADERS, interactive=False, elem_id="wb-list", max_height=560, wrap=False
                        )
                        with gr.Row():
                            page_prev = gr.Button("◀ page", size="sm", elem_id="wb-page-prev")
                            page_md = gr.Markdown(elem_id="wb-page")
                            page_next = gr.Button("page ▶", size="sm", elem_id="wb-page-next")
                    with gr.Column(scale=5):
                        with gr.Row():
                            prev_btn = gr.Button("◀ previous (k)", size="sm", elem_id="wb-prev")
                            next_btn = gr.Button("next (j) ▶", size="sm", elem_id="wb-next")
                            show = gr.Radio([ALL_STEPS], value=ALL_STEPS, label="Show", elem_id="wb-show", scale=3)
                            show_gt = gr.Checkbox(True, label="Ground truth (g)", elem_id="wb-gt")
                        with gr.Row():
                            image = gr.Image(
                                label="Image",
                                interactive=False,
                                elem_id="wb-image",
                                format="png",
                                buttons=["fullscreen"],
                            )
                            depth = gr.Image(
                                label="Depth (near = red, far = blue)",
                                interactive=False,
                                elem_id="wb-depth",
                                format="png",
                                buttons=["fullscreen"],
                            )
                        strip = gr.Image(
                            label="Step strip",
                            interactive=False,
                            elem_id="wb-strip",
                            height=120,
                            format="png",
                            buttons=["fullscreen"],
                        )
                        info = gr.Markdown(elem_id="wb-info")
                        with gr.Row(equal_height=True):
                            review_note = gr.Textbox(label="Review note", elem_id="wb-review-note", scale=3)
                            review_btns = {
                                status: gr.Button(
                                    f"{label} ({key})",
                                    elem_id=eid,
                                    size="sm",
                                    variant="primary" if status == "accepted" else "secondary",
                                )
                                for (status, (label, eid)), key in zip(REVIEW_BUTTONS.items(), "axf")
                            }
                        review_msg = gr.Markdown(elem_id="wb-review-msg")
                        with gr.Tabs() as panels:
                            with gr.Tab("Edit", id="edit"):
                                with gr.Row():
                                    step_radio = gr.Radio([], label="Step being edited", elem_id="wb-step", scale=4)
                                    step_prev = gr.Button("◀ step ([)", size="sm", elem_id="wb-step-prev")
                                    step_next = gr.Button("step (]) ▶", size="sm", elem_id="wb-step-next")
                                with gr.Row():
                                    add_step = gr.Button("+ step after", size="sm", elem_id="wb-add-step")
                                    del_step = gr.Button(
                                        "delete step", size="sm", variant="stop", elem_id="wb-del-step"
                                    )
                                    up_step = gr.Button("move up", size="sm", elem_id="wb-up-step")
                                    down_step = gr.Button("move down", size="sm", elem_id="wb-down-step")
                                with gr.Row():
                                    with gr.Column(scale=3):
                                        annot = image_annotator(
                                            None,
                                            label="Drag, resize or draw this step's boxes (Delete removes the selected box)",
                                            sources=[],
                                            show_clear_button=False,
                                            show_download_button=False,
                                            show_remove_button=True,
                                            disable_edit_boxes=True,
                                            box_min_size=4,
                                            elem_id="wb-annot",
                                            boxes_alpha=0.15,
                                        )
                                    with gr.Column(scale=2):
                                        step_text = gr.Textbox(label="Step text", lines=3, elem_id="wb-step-text")
                                        answer = gr.Textbox(label="Answer", elem_id="wb-answer")
                                        feedback = gr.Markdown(elem_id="wb-feedback")
                                regions = gr.Dataframe(
                                    headers=TABLE_HEADERS,
                                    datatype=["number"] * 5 + ["str"],
                                    interactive=True,
                                    column_count=6,
                                    elem_id="wb-regions",
                                    label="This step's regions: normalized boxes, depth 0 = near. "
                                    "A typed depth is 'manual'; type 'auto' to recompute it from the map.",
                                )
                                with gr.Row():
                                    edit_note = gr.Textbox(
                                        label="Note for this edit (optional)", scale=3, elem_id="wb-edit-note"
                                    )
                                    save = gr.Button("Save edit (Ctrl+S)", variant="primary", elem_id="wb-save")
                                    discard = gr.Button("Discard edit", elem_id="wb-discard")
                                    rebase = gr.Button(
                                        "Keep my edit on top of theirs", visible=False, elem_id="wb-rebase"
                                    )
                                save_msg = gr.Markdown(elem_id="wb-save-msg")
                                conflict = gr.HighlightedText(
                                    label="Their current chain → your edit",
                                    visible=False,
                                    color_map=DIFF_COLOURS,
                                    combine_adjacent=False,
                                    elem_id="wb-conflict-diff",
                                )
                            with gr.Tab("History", id="history"):
                                history = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, elem_id="wb-history")
                                gr.Markdown("Select a revision to see how the current chain differs from it.")
                                diff = gr.HighlightedText(
                                    label="Diff (selected → current)",
                                    color_map=DIFF_COLOURS,
                                    combine_adjacent=False,
                                    elem_id="wb-diff",
                                    show_legend=True,
                                )
                                with gr.Row():
                                    revert_btn = gr.Button("Revert to the selected revision", elem_id="wb-revert")
                                    history_msg = gr.Markdown(elem_id="wb-history-msg")
                            with gr.Tab("Model outputs", id="outputs"):
                                output_pick = gr.Dropdown(
                                    [],
                                    label="Rollouts and predictions recorded for this sample",
                                    elem_id="wb-output-pick",
                                )
                                with gr.Row():
                                    out_image = gr.Image(
                                        label="Output over the image",
                                        interactive=False,
                                        format="png",
                                        elem_id="wb-out-image",
                                    )
                                    out_depth = gr.Image(
                                        label="Output over the depth map",
                                        interactive=False,
                                        format="png",
                                        elem_id="wb-out-depth",
                                    )
                                out_strip = gr.Image(
                                    label="Output step strip",
                                    interactive=False,
                                    height=120,
                                    format="png",
                                    elem_id="wb-out-strip",
                                )
                                with gr.Row():
                                    out_text = gr.Code(label="Output text", language=None, elem_id="wb-out-text")
                                    out_feedback = gr.Markdown(elem_id="wb-out-feedback")
                                adopt = gr.Button("Adopt this output as my edit", elem_id="wb-adopt")
            with gr.Tab("Stats", id="stats") as stats_tab:
                stats_refresh = gr.Button("Refresh", size="sm", elem_id="wb-stats-refresh")
                stats_md = gr.Markdown(elem_id="wb-stats-summary")
                with gr.Row():
                    plot_status = gr.BarPlot(x="status", y="samples", title="Review progress", elem_id="wb-plot-status")
                    plot_depth = gr.BarPlot(x="depth", y="samples", title="Depth consistency", elem_id="wb-plot-depth")
                with gr.Row():
                    plot_hiou = gr.BarPlot(
                        x="final-step HIoU",
                        y="samples",
                        title="Final-step HIoU vs ground truth",
                        elem_id="wb-plot-hiou",
                        sort="x",
                    )
                    plot_len = gr.BarPlot(x="steps", y="samples", title="Chain length", elem_id="wb-plot-length")
            with gr.Tab("Keys", id="keys"):
                gr.Markdown(shortcuts_markdown(), elem_id="wb-keys")

        filters = [f_status, f_dataset, f_valid, f_origin, f_run, search, f_sort]
        editor_out = [annot, regions, step_radio, step_text, answer, feedback]
        views_out = [image, depth, strip, show]
        open_out = [
            state,
            info,
            *views_out,
            *editor_out,
            save_msg,
            rebase,
            conflict,
            review_note,
            review_msg,
            history,
            diff,
            history_msg,
            output_pick,
            out_image,
            out_depth,
            out_strip,
            out_text,
            out_feedback,
        ]
        browse_out = [state, listing, count_md, page_md]

        # ------------------------------------------------------------ view helpers

        def views(sess: Session, show_v, gt_v) -> dict:
            sample, draft = sess.sample, sess.draft
            choices_ = _show_choices(draft)
            show_v = show_v if show_v in choices_ else ALL_STEPS
            v = wb.render(sample, draft.to_chain(), show=show_v, show_gt=gt_v)
            return {image: v.image, depth: v.depth, strip: v.strip, show: gr.update(choices=choices_, value=show_v)}

        def editor(sess: Session, *, with_annotator: bool = True) -> dict:
            sample, draft = sess.sample, sess.draft
            k = min(max(sess.step, 0), max(len(draft.steps) - 1, 0))
            sess.step = k
            out = {
                regions: draft.table_rows(k),
                step_radio: gr.update(choices=_step_choices(draft), value=str(k + 1) if draft.steps else None),
                step_text: draft.steps[k].text if draft.steps else "",
                answer: draft.answer,
                feedback: feedback_text(sess),
            }
            if with_annotator:
                picture = load_picture(wb.image_path(sample), width=sample.width, height=sample.height)
                others = [s if i != k else Step((), s.text) for i, s in enumerate(draft.to_chain().steps)]
                W, H = picture.size
                out[annot] = {"image": draw_steps(picture, others), "boxes": draft.annotator_boxes(k, W, H)}
            return out

        def feedback_text(sess: Session) -> str:
            text = preview_markdown(wb.feedback(sess.sample, sess.draft.to_chain()))
            if sess.stored_problems and not sess.draft.dirty:
                text += (
                    "\n\n**The stored revision has problems** (the editor shows what could be recovered; "
                    "saving stores it in canonical form):\n" + "\n".join(f"- {p}" for p in sess.stored_problems)
                )
            return text

        def outputs_panel(sess: Session, rev: int | None) -> dict:
            outs = wb.store.run_revisions(sess.sample.id) if sess.sample else []
            pick = [(f"{r.run_id} · {r.origin} · rev {r.rev} · {r.author}", r.rev) for r in outs]
            chosen = next((r for r in outs if r.rev == rev), outs[-1] if outs else None)
            sess.output_rev = chosen.rev if chosen else None
            if chosen is None:
                return {
                    output_pick: gr.update(choices=[], value=None),
                    out_image: None,
                    out_depth: None,
                    out_strip: None,
                    out_text: "",
                    out_feedback: "No rollouts or predictions recorded for this sample.",
                }
            v = wb.render(sess.sample, chosen.chain)
            fb = preview_markdown(wb.feedback(sess.sample, chosen.chain))
            return {
                output_pick: gr.update(choices=pick, value=chosen.rev),
                out_image: v.image,
                out_depth: v.depth,
                out_strip: v.strip,
                out_text: chosen.raw_text or chosen.text,
                out_feedback: fb,
            }

        def open_sample(sess: Session, sample_id, show_v, gt_v, step: int = 0) -> dict:
            if sample_id is None:
                return {state: sess}
            o = wb.open(int(sample_id))
            sess.sample, sess.draft, sess.step = o.sample, o.draft, step  # editor() keeps the step in range
            sess.review_version, sess.selected_rev = o.review.version, None
            sess.stored_problems = list(o.revision.problems) if o.revision else []
            out = {
                state: sess,
                info: _info_markdown(o.sample, o.revision, o.review, o.draft),
                save_msg: "",
                rebase: gr.update(visible=False),
                conflict: gr.update(visible=False, value=None),
                review_note: o.review.note,
                review_msg: "",
                history: history_rows(wb.store.history(o.sample.id)),
                diff: None,
                history_msg: "",
            }
            out.update(views(sess, show_v, gt_v))
            out.update(editor(sess))
            out.update(outputs_panel(sess, None))
            return out

        def refreshed_after_edit(sess: Session, show_v, gt_v, *, annotator: bool) -> dict:
            out = {state: sess}
            out.update(views(sess, show_v, gt_v))
            out.update(editor(sess, with_annotator=annotator))
            return out

        def browse(sess: Session, page_no) -> dict:
            page = wb.browse(sess.filters, page_no)
            sess.page = page
            return {
                state: sess,
                listing: page.rows or [[""] * len(BROWSE_HEADERS)],
                count_md: f"**{page.total}** matching of {store.count()} samples",
                page_md: f"page {page.page + 1} / {page.pages}",
            }

        # ------------------------------------------------------------ load, browse, navigate

        def on_load(sess: Session, show_v, gt_v, request: gr.Request):
            out = browse(sess, 0)
            out[whoami] = f"Signed in as **{user_of(request, local_user)}**"
            fresh = wb.choices()  # datasets and runs added since the app started
            out[f_dataset] = gr.update(choices=fresh["dataset"])
            out[f_run] = gr.update(choices=fresh["run"])
            first = sess.page.ids[0] if sess.page.ids else None
            out.update(open_sample(sess, first, show_v, gt_v))
            return out

        app.load(on_load, [state, show, show_gt], [*browse_out, whoami, f_dataset, f_run, *open_out])

        def on_filter(sess: Session, *fvals):
            sess.filters = Filters(*fvals)
            return browse(sess, 0)

        for comp in filters:
            (comp.submit if comp is search else comp.input)(on_filter, [state, *filters], browse_out)

        def on_page(delta):
            def handler(sess: Session):
                current = sess.page.page if sess.page else 0
                return browse(sess, current + delta)

            return handler

        page_prev.click(on_page(-1), [state], browse_out)
        page_next.click(on_page(1), [state], browse_out)

        def on_select(sess: Session, show_v, gt_v, evt: gr.SelectData):
            row = evt.row_value if evt.row_value else None
            sid = row[0] if row and row[0] not in ("", None) else None
            if sid is None and sess.page and evt.index and evt.index[0] < len(sess.page.ids):
                sid = sess.page.ids[evt.index[0]]
            return open_sample(sess, sid, show_v, gt_v)

        listing.select(on_select, [state, show, show_gt], open_out)

        def on_step_sample(delta):
            def handler(sess: Session, show_v, gt_v):
                page = sess.page or wb.browse(sess.filters, 0)
                page, sid = wb.step(sess.filters, page, sess.sample.id if sess.sample else None, delta)
                moved = page is not sess.page
                sess.page = page
                out = open_sample(sess, sid, show_v, gt_v)
                if moved:
                    out.update({listing: page.rows, page_md: f"page {page.page + 1} / {page.pages}"})
                return out

            return handler

        nav_out = [*open_out, listing, page_md]
        next_btn.click(on_step_sample(1), [state, show, show_gt], nav_out)
        prev_btn.click(on_step_sample(-1), [state, show, show_gt], nav_out)

        def on_view(sess: Session, show_v, gt_v):
            return views(sess, show_v, gt_v) if sess.sample else {}

        show.input(on_view, [state, show, show_gt], views_out)
        show_gt.input(on_view, [state, show, show_gt], views_out)

        # ------------------------------------------------------------ edit

        def on_annot(sess: Session, value, show_v, gt_v):
            if not sess.draft or not value or value.get("image") is None:
                return {}
            img = value["image"]
            H, W = img.shape[:2]
            before = len(sess.draft.steps[sess.step].regions) if sess.draft.steps else 0
            sess.draft.apply_annotator(sess.step, value.get("boxes") or [], W, H, wb.depth_map(sess.sample))
            after = len(sess.draft.steps[sess.step].regions) if sess.draft.steps else 0
            # A drawn box is relabelled with its step's number and colour by re-sending the annotator.
            return refreshed_after_edit(sess, show_v, gt_v, annotator=after > before)

        edit_out = [state, *views_out, *editor_out]
        annot.change(on_annot, [state, annot, show, show_gt], edit_out, trigger_mode="always_last")

        def on_regions(sess: Session, rows, show_v, gt_v):
            if not sess.draft:
                return {}
            data = rows.values.tolist() if hasattr(rows, "values") else list(rows or [])
            errors = sess.draft.apply_table(sess.step, data, wb.depth_map(sess.sample))
            out = refreshed_after_edit(sess, show_v, gt_v, annotator=True)
            if errors:
                out[feedback] = "**Rows skipped:** " + "; ".join(errors) + "\n\n" + out[feedback]
            return out

        regions.input(on_regions, [state, regions, show, show_gt], edit_out)

        def on_text(sess: Session, text):
            if not sess.draft:
                return {}
            sess.draft.set_text(sess.step, text)
            return {
                state: sess,
                feedback: feedback_text(sess),
                strip: wb.render(sess.sample, sess.draft.to_chain()).strip,
            }

        step_text.input(on_text, [state, step_text], [state, feedback, strip], trigger_mode="always_last")

        def on_answer(sess: Session, text):
            if not sess.draft:
                return {}
            sess.draft.set_answer(text)
            return {state: sess, feedback: feedback_text(sess)}

        answer.input(on_answer, [state, answer], [state, feedback], trigger_mode="always_last")

        def step_action(action):
            def handler(sess: Session, value, show_v, gt_v):
                if not sess.draft:
                    return {}
                dmap = wb.depth_map(sess.sample)
                if action == "pick":
                    sess.step = int(value) - 1 if value else 0
                elif action in ("prev", "next"):
                    sess.step = min(
                        max(sess.step + (1 if action == "next" else -1), 0), max(len(sess.draft.steps) - 1, 0)
                    )
                elif action == "add":
                    sess.step = sess.draft.add_step(sess.step if sess.draft.steps else -1, dmap)
                elif action == "delete":
                    sess.step = max(sess.draft.delete_step(sess.step), 0)
                else:
                    sess.step = sess.draft.move_step(sess.step, -1 if action == "up" else 1)
                return refreshed_after_edit(sess, show_v, gt_v, annotator=True)

            return handler

        step_radio.input(step_action("pick"), [state, step_radio, show, show_gt], edit_out)
        for btn, action in (
            (step_prev, "prev"),
            (step_next, "next"),
            (add_step, "add"),
            (del_step, "delete"),
            (up_step, "up"),
            (down_step, "down"),
        ):
            btn.click(step_action(action), [state, step_radio, show, show_gt], edit_out)

        def on_save(sess: Session, note, answer_v, text_v, show_v, gt_v, request: gr.Request):
            if not sess.draft:
                return {}
            # What is on screen wins: the last keystrokes' events may not have reached the draft yet.
            sess.draft.set_answer(answer_v)
            sess.draft.set_text(sess.step, text_v)
            author = user_of(request, local_user)
            try:
                saved = wb.save(sess.draft, author, note)
            except ConflictError as exc:
                theirs = exc.current
                return {
                    save_msg: f"**Conflict — not saved.** {exc}. Your edit is still here; compare it with "
                    "theirs below, then keep yours on top of theirs or discard it.",
                    rebase: gr.update(visible=True),
                    conflict: gr.update(visible=True, value=chain_diff(theirs.text, wb.text_of(sess.draft.to_chain()))),
                }
            except StoreError as exc:
                return {save_msg: f"**Not saved:** {exc}"}
            out = open_sample(sess, saved.sample_id, show_v, gt_v, step=sess.step)  # the curator stays on the step
            out.update(browse(sess, sess.page.page if sess.page else 0))
            problems = "" if saved.valid else f" — {len(saved.problems)} format problem(s) remain"
            out[save_msg] = f"**Saved** revision {saved.rev} by {author}{problems}"
            return out

        save.click(
            on_save, [state, edit_note, answer, step_text, show, show_gt], [*open_out, listing, count_md, page_md]
        )

        def on_rebase(sess: Session):
            current = wb.store.current_chain(sess.sample.id) if sess.sample else None
            if sess.draft is None or current is None:
                return {}
            sess.draft.base_rev = current.rev
            return {
                state: sess,
                rebase: gr.update(visible=False),
                conflict: gr.update(visible=False),
                save_msg: f"Your edit now builds on revision {current.rev} (theirs stays in the history). Save again to keep it.",
            }

        rebase.click(on_rebase, [state], [state, rebase, conflict, save_msg])

        def on_discard(sess: Session, show_v, gt_v):
            return open_sample(sess, sess.sample.id if sess.sample else None, show_v, gt_v)

        discard.click(on_discard, [state, show, show_gt], open_out)

        def on_adopt(sess: Session, show_v, gt_v):
            chosen = (
                next((r for r in wb.store.run_revisions(sess.sample.id) if r.rev == sess.output_rev), None)
                if sess.sample
                else None
            )
            if chosen is None:
                return {}
            base = sess.draft.base_rev if sess.draft else None
            sess.draft = Draft.from_chain(sess.sample.id, base, chosen.chain, wb.depth_map(sess.sample))
            sess.draft.dirty, sess.step = True, 0
            out = refreshed_after_edit(sess, show_v, gt_v, annotator=True)
            out[save_msg] = (
                f"Loaded {chosen.origin} rev {chosen.rev} of run {chosen.run_id} into the editor; save to keep it."
            )
            out[panels] = gr.Tabs(selected="edit")
            return out

        adopt.click(on_adopt, [state, show, show_gt], [*edit_out, save_msg, panels])

        def on_output_pick(sess: Session, rev):
            return {state: sess, **outputs_panel(sess, rev)}

        output_pick.input(
            on_output_pick,
            [state, output_pick],
            [state, output_pick, out_image, out_depth, out_strip, out_text, out_feedback],
        )

        # ------------------------------------------------------------ review

        def review_action(status):
            def handler(sess: Session, note, request: gr.Request):
                if not sess.sample:
                    return {}
                reviewer = user_of(request, local_user)
                try:
                    r = wb.review(sess.sample.id, status, reviewer, note, sess.review_version)
                except ConflictError as exc:
                    return {review_msg: f"**Conflict — not saved.** {exc}"}
                sess.review_version = r.version
                out = browse(sess, sess.page.page if sess.page else 0)
                out[review_msg] = f"**{status}** by {reviewer}"
                out[info] = _info_markdown(sess.sample, wb.store.current_chain(sess.sample.id), r, sess.draft)
                return out

            return handler

        for status, btn in review_btns.items():
            btn.click(review_action(status), [state, review_note], [*browse_out, review_msg, info])

        # ------------------------------------------------------------ history

        def on_history_select(sess: Session, evt: gr.SelectData):
            if not sess.sample:
                return {}
            row = evt.row_value or []
            rev = int(row[0]) if row and str(row[0]).strip() not in ("",) else None
            old = wb.revision(sess.sample.id, rev) if rev is not None else None
            current = wb.store.current_chain(sess.sample.id)
            if old is None or current is None:
                return {}
            sess.selected_rev = rev
            return {
                state: sess,
                diff: chain_diff(old.text, current.text),
                history_msg: f"revision {rev} ({old.origin} by {old.author}) → current {current.rev}",
            }

        history.select(on_history_select, [state], [state, diff, history_msg])

        def on_revert(sess: Session, show_v, gt_v, request: gr.Request):
            if not sess.sample or sess.selected_rev is None:
                return {history_msg: "Select a revision in the table first."}
            try:
                r = wb.revert(sess.sample.id, sess.selected_rev, user_of(request, local_user))
            except StoreError as exc:
                return {history_msg: f"**Error:** {exc}"}
            out = open_sample(sess, sess.sample.id, show_v, gt_v)
            out.update(browse(sess, sess.page.page if sess.page else 0))
            out[history_msg] = f"**Reverted:** revision {r.rev} restores revision {r.parent}"
            return out

        revert_btn.click(on_revert, [state, show, show_gt], [*open_out, listing, count_md, page_md])

        # ------------------------------------------------------------ stats

        def on_stats():
            s = compute_stats(store)
            return s.summary_markdown(), s.status, s.depth, s.hiou, s.length

        stats_out = [stats_md, plot_status, plot_depth, plot_hiou, plot_len]
        stats_refresh.click(on_stats, None, stats_out)
        stats_tab.select(on_stats, None, stats_out)

        add_runs_tab(
            wb,
            tabs,
            inputs=[state, show, show_gt],
            outputs=[*open_out, panels],
            open_prediction=lambda sess, show_v, gt_v, sid, rev: {
                **open_sample(sess, sid, show_v, gt_v),
                **outputs_panel(sess, rev),
                panels: gr.Tabs(selected="outputs"),
            },
        )
    return app


def launch(
    db: str | Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    auth: list[tuple[str, str]] | None = None,
    block: bool = True,
    quiet: bool = False,
):
    """Open the store and serve the workbench; with `block=False` returns (app, url) at once."""
    store = Store.open(db)
    policy = ServePolicy(store.data_root, store.path)
    policy.activate()
    app = build_app(store)
    app.queue(default_concurrency_limit=4)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        prevent_thread_lock=not block,
        quiet=quiet,
        head=shortcuts_head(),
        css=CSS,
        footer_links=[],
        auth_message="SIF Workbench: sign in as a curator" if auth else None,
        **policy.launch_kwargs(),
    )
    return app, url
