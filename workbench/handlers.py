"""What each workbench action does, as plain Python: the Gradio layer passes the widgets' values
in and shows what comes back, so this logic is tested without a browser.

Every action names its target: the sample, revision, review version and step that were on the
curator's screen when the key was pressed (`Target`, kept in a hidden field the page sends with
every action). Nothing on the server decides what an action applies to; an action whose ids
are no longer current is refused with a message. Unsaved edits live in the store as the
curator's draft of the sample, so leaving a sample (keys, a row, a filter, a reload) never drops
them: they come back when the curator returns.

Each handler returns a dict from panel name (`PANELS`) to its new value; panels left out keep
what they show. Values are plain: HTML strings, picture file paths, the box editor's dict, and
`Update` for a widget's choices, label or visibility.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from db.store import ChainRevision, ConflictError, Review, Sample, StaleRevisionError, StoreError
from workbench import views
from workbench.draft import Draft
from workbench.history import chain_diff, history_html
from workbench.render import DRAW_WINDOW, STRIP_GAP, STRIP_HEIGHT, STRIP_WINDOW, PictureFiles, window
from workbench.service import ANY, Filters, Workbench
from workbench.stats import compute_stats

ALL_STEPS, SELECTED_STEP = "all steps", "selected step"
ACCEPT, SAVE_AND_ACCEPT = "Accept (a)", "Save and accept (a)"
REPLACE, REBASE = "Replace their decision", "Keep my edit on top of theirs"
DECIDED = {"accepted": "Accepted", "rejected": "Rejected", "needs_fix": "Marked as needing a fix"}
TABS = ("chain", "boxes", "checks", "history", "outputs")
PANELS = (
    "target",
    "info",
    "message",
    "annot",
    "depth",
    "strip",
    "picture_note",
    "chain",
    "checks",
    "step_text",
    "answer",
    "regions",
    "feedback",
    "accept",
    "review_note",
    "conflict",
    "rebase",
    "replace",
    "list",
    "count",
    "page_info",
    "history",
    "diff",
    "history_msg",
    "output_pick",
    "out_image",
    "out_depth",
    "out_strip",
    "out_text",
    "out_feedback",
    "f_dataset",
    "f_run",
    "f_view",
    "whoami",
)
# What a kind of action may change (a subset of PANELS): the page updates only those.
SCREEN = tuple(p for p in PANELS if p not in ("f_dataset", "f_run", "f_view", "whoami"))  # all but what loading sets
TYPED = ("target", "message", "chain", "checks", "feedback", "accept")
EDITED = (*TYPED, "annot", "depth", "strip", "picture_note", "step_text", "answer", "regions")
LISTED = ("target", "message", "list", "count", "page_info")
# What the tool tabs not shown hold once a sample is opened (a tab is drawn when it is opened).
# Opening a sample sends every panel: one it left out would cost Gradio a new component.
HIDDEN_TABS: dict[str, Any] = {
    "regions": [],
    "feedback": "",
    "history": "",
    "diff": None,
    "history_msg": "",
    "output_pick": None,
    "out_image": None,
    "out_depth": None,
    "out_strip": None,
    "out_text": "",
    "out_feedback": "",
}
EMPTY_STORE = "This store has no samples yet: import some (sif import …), or try the demo (sif workbench --demo)."


@dataclass
class Update:
    """A change to a widget beyond its value: its value with new choices, label or visibility."""

    kwargs: dict


def update(**kwargs) -> Update:
    return Update(kwargs)


@dataclass
class Target:
    """What the curator's screen shows: every action carries it back."""

    sample: int | None = None
    rev: int = 0  # the current revision as shown (0: no chain)
    version: int = 0  # the review's version as shown
    step: int = 0  # the selected step
    layout: int = 0  # the draft's step layout as shown (step indices refer to it)
    draft: bool = False  # the screen shows an unsaved edit (the accept button says "Save and accept")
    page: int = 0  # the page of the list shown
    tab: str = "chain"  # the tool tab shown
    history_rev: int | None = None
    output_rev: int | None = None
    since: float = 0.0  # when the list was loaded: "next" skips what others decided after it
    replace: str = ""  # a decision waiting for the curator to confirm it replaces someone else's
    alerts: bool = False  # the conflict diff or the rebase / replace buttons are shown
    label: int = -2  # the step the step-text field's label names (-1: none; -2: not known)

    @classmethod
    def parse(cls, text: str | None) -> Target:
        """The target sent by the page; anything unreadable is 'nothing open'."""
        try:
            data = json.loads(text or "{}")
        except (TypeError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {f.name: f.type for f in fields(cls)}
        out = cls()
        for key, value in data.items():
            if key not in known:
                continue
            if key == "tab":
                out.tab = value if value in TABS else "chain"
            elif key in ("draft", "alerts"):
                setattr(out, key, bool(value))
            elif key == "replace":
                out.replace = value if value in DECIDED else ""
            elif key == "since":
                try:
                    out.since = float(value)
                except (TypeError, ValueError):
                    continue
            elif value is None or isinstance(value, bool):
                continue
            else:
                try:
                    setattr(out, key, int(value))
                except (TypeError, ValueError):
                    continue
        return out

    def dump(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class Context:
    """Who acts, and what the page sent with the action besides its own values."""

    curator: str
    target: Target = field(default_factory=Target)
    filters: Filters = field(default_factory=Filters)
    only_selected: bool = False
    show_gt: bool = True
    stay: bool = False


def _msg(text: str, kind: str = "info") -> dict:
    return {"message": views.message(text, kind)}


class Handlers:
    def __init__(self, wb: Workbench, pictures: PictureFiles, *, sign_out: bool = False):
        self.wb = wb
        self.sign_out = sign_out  # curators signed in: offer to sign out
        self.store = wb.store
        self.pictures = pictures

    # ------------------------------------------------------------ page, list and navigation

    def load(self, ctx: Context) -> dict:
        """The page opened (or reloaded): the filters' choices, the list, and its first sample."""
        fresh = self.wb.choices()
        queued = bool(self.store.queue(ctx.curator, limit=1))
        ctx.filters.queue_of = ctx.curator if queued else None  # "My queue" first, for a curator who has one
        out = {
            "whoami": f"<b>SIF Workbench</b> · {views.esc(self.store.path.name)} · Signed in as "
            f"<b>{views.esc(ctx.curator)}</b>"
            # Gradio's /logout ends the session and shows the sign-in page again.
            + (' · <a href="/logout" id="wb-signout">Sign out</a>' if self.sign_out else ""),
            "f_dataset": update(choices=fresh["dataset"], value=ANY),
            "f_run": update(choices=fresh["run"], value=ANY),
            "f_view": queued,
        }
        drafts = self.store.count(draft_of=ctx.curator)
        note = (
            f"You have unsaved edits of {drafts} sample(s), kept for you: tick “only my unsaved edits” to list them."
            if drafts
            else ""
        )
        out.update(self._open_first(ctx, note))
        return out

    def filter(self, ctx: Context, step_text=None, answer=None) -> dict:
        """A filter or the sort changed: the list from its top, and its first match opened."""
        self._capture(ctx, step_text, answer)
        return self._open_first(ctx)

    def refresh(self, ctx: Context, seen: str | None = None) -> dict:
        """The live list (a timer): the list and counts again, only when the store changed since
        `seen` (the change mark the page last got), so an idle page costs one small query."""
        mark = self.store_mark()
        if mark == (seen or ""):
            return {}
        out = self._listing(ctx, ctx.target.page, ctx.target.sample)
        out["mark"] = mark
        return out

    def store_mark(self) -> str:
        """Changes when anyone decides, edits or is assigned something: the latest review and
        revision, and the size of the queues."""
        row = self.store.conn.execute(
            "SELECT (SELECT MAX(updated_at) FROM reviews), (SELECT MAX(id) FROM chain_revisions),"
            " (SELECT COUNT(*) FROM assignments), (SELECT COUNT(*) FROM second_reviews WHERE status IS NULL)"
        ).fetchone()
        return "|".join(map(str, row))

    def turn_page(self, ctx: Context, delta: int) -> dict:
        t = ctx.target
        page = self.wb.browse(ctx.filters, t.page + delta)
        t.page = page.page
        out = self._listing(ctx, page.page, t.sample)
        out["target"] = t.dump()
        return out

    def open_sample(self, ctx: Context, sample_id, step_text=None, answer=None) -> dict:
        """A row of the list was clicked."""
        try:
            sample_id = int(sample_id)
            self.store.get_sample(sample_id)
        except (TypeError, ValueError, StoreError):
            return _msg("That sample is no longer in the store.", "warn")
        self._capture(ctx, step_text, answer)
        return self._show(ctx, sample_id)

    def open_output(self, ctx: Context, picked, step_text=None, answer=None) -> dict:
        """A model output picked elsewhere (a wrong prediction in the Runs tab, as JSON `{"sample",
        "rev"}`): its sample, with that output shown in the Model outputs tab."""
        try:
            data = json.loads(picked or "{}")
            sample_id, rev = int(data["sample"]), data.get("rev")
            self.store.get_sample(sample_id)
        except (TypeError, ValueError, KeyError, StoreError):
            return _msg("That sample is no longer in the store.", "warn")
        self._capture(ctx, step_text, answer)
        ctx.target.tab = "outputs"
        out = self._show(ctx, sample_id)
        t = ctx.target
        t.output_rev = rev if isinstance(rev, int) else None
        out.update(self._outputs(t, sample_id))
        out["target"] = t.dump()
        return out

    def move(self, ctx: Context, delta: int, step_text=None, answer=None) -> dict:
        """j / k: the next / previous sample of the filtered, sorted list, from the one on screen."""
        self._capture(ctx, step_text, answer)
        current = ctx.target.sample
        target = self._free_after(ctx, current) if delta > 0 else self.wb.neighbour(ctx.filters, current, delta)
        if target is None:
            if current is None:
                return self._nothing(ctx)
            return _msg(f"That is the {'last' if delta > 0 else 'first'} sample of this list.")
        return self._show(ctx, target)

    def view(self, ctx: Context) -> dict:
        """Show all steps or the selected one; ground truth on or off."""
        sample = self._sample(ctx)
        if sample is None:
            return {}
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        out = self._pictures(ctx, sample, draft, ctx.target.step)
        del out["_drawn"]
        return out

    # ------------------------------------------------------------ editing

    def select_step(self, ctx: Context, step, step_text=None, answer=None) -> dict:
        """A step of the list or the strip was clicked, or [ / ] pressed ("prev" / "next")."""
        sample = self._sample(ctx)
        if sample is None:
            return {}
        self._capture(ctx, step_text, answer)
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        k = ctx.target.step
        if step == "prev":
            k -= 1
        elif step == "next":
            k += 1
        else:
            try:
                k = int(step)
            except (TypeError, ValueError):
                return {}
        k = min(max(k, 0), max(len(draft.steps) - 1, 0))
        return self._editor(ctx, sample, draft, k)

    def select_from_strip(self, ctx: Context, index, step_text=None, answer=None) -> dict:
        """A click on the step strip at pixel `index` = [x, y]: the step of that thumbnail."""
        sample = self._sample(ctx)
        if sample is None or not index:
            return {}
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        W, H = self.wb.picture(sample).size
        thumb = max(1, round(W * STRIP_HEIGHT / H)) + STRIP_GAP
        shown = window(len(draft.steps), ctx.target.step, STRIP_WINDOW)
        try:
            step = shown.start + int(index[0]) // thumb
        except (TypeError, ValueError, IndexError):
            return {}
        return self.select_step(ctx, min(step, shown.stop - 1), step_text, answer)

    def step_op(self, ctx: Context, op: str, step_text=None, answer=None) -> dict:
        """Add a step after the selected one, delete it, or move it up or down."""
        sample = self._sample(ctx)
        if sample is None:
            return _msg("No sample is open.")
        self._capture(ctx, step_text, answer)
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        if not self._same_layout(ctx, draft):
            return self._layout_moved(ctx, sample, draft)
        k = min(ctx.target.step, max(len(draft.steps) - 1, 0))
        if op == "add":
            k = draft.add_step(k if draft.steps else -1, self.wb.depth_map(sample))
        elif op == "delete":
            if not draft.steps:
                return _msg("There is no step to delete.")
            k = max(draft.delete_step(k), 0)
        elif op in ("up", "down"):
            k = draft.move_step(k, -1 if op == "up" else 1)
        if draft.dirty:
            self.wb.keep_draft(ctx.curator, draft, k)
        return self._editor(ctx, sample, draft, k)

    def edit_boxes(self, ctx: Context, value) -> dict:
        """The box editor changed: the selected step's boxes (pixels of the picture it shows)."""
        sample = self._sample(ctx)
        if sample is None or not value or value.get("image") is None:
            return {}
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        k = ctx.target.step
        if not 0 <= k < len(draft.steps):
            return {}
        if value.get("orientation"):
            out = self._editor(ctx, sample, draft, k)
            out.update(_msg("Boxes are axis-aligned: the picture cannot be rotated.", "warn"))
            return out
        if not self._same_layout(ctx, draft):
            return self._layout_moved(ctx, sample, draft)
        image = value["image"]
        height, width = (image.shape[:2]) if hasattr(image, "shape") else (image.size[1], image.size[0])
        before = len(draft.steps[k].regions)
        was_dirty = draft.dirty
        draft.dirty = False
        draft.apply_annotator(k, value.get("boxes") or [], width, height, self.wb.depth_map(sample))
        if not draft.dirty:  # the editor reported what it was sent: nothing changed
            return {}
        self.wb.keep_draft(ctx.curator, draft, k)
        # A drawn box is relabelled with its step's number and colour by sending the editor back.
        out = self._editor(ctx, sample, draft, k, with_editor=len(draft.steps[k].regions) > before)
        if not was_dirty:
            out.update(_msg("Edited, not saved yet: your edit is kept for you until you save or discard it."))
        return out

    def edit_text(self, ctx: Context, text) -> dict:
        return self._edit_texts(ctx, text, None)

    def edit_answer(self, ctx: Context, text) -> dict:
        return self._edit_texts(ctx, None, text)

    def edit_regions(self, ctx: Context, rows) -> dict:
        """The numbers of the selected step's boxes and depths were typed in the table."""
        sample = self._sample(ctx)
        if sample is None:
            return {}
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        if not self._same_layout(ctx, draft):
            return self._layout_moved(ctx, sample, draft)
        data = rows.values.tolist() if hasattr(rows, "values") else list(rows or [])
        errors = draft.apply_table(ctx.target.step, data, self.wb.depth_map(sample))
        if draft.dirty:
            self.wb.keep_draft(ctx.curator, draft, ctx.target.step)
        out = self._editor(ctx, sample, draft, ctx.target.step)
        if errors:
            out.update(_msg("Rows skipped: " + "; ".join(errors), "warn"))
        return out

    def save(self, ctx: Context, note: str = "", step_text=None, answer=None) -> dict:
        sample = self._sample(ctx)
        if sample is None:
            return _msg("Nothing to save: no sample is open.")
        draft = self._screen_draft(ctx, sample, step_text, answer)
        if draft is None:
            return self._layout_moved(ctx, sample, self.wb.draft_of(ctx.curator, sample, None)[0])
        if not draft.dirty:
            return _msg("Nothing to save: the chain on screen is the stored revision.")
        review = self.store.get_review(sample.id)
        try:
            saved = self.wb.save(draft, ctx.curator, note)
        except ConflictError as exc:
            return self._edit_conflict(ctx, sample, draft, exc)
        except StoreError as exc:
            return _msg(f"Not saved: {exc}", "error")
        problems = "" if saved.valid else f" It still has {len(saved.problems)} format problem(s)."
        reopened = (
            f" It replaces the {views.STATUS_LABELS[review.status]} revision {review.rev}: the sample is pending review again."
            if review.status != "pending"
            else ""
        )
        return self._show(
            ctx,
            sample.id,
            step=ctx.target.step,
            note=f"Saved revision {saved.rev} by {ctx.curator}.{problems}{reopened}",
            kind="ok",
        )

    def rebase(self, ctx: Context) -> dict:
        """Keep my edit on top of theirs: the draft now builds on the current revision."""
        sample = self._sample(ctx)
        if sample is None:
            return {}
        draft, stored = self.wb.draft_of(ctx.curator, sample, None)
        current = self.store.current_chain(sample.id)
        if not stored or current is None:
            return _msg("There is no unsaved edit to keep.")
        draft.base_rev = current.rev
        self.wb.keep_draft(ctx.curator, draft, ctx.target.step)
        out = self._show(
            ctx,
            sample.id,
            step=ctx.target.step,
            note=f"Your edit now builds on revision {current.rev} (theirs stays in the history). Save again to keep it.",
        )
        return out

    def discard(self, ctx: Context) -> dict:
        sample = self._sample(ctx)
        if sample is None:
            return _msg("Nothing to discard: no sample is open.")
        self.wb.drop_draft(ctx.curator, sample.id)
        return self._show(ctx, sample.id, step=ctx.target.step, note="Edit discarded: the stored revision is shown.")

    # ------------------------------------------------------------ review

    def decide(
        self, ctx: Context, status: str, note: str = "", accept_label: str = ACCEPT, step_text=None, answer=None
    ) -> dict:
        """Accept / reject / needs fix of what is on screen, then the next sample of the list
        (unless the curator chose to stay). With unsaved edits on screen, accept is "save and
        accept" when the button said so, and refused (the button then says so) when it did not;
        reject and needs fix are refused: a decision is bound to a saved revision."""
        t = ctx.target
        sample = self._sample(ctx)
        if sample is None:
            return _msg("No sample is open: there is nothing to review.")
        label = DECIDED[status].lower()
        draft = self._screen_draft(ctx, sample, step_text, answer)
        if draft is None:
            return self._layout_moved(ctx, sample, self.wb.draft_of(ctx.curator, sample, None)[0])
        if self.store.blind_review(sample.id, ctx.curator):
            return self._second_review(ctx, sample, draft, status, note)
        if draft.dirty:
            self.wb.keep_draft(ctx.curator, draft, t.step)
            if status != "accepted":
                out = self._editor(ctx, sample, draft, t.step, with_editor=False)
                out.update(
                    _msg(
                        f"Not {label}: sample {sample.id} has unsaved edits on screen, and a decision is bound to "
                        "a saved revision. Save them (Ctrl+S) or discard them first.",
                        "warn",
                    )
                )
                return out
            if not (t.draft and accept_label == SAVE_AND_ACCEPT):
                out = self._editor(ctx, sample, draft, t.step, with_editor=False)
                out.update(
                    _msg(
                        f"Not accepted: the chain on screen has edits that are not saved. The button now says "
                        f"“{SAVE_AND_ACCEPT}”: press it to save them as a new revision and accept that, or "
                        "discard them.",
                        "warn",
                    )
                )
                return out
            try:
                saved, _ = self.wb.save_and_review(draft, ctx.curator, "accepted", note or "", t.version)
            except ConflictError as exc:
                if isinstance(exc.current, ChainRevision):
                    return self._edit_conflict(ctx, sample, draft, exc)
                return self._show(ctx, sample.id, step=t.step, note=f"Not saved: {exc}", kind="warn")
            done = f"Saved your edit as revision {saved.rev} and accepted it."
        else:
            current = self.store.current_chain(sample.id)
            current_rev = current.rev if current else 0
            if current_rev != t.rev:
                return self._stale(ctx, sample, t.rev, current, label)
            review = self.store.get_review(sample.id)
            if (review.version, review.status, review.rev, review.note) == (t.version, status, t.rev, note or ""):
                return self._next(ctx, sample, f"Sample {sample.id} was already {label}: nothing changed.")
            if review.version != t.version and review.status in DECIDED and review.reviewer != ctx.curator:
                if review.status == status and review.rev == t.rev:
                    return self._next(
                        ctx,
                        sample,
                        f"Sample {sample.id} was {label} by {review.reviewer} after you opened it: it is not "
                        "decided twice.",
                    )
                return self._ask_replace(ctx, review, status)
            try:
                self.wb.review(sample.id, status, ctx.curator, note or "", t.version, t.rev)
            except StaleRevisionError:
                return self._stale(ctx, sample, t.rev, self.store.current_chain(sample.id), label)
            except ConflictError as exc:
                return self._review_conflict(ctx, sample.id, status, exc)
            done = f"{DECIDED[status]}: sample {sample.id}, revision {t.rev}."
        return self._next(ctx, sample, done)

    def _ask_replace(self, ctx: Context, theirs: Review, status: str) -> dict:
        """Someone else decided the sample after it was drawn on this screen: nothing is
        recorded until the curator confirms that theirs replaces it (the race's loser is told)."""
        t = ctx.target
        t.version, t.replace, t.alerts = theirs.version, status, True
        return {
            "target": t.dump(),
            "message": views.message(
                f"Not {DECIDED[status].lower()} yet: {theirs.reviewer} decided sample {t.sample} "
                f"({views.STATUS_LABELS.get(theirs.status, theirs.status)}) after you opened it. Press "
                f"“{REPLACE}” to replace their decision with yours, or move on to keep theirs.",
                "warn",
            ),
            "replace": update(visible=True),
        }

    def _second_review(self, ctx: Context, sample: Sample, draft: Draft, status: str, note: str) -> dict:
        """A blind second review (QA or gold): recorded apart from the sample's own review, with
        the curator's chain when they edited it."""
        try:
            self.store.second_review(
                sample.id, ctx.curator, status, note=note or "", chain=draft.to_chain() if draft.dirty else None
            )
        except StoreError as exc:
            return _msg(f"Not saved: {exc}", "error")
        self.wb.drop_draft(ctx.curator, sample.id)
        return self._next(ctx, sample, f"{DECIDED[status]}: sample {sample.id}, revision {ctx.target.rev}.")

    def _free_after(self, ctx: Context, sample_id: int | None, *, wrap: bool = False) -> int | None:
        """The next sample of the list after `sample_id` (the first when None) that nobody else
        has open and nobody decided since the list was loaded; with `wrap`, from the top of the
        list again past its end (on a list that decisions shrink, others may have left samples
        behind). A curator's own queue is theirs: others' claims do not hide any of it."""
        skip = self.store.claimed_by_others(ctx.curator) if ctx.filters.queue_of is None else set()
        if ctx.target.since:
            skip |= self.store.decided_since(ctx.target.since)
        starts = [sample_id, None] if wrap and sample_id is not None else [sample_id]
        for current in starts:
            for _ in range(len(skip) + 1):
                nxt = self.wb.first(ctx.filters) if current is None else self.wb.neighbour(ctx.filters, current, +1)
                if nxt is None:
                    break
                if nxt not in skip and nxt != sample_id:
                    return nxt
                current = nxt
        return None

    def _next(self, ctx: Context, sample: Sample, done: str) -> dict:
        """After a decision: the next sample of the list, unless the curator chose to stay."""
        if ctx.stay:
            return self._show(ctx, sample.id, step=ctx.target.step, note=done, kind="ok")
        shrinking = ctx.filters.status != ANY or ctx.filters.queue_of is not None
        nxt = self._free_after(ctx, sample.id, wrap=shrinking)
        if nxt is None:
            return self._show(
                ctx, sample.id, step=ctx.target.step, note=done + " That was the last sample of this list.", kind="ok"
            )
        return self._show(ctx, nxt, note=done, kind="ok")

    # ------------------------------------------------------------ tools: history and model outputs

    def tab(self, ctx: Context, name: str) -> dict:
        t = ctx.target
        t.tab = name if name in TABS else "chain"
        sample = self._sample(ctx)
        out: dict[str, Any] = {}
        if sample is not None and t.tab in ("boxes", "checks"):
            draft, _ = self.wb.draft_of(ctx.curator, sample, t.rev or None)
            revision = self.store.current_chain(sample.id)
            t.step = min(t.step, max(len(draft.steps) - 1, 0))
            problems = revision.problems if revision else ()
            out = self._open_tab(t, draft, self.wb.feedback(sample, draft.to_chain()), problems)
        elif sample is not None:
            out = self._tab_panels(t, sample.id)
        out["target"] = t.dump()
        return out

    def pick_history(self, ctx: Context, rev) -> dict:
        t = ctx.target
        if t.sample is None:
            return {}
        try:
            rev = int(rev)
        except (TypeError, ValueError):
            return {}
        old = self.wb.revision(t.sample, rev)
        current = self.store.current_chain(t.sample)
        if old is None or current is None:
            return {}
        t.history_rev = rev
        return {
            "target": t.dump(),
            "history": history_html(self.store.history(t.sample), rev),
            "diff": chain_diff(old.text, current.text),
            "history_msg": views.message(f"revision {rev} ({old.origin} by {old.author}) → current {current.rev}"),
        }

    def revert(self, ctx: Context) -> dict:
        t = ctx.target
        sample = self._sample(ctx)
        if sample is None or t.history_rev is None:
            return {"history_msg": views.message("Select a revision in the list first.")}
        stored = self.store.get_draft(ctx.curator, sample.id)
        if stored is not None:
            return {
                "history_msg": views.message(
                    "Not reverted: you have unsaved edits; save or discard them first.", "warn"
                )
            }
        try:
            r = self.wb.revert(sample.id, t.history_rev, ctx.curator, expected_rev=t.rev)
        except ConflictError:
            return self._stale(ctx, sample, t.rev, self.store.current_chain(sample.id), "reverted")
        except StoreError as exc:
            return {"history_msg": views.message(f"Not reverted: {exc}", "error")}
        t.history_rev = None
        out = self._show(ctx, sample.id, step=t.step)
        out["history_msg"] = views.message(f"Reverted: revision {r.rev} restores revision {r.parent}", "ok")
        return out

    def pick_output(self, ctx: Context, rev) -> dict:
        t = ctx.target
        if t.sample is None:
            return {}
        try:
            t.output_rev = int(rev)
        except (TypeError, ValueError):
            t.output_rev = None
        out = self._outputs(t, t.sample)
        out["target"] = t.dump()
        return out

    def adopt(self, ctx: Context) -> dict:
        """Load the chosen model output into the editor (as an unsaved edit of the revision on
        screen); the page then shows the Chain tab."""
        t = ctx.target
        sample = self._sample(ctx)
        if sample is None:
            return _msg("No sample is open.")
        chosen = next((r for r in self.store.run_revisions(sample.id) if r.rev == t.output_rev), None)
        if chosen is None:
            return _msg("No model output is chosen: this sample has no rollouts or predictions.")
        base, _ = self.wb.draft_of(ctx.curator, sample, t.rev or None)
        draft = Draft.from_chain(sample.id, base.base_rev, chosen.chain, self.wb.depth_map(sample))
        draft.dirty, draft.layout = True, base.layout + 1
        self.wb.keep_draft(ctx.curator, draft, 0)
        out = self._editor(ctx, sample, draft, 0)
        out.update(
            _msg(f"Loaded {chosen.origin} rev {chosen.rev} of run {chosen.run_id} into the editor; save to keep it.")
        )
        return out

    def stats(self) -> dict:
        s = compute_stats(self.store)
        return {
            "summary": views.esc(s.summary()),
            "status": s.status.plot(),
            "depth": s.depth.plot(),
            "hiou": s.hiou.plot(),
            "length": s.length.plot(),
        }

    # ------------------------------------------------------------ internals

    def _claim(self, ctx: Context, sample_id: int) -> str | None:
        """Claim the sample for the curator and let go of the one they had open; returns who else
        holds it (a row clicked or a link followed may open a sample someone has open)."""
        if self.store.read_only:
            return None
        holder = self.store.claim(sample_id, ctx.curator)
        previous = ctx.target.sample
        if previous is not None and previous != sample_id:
            self.store.release_claim(previous, ctx.curator)
        return holder

    def _sample(self, ctx: Context) -> Sample | None:
        if ctx.target.sample is None:
            return None
        try:
            return self.store.get_sample(ctx.target.sample)
        except StoreError:
            return None

    def _same_layout(self, ctx: Context, draft: Draft) -> bool:
        return draft.layout == ctx.target.layout

    def _layout_moved(self, ctx: Context, sample: Sample, draft: Draft) -> dict:
        out = self._editor(ctx, sample, draft, min(ctx.target.step, max(len(draft.steps) - 1, 0)))
        out.update(
            _msg("The steps changed while this edit was on its way; it was not applied. Please redo it.", "warn")
        )
        return out

    def _apply_texts(self, draft: Draft, step: int, step_text, answer) -> bool:
        before = (draft.steps[step].text if 0 <= step < len(draft.steps) else None, draft.answer)
        if step_text is not None and 0 <= step < len(draft.steps):
            draft.set_text(step, step_text)
        if answer is not None:
            draft.set_answer(answer)
        return before != (draft.steps[step].text if 0 <= step < len(draft.steps) else None, draft.answer)

    def _screen_draft(self, ctx: Context, sample: Sample, step_text, answer) -> Draft | None:
        """The chain on the curator's screen: their draft (or the revision shown) with the texts in
        the fields, which may be ahead of the last edit that reached the server. None when the
        steps changed since the screen was drawn (the texts would land on the wrong step)."""
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        if not self._same_layout(ctx, draft):
            return None
        self._apply_texts(draft, ctx.target.step, step_text, answer)
        return draft

    def _capture(self, ctx: Context, step_text, answer) -> None:
        """Keep text typed on screen before the curator leaves the step or the sample."""
        sample = self._sample(ctx)
        if sample is None or (step_text is None and answer is None):
            return
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        if self._same_layout(ctx, draft) and self._apply_texts(draft, ctx.target.step, step_text, answer):
            self.wb.keep_draft(ctx.curator, draft, ctx.target.step)

    def _edit_texts(self, ctx: Context, step_text, answer) -> dict:
        sample = self._sample(ctx)
        if sample is None:
            return {}
        draft, _ = self.wb.draft_of(ctx.curator, sample, ctx.target.rev or None)
        if not self._same_layout(ctx, draft):
            return {}
        was_dirty = draft.dirty
        if not self._apply_texts(draft, ctx.target.step, step_text, answer):
            return {}
        self.wb.keep_draft(ctx.curator, draft, ctx.target.step)
        out = self._texts_changed(ctx, sample, draft)
        if not was_dirty:
            out.update(_msg("Edited, not saved yet: your edit is kept for you until you save or discard it."))
        return out

    def _texts_changed(self, ctx: Context, sample: Sample, draft: Draft) -> dict:
        """What a typed text changes: the chain list, the checks and the accept button (the fields
        themselves keep what the curator is typing)."""
        t = ctx.target
        k = min(t.step, max(len(draft.steps) - 1, 0))
        preview = self.wb.feedback(sample, draft.to_chain())
        t.draft = draft.dirty
        return {
            "target": t.dump(),
            "chain": views.chain(draft, k, window(len(draft.steps), k, DRAW_WINDOW), preview, dirty=draft.dirty),
            "checks": views.checks_line(preview),
            "accept": SAVE_AND_ACCEPT if draft.dirty else ACCEPT,
            **self._open_tab(t, draft, preview),
        }

    def _stale(self, ctx: Context, sample: Sample, shown: int, current: ChainRevision | None, label: str) -> dict:
        now_is = f"revision {current.rev} ({current.origin} by {current.author})" if current else "no chain"
        return self._show(
            ctx,
            sample.id,
            step=ctx.target.step,
            note=f"Not {label}: sample {sample.id} changed since it was drawn on your screen (you saw revision "
            f"{shown}; {now_is} is current). It is shown now: look at it and decide again.",
            kind="warn",
        )

    def _review_conflict(self, ctx: Context, sample_id: int, status: str, exc: ConflictError) -> dict:
        """Someone (perhaps this curator, with a key pressed twice) reviewed the sample since it was
        drawn. Nothing is redrawn: the screen may already show the next sample."""
        current = exc.current
        if getattr(current, "reviewer", None) == ctx.curator and getattr(current, "status", None) == status:
            return _msg(f"Sample {sample_id} is already {DECIDED[status].lower()} by you; nothing changed.")
        return _msg(f"Not saved: {exc}", "warn")

    def _edit_conflict(self, ctx: Context, sample: Sample, draft: Draft, exc: ConflictError) -> dict:
        self.wb.keep_draft(ctx.curator, draft, ctx.target.step)
        theirs = exc.current
        assert isinstance(theirs, ChainRevision)
        out = _msg(
            f"Conflict — not saved. {exc}. Your edit is kept; compare it with theirs below, then keep yours on "
            "top of theirs or discard it.",
            "error",
        )
        out["conflict"] = update(visible=True, value=chain_diff(theirs.text, self.wb.text_of(draft.to_chain())))
        out["rebase"] = update(visible=True)
        ctx.target.alerts = True
        out["target"] = ctx.target.dump()
        return out

    def _nothing(self, ctx: Context, text: str | None = None) -> dict:
        """Empty state: no sample to show (an empty store, or no match)."""
        t = ctx.target
        t.sample, t.rev, t.version, t.step, t.layout, t.draft, t.page = None, 0, 0, 0, 0, False, 0
        t.alerts, t.label = False, -2
        empty = self.store.count() == 0
        text = text or (EMPTY_STORE if empty else "No sample matches these filters.")
        out: dict[str, Any] = {
            "target": t.dump(),
            "info": views.empty_info(text),
            "annot": None,
            "depth": None,
            "strip": None,
            "picture_note": "",
            "chain": '<div class="wb-chain wb-empty">No sample is open.</div>',
            "checks": "",
            "step_text": update(value="", label="Step text"),
            "answer": "",
            **HIDDEN_TABS,
            "accept": ACCEPT,
            "review_note": "",
            "conflict": update(visible=False, value=None),
            "rebase": update(visible=False),
            "replace": update(visible=False),
            "output_pick": update(choices=[], value=None),
            "message": "",
        }
        out.update(self._listing(ctx, 0, None))
        return out

    def _open_first(self, ctx: Context, note: str = "") -> dict:
        ctx.target.since = time.time()
        first = self._free_after(ctx, None)
        if first is None:
            return self._nothing(ctx)
        return self._show(ctx, first, note=note, kind="warn" if note else "info")

    def _listing(self, ctx: Context, page_no: int, current: int | None) -> dict:
        page = self.wb.browse(ctx.filters, page_no)
        drafted = self.store.drafted(ctx.curator, page.ids)
        blind = {i for i in page.ids if self.store.blind_review(i, ctx.curator)}
        return {
            "list": views.sample_list(page.samples, current, drafted, blind),
            "count": f"<b>{page.total}</b> matching of {self.store.count()} samples",
            "page_info": f"page {page.page + 1} / {page.pages}",
        }

    def _show(
        self, ctx: Context, sample_id: int, *, step: int | None = None, note: str = "", kind: str = "info"
    ) -> dict:
        """Open a sample: every panel of the screen, with the curator's draft if there is one. The
        sample is claimed for the curator (others' "next" skip it) and their previous one let go."""
        sample = self.store.get_sample(sample_id)
        holder = self._claim(ctx, sample_id)
        blind = self.store.blind_review(sample_id, ctx.curator)
        revision = self.store.current_chain(sample_id)
        review = self.store.get_review(sample_id)
        draft, restored = self.wb.draft_of(ctx.curator, sample, None, current=revision)
        returning = ctx.target.sample != sample_id
        if step is None:
            step = (self.wb.stored_step(ctx.curator, sample_id) or 0) if restored else 0
        k = min(max(step, 0), max(len(draft.steps) - 1, 0))
        t = Target(
            sample=sample_id,
            rev=revision.rev if revision else 0,
            version=review.version,
            step=k,
            layout=draft.layout,
            draft=draft.dirty,
            page=self.wb.page_of(ctx.filters, sample_id),
            tab=ctx.target.tab,
            since=ctx.target.since,
            label=ctx.target.label,
        )
        alerts = ctx.target.alerts
        ctx.target = t
        log = self.store.review_log(sample_id) if review.version and not blind else []
        earlier = next((r for r in reversed(log[:-1]) if r.status != "pending"), None)
        out: dict[str, Any] = {
            **HIDDEN_TABS,
            "info": views.info(sample, revision, review, draft, earlier=earlier, blind=blind),
            "review_note": review.note if review.status != "pending" and not blind else "",
            "conflict": None,
            "rebase": REBASE,
            "replace": REPLACE,
        }
        if alerts:  # a widget update costs Gradio a component per action: hide them only when shown
            out.update(
                {
                    "conflict": update(visible=False, value=None),
                    "rebase": update(visible=False),
                    "replace": update(visible=False),
                }
            )
        out.update(self._editor(ctx, sample, draft, k, stored_problems=revision.problems if revision else ()))
        out.update(self._listing(ctx, t.page, sample_id))
        out.update(self._tab_panels(t, sample_id))
        notes = [note] if note else []
        if holder is not None:
            notes.append(f"{holder} has sample {sample_id} open too: agree who decides it.")
            kind = "warn" if kind == "info" else kind
        if restored and returning:
            notes.append(
                f"Your unsaved edit of sample {sample_id} (made on revision {draft.base_rev or 0}) is back: save it "
                "or discard it."
            )
            if (draft.base_rev or 0) != t.rev:
                notes.append(f"Revision {t.rev} is current now: saving will show you both.")
            kind = "warn" if kind == "info" else kind
        out["message"] = views.message(" ".join(notes), kind)
        out["target"] = t.dump()
        return out

    def _editor(
        self,
        ctx: Context,
        sample: Sample,
        draft: Draft,
        k: int,
        *,
        with_editor: bool = True,
        stored_problems=(),
    ) -> dict:
        """The chain list, the selected step's fields, the checks and the pictures, for step `k`."""
        t = ctx.target
        t.step, t.layout, t.draft = k, draft.layout, draft.dirty
        chain = draft.to_chain()
        preview = self.wb.feedback(sample, chain)
        out: dict[str, Any] = self._pictures(ctx, sample, draft, k, with_editor=with_editor, chain=chain)
        step_text = self._step_text(t, draft, k)
        out.update(
            {
                "target": t.dump(),
                "chain": views.chain(draft, k, out.pop("_drawn"), preview, dirty=draft.dirty),
                "checks": views.checks_line(preview),
                "step_text": step_text,
                "answer": draft.answer,
                "accept": SAVE_AND_ACCEPT if draft.dirty else ACCEPT,
            }
        )
        out.update(self._open_tab(t, draft, preview, stored_problems))
        return out

    @staticmethod
    def _step_text(t: Target, draft: Draft, k: int):
        """The step's text, with the field's label ("Step 3 text") only when it changes."""
        text = draft.steps[k].text if draft.steps else ""
        labelled = k if draft.steps else -1
        if labelled == t.label:
            return text
        t.label = labelled
        return update(value=text, label=f"Step {k + 1} text" if draft.steps else "Step text (no steps yet)")

    @staticmethod
    def _open_tab(t: Target, draft: Draft, preview, stored_problems=()) -> dict:
        """The boxes table or the checks, when their tab is the one shown (hidden tabs are drawn
        when opened, so a key press redraws only what is on screen)."""
        if t.tab == "boxes":
            return {"regions": draft.table_rows(t.step)}
        if t.tab == "checks":
            return {"feedback": views.feedback(preview, stored_problems, dirty=draft.dirty)}
        return {}

    def _pictures(
        self, ctx: Context, sample: Sample, draft: Draft, k: int, *, with_editor: bool = True, chain=None
    ) -> dict:
        chain = chain or draft.to_chain()
        v = self.wb.render(
            sample,
            chain,
            selected=k,
            only_selected=ctx.only_selected,
            show_gt=ctx.show_gt,
            hide=k if draft.steps else None,
        )
        tag = f"s{sample.id}"
        n = len(chain.steps)
        notes = []
        if len(v.drawn) < n:
            notes.append(f"Steps {v.drawn.start + 1}–{v.drawn.stop} of {n} drawn (around the selected step).")
        if n:
            notes.append(f"Drag, resize or draw step {k + 1}'s boxes on the picture (Delete removes the selected box).")
        out: dict[str, Any] = {
            "depth": self.pictures.write(v.depth, f"{tag}-depth"),
            "strip": self.pictures.write(v.strip, f"{tag}-strip"),
            "picture_note": views.esc(" ".join(notes)),
            "_drawn": v.drawn,
        }
        if with_editor:
            W, H = v.image.size
            out["annot"] = {
                "image": self.pictures.write(v.image, f"{tag}-picture"),
                "boxes": draft.annotator_boxes(k, W, H),
            }
        return out

    def _tab_panels(self, t: Target, sample_id: int) -> dict:
        if t.tab == "history":
            return {
                "history": history_html(self.store.history(sample_id), t.history_rev),
                "diff": None,
                "history_msg": "",
            }
        if t.tab == "outputs":
            return self._outputs(t, sample_id)
        return {}

    def _outputs(self, t: Target, sample_id: int) -> dict:
        outs = self.store.run_revisions(sample_id)
        chosen = next((r for r in outs if r.rev == t.output_rev), outs[-1] if outs else None)
        t.output_rev = chosen.rev if chosen else None
        if chosen is None:
            return {
                "output_pick": update(choices=[], value=None),
                "out_image": None,
                "out_depth": None,
                "out_strip": None,
                "out_text": "",
                "out_feedback": views.message("No rollouts or predictions are recorded for this sample."),
            }
        sample = self.store.get_sample(sample_id)
        v = self.wb.render(sample, chosen.chain)
        tag = f"s{sample_id}-out{chosen.rev}"
        return {
            "output_pick": update(
                choices=[(f"{r.run_id} · {r.origin} · rev {r.rev} · {r.author}", r.rev) for r in outs],
                value=chosen.rev,
            ),
            "out_image": self.pictures.write(v.image, f"{tag}-picture"),
            "out_depth": self.pictures.write(v.depth, f"{tag}-depth"),
            "out_strip": self.pictures.write(v.strip, f"{tag}-strip"),
            "out_text": chosen.raw_text or chosen.text,
            "out_feedback": views.feedback(self.wb.feedback(sample, chosen.chain)),
        }
